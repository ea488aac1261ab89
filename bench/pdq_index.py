"""The PDQ index at scale: build time, memory, query p50/p99 for hits and misses, against brute force.

Why: the issue asks for p99 < 5 ms at 10M hashes, build < 1 min, memory close to the raw bytes, and
an exact index. Random hashes are the worst case for bucket balance only in theory; real PDQ sets are
clustered, so a set with planted clusters is measured too. Brute force (numpy popcount over packed
uint64) is the floor, measured on the same data in the same run.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from common import percentile

from server.banks.hamming import HammingIndex, brute_force, to_columns


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def near(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(base)
    bits[rng.choice(256, flips, replace=False)] ^= 1
    return np.packbits(bits)


def run(n: int, queries: int, brute_queries: int, clustered: bool, rng: np.random.Generator) -> None:
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    if clustered:  # 10% of the set in clusters of 10 near-duplicates (re-uploads of one fake)
        for i in range(0, n // 10, 10):
            for j in range(1, 10):
                hashes[i + j] = near(rng, hashes[i], int(rng.integers(1, 20)))
    before = rss_mb()
    started = time.perf_counter()
    index = HammingIndex(hashes, 31)
    build_s = time.perf_counter() - started
    hits = [near(rng, hashes[int(rng.integers(n))], int(rng.integers(0, 32))) for _ in range(queries)]
    misses = [rng.integers(0, 256, 32, dtype=np.uint8) for _ in range(queries)]
    results = {}
    for name, qs in (("hit", hits), ("miss", misses)):
        times = []
        for q in qs:
            t = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t) * 1000)
        results[name] = times
    columns = to_columns(hashes)  # the fastest brute-force layout, built outside the timing
    brute = []
    for q in hits[:brute_queries]:
        t = time.perf_counter()
        brute_force(hashes, q, 31, columns)
        brute.append((time.perf_counter() - t) * 1000)
    for q in hits[:brute_queries]:  # exactness, on the way
        assert sorted(index.search(q)[0].tolist()) == sorted(brute_force(hashes, q, 31)[0].tolist())
    print(f"\n{n:,} hashes ({'clustered' if clustered else 'uniform'}): build {build_s:.2f} s; "
          f"raw hashes {hashes.nbytes / 1e6:.0f} MB, index total {index.nbytes / 1e6:.0f} MB "
          f"({index.nbytes / hashes.nbytes:.1f}x raw); process peak RSS grew {rss_mb() - before:.0f} MB")
    bf50 = percentile(brute, 50)
    for name, times in results.items():
        p50, p99 = percentile(times, 50), percentile(times, 99)
        print(f"  query {name:4s} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms   brute force p50 {bf50:7.2f} ms"
              f"  -> {bf50 / p50:5.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--brute-queries", type=int, default=30)
    parser.add_argument("--clustered", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    for n in (int(s) for s in args.sizes.split(",")):
        run(n, args.queries, args.brute_queries, args.clustered, rng)


if __name__ == "__main__":
    main()
