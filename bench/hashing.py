"""Hashing cost per 1-megapixel JPEG: SHA-256 + PDQ (8 orientations) + pHash, against decode-only.

Run: .venv/bin/python bench/hashing.py [--images N]

Why: hashing runs on every cache miss; its floor is the decode it follows, measured in the same run
on the same bytes. Photo-like inputs are mosaics of scikit-image sample-photo crops (see tests/images.py).
"""
from __future__ import annotations

import argparse
import hashlib
import time

from common import percentile  # noqa: F401 - puts the repository root on sys.path

from tests.images import jpeg_bytes, photo
from worker.stages import hashes
from worker.stages.decode import decode

MAX_PIXELS = 50_000_000


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    blobs = [jpeg_bytes(photo(k, (1152, 864)), 90) for k in range(args.images)]
    decoded = [decode(b, MAX_PIXELS).image for b in blobs]
    hashes.compute_with_orientations(decoded[0])  # warm up (scipy's first DCT call is slow)
    rows = {
        "decode only (floor)": timed(lambda b: decode(b, MAX_PIXELS), blobs),
        "sha256": timed(lambda b: hashlib.sha256(b).hexdigest(), blobs),
        "resize to 576x576 for PDQ": timed(hashes.pdq_input, decoded),
        "PDQ at full size (reference)": timed(hashes.pdq, decoded),
        "pHash at 128 px": timed(lambda im: hashes.phash(hashes.scale_to(im, hashes.PHASH_SIDE)), decoded),
        "PDQ x8 orientations + pHash": timed(hashes.compute_with_orientations, decoded),
        "decode + sha256 + PDQ x8 + pHash": timed(
            lambda b: (hashlib.sha256(b).hexdigest(), hashes.compute_with_orientations(decode(b, MAX_PIXELS).image)),
            blobs),
    }
    floor = sum(rows["decode only (floor)"]) / len(blobs)
    print(f"{args.images} JPEGs 1152x864 q90, one thread")
    print(f"{'step':36s} {'mean ms':>8s} {'p50':>7s} {'p99':>7s} {'x decode':>9s}")
    for name, values in rows.items():
        mean = sum(values) / len(values)
        print(f"{name:36s} {mean:8.2f} {percentile(values, 50):7.2f} {percentile(values, 99):7.2f} {mean / floor:8.2f}x")


if __name__ == "__main__":
    main()
