"""The manifest repository at scale: N stored manifests in PostgreSQL, a process's lookups through
``repository.find``, against the banks' index over the same N PDQs in the same run, and storage per manifest.

Why: every image without credentials is looked up in the repository (docs/repository.md), so its lookup is on
the pipeline's path at the repository's size; the issue asks for the banks' scale (exact search at the
configured thresholds, millions of entries). Floor: ``HammingIndex`` alone over the same PDQs, queried with
the same 8 orientations a lookup passes (a lookup adds its database round trips: the refresh's count and
``last_seen`` range, the row and its bindings). The old path (a numpy popcount scan of every row) is timed on
a few queries for context.

Data: random PDQs (quality 100, with their 8 orientations as text, as rows keep them) and ISCC Image-Codes;
1% of the rows are near-duplicates (1-20 bits) of another; realistic signer, actions, labels and thumbnail
references; every 10th manifest declares a watermark binding. The bulk keeps no store bytes (``store`` NULL):
a sample of ``--stores`` more manifests with a random ``--store-bytes`` store each gives the store's share.
The bulk is stamped a row a second up to a day ago, so lookups measure the steady state (a refresh reads again
the rows written in the 30 s before the newest it has seen: a bulk stamped at one moment would be read whole).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
from common import percentile, throwaway_postgres
from sqlalchemy import func, select

from server import models
from server.db import Database, dispose_all
from server.migrate import upgrade
from server.provenance import repository
from server.banks.hamming import HammingIndex

PDQ_THRESHOLD = 31  # CREDENCE_PDQ_THRESHOLD's default
SIGNER = json.dumps({"organisation": "Example News Agency Ltd", "common_name": "Example News Agency Signing 2026",
                     "issuer": "Example Trust Services Intermediate CA G3", "algorithm": "es256",
                     "serial": "4f1c9a2e7b3d5e6f8091a2b3c4d5e6f708192a3b"})
ACTIONS = json.dumps([
    {"action": "c2pa.created", "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
     "softwareAgent": "Example Camera Firmware 4.2.1", "when": "2026-11-30T09:12:44Z"},
    {"action": "c2pa.color_adjustments", "softwareAgent": "Example Photo Editor 2026.3"},
    {"action": "c2pa.cropped", "softwareAgent": "Example Photo Editor 2026.3"},
    {"action": "c2pa.published", "softwareAgent": "Example CMS 7.1", "when": "2026-11-30T10:03:05Z"}])
AI = json.dumps([{"label": "c2pa.actions", "action": "c2pa.created",
                  "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}])
COLUMNS = ("id", "sha256", "mime", "label", "state", "signer", "signing_time", "actions", "ai_declarations",
           "thumbnail_sha256", "thumbnail_format", "store", "store_size", "pdq", "pdq_quality", "pdq_dihedral",
           "iscc", "first_seen", "last_seen")


def near(rng: np.random.Generator, base: np.ndarray, flips: int) -> np.ndarray:
    bits = np.unpackbits(base)
    bits[rng.choice(len(bits), flips, replace=False)] ^= 1
    return np.packbits(bits)


def iscc_code(body: bytes) -> str:
    """An ``ISCC:EE...`` Image-Code (header: content, image, v0, 64 bits) around a 64-bit body."""
    return "ISCC:" + base64.b32encode(b"\x21\x01" + body).decode()


def hashes_for(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(PDQs, ISCC bodies): random, 1% near-duplicates of another row (re-uploads of one picture)."""
    pdq = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    iscc = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    for i in rng.choice(n, n // 100, replace=False):
        j = int(rng.integers(n))
        pdq[i] = near(rng, pdq[j], int(rng.integers(1, 21)))
    return pdq, iscc


def copy_manifests(conn: psycopg.Connection, rng: np.random.Generator, pdq: np.ndarray, iscc: np.ndarray,
                   stamp: datetime, store_bytes: int = 0) -> None:
    """COPY one manifest row per PDQ (and every 10th a watermark binding), 50,000 rows a round."""
    n = len(pdq)
    with conn.cursor() as cur:
        for start in range(0, n, 50_000):
            end = min(n, start + 50_000)
            rows, bindings = io.StringIO(), io.StringIO()
            for i in range(start, end):
                seen = (stamp - timedelta(seconds=n - i)).isoformat()  # a row a second, the last at ``stamp``
                ident, sha = rng.bytes(16).hex(), rng.bytes(32).hex()
                orientations = ",".join(rng.bytes(32).hex() for _ in range(7))
                store = "\\\\x" + rng.bytes(store_bytes).hex() if store_bytes else "\\N"
                size = str(store_bytes) if store_bytes else "\\N"
                rows.write("\t".join((
                    ident, sha, "image/jpeg", f"urn:c2pa:{rng.bytes(16).hex()}", "trusted" if i % 3 else "valid",
                    SIGNER, "2026-11-30T09:12:44+00:00", ACTIONS, AI if i % 10 == 0 else "[]", rng.bytes(32).hex(),
                    "image/jpeg", store, size, pdq[i].tobytes().hex(), "100",
                    pdq[i].tobytes().hex() + "," + orientations, iscc_code(iscc[i].tobytes()), seen, seen)) + "\n")
                if i % 10 == 0:
                    bindings.write(f"{ident}\tcom.example.watermark\twm-{rng.bytes(12).hex()}\n")
            with cur.copy(f"COPY provenance_manifests ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                copy.write(rows.getvalue())
            with cur.copy("COPY provenance_bindings (manifest_id, alg, value) FROM STDIN") as copy:
                copy.write(bindings.getvalue())
    conn.commit()


def table_bytes(conn: psycopg.Connection) -> int:
    """The repository's two tables with their indexes and TOAST, after a vacuum (the steady state)."""
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE provenance_manifests")
    conn.execute("VACUUM ANALYZE provenance_bindings")
    conn.autocommit = False
    return sum(conn.execute(f"SELECT pg_total_relation_size('{t}')").fetchone()[0]
               for t in ("provenance_manifests", "provenance_bindings"))


VIDEO_FRAMES = 30  # usable frames of a stripped video (vPDQ keeps about one a second)


def ms(values: list[float]) -> str:
    return f"{percentile(values, 50) * 1e3:8.2f} / {percentile(values, 99) * 1e3:8.2f}"


def lookups(rng: np.random.Generator, pdq: np.ndarray, count: int) -> tuple[list, list]:
    """(hits, misses): each a copy's 8 orientations as hex and its ISCC code. A hit's first orientation is within
    the threshold of a stored PDQ (0-31 bits); a miss is random (its ISCC is looked up too, as for any copy)."""
    def query(first: np.ndarray) -> tuple[list[str], str]:
        variants = [first] + [rng.integers(0, 256, 32, dtype=np.uint8) for _ in range(7)]
        return [v.tobytes().hex() for v in variants], iscc_code(rng.bytes(8))

    hits = [query(near(rng, pdq[int(rng.integers(len(pdq)))], int(rng.integers(0, PDQ_THRESHOLD + 1))))
            for _ in range(count)]
    misses = [query(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(count)]
    return hits, misses


def run(url: str, n: int, queries: int, brute_queries: int, stores: int, store_bytes: int) -> None:
    rng = np.random.default_rng(19)
    upgrade(url)
    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    pdq, iscc = hashes_for(rng, n)
    day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    started = time.perf_counter()
    with psycopg.connect(raw) as conn:
        copy_manifests(conn, rng, pdq, iscc, day_ago)
        fill_s = time.perf_counter() - started
        bulk_bytes = table_bytes(conn)
    print(f"manifests: {n:,} (COPY, no store bytes): filled in {fill_s:.1f} s")

    db = Database(url)
    m = models.ProvenanceManifest
    hits, misses = lookups(rng, pdq, queries)
    with db.session() as session:
        started = time.perf_counter()
        snap = repository._snapshot(session)  # the process's first refresh: every served row read
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        found = repository.find(session, pdq=hits[0][0], iscc=hits[0][1], pdq_threshold=PDQ_THRESHOLD)
        build_s = time.perf_counter() - started  # the first lookup builds the index
    assert found is not None and found.binding == "pdq"
    index_mb = sum(index.nbytes for index in snap.indexes.values()) / 1e6
    print(f"snapshot load: {load_s:.2f} s; first lookup (builds the index): {build_s:.2f} s; "
          f"index {index_mb:.0f} MB (PDQ + ISCC)")

    def timed(batch: list, expect_hit: bool) -> tuple[list[float], list[float]]:
        whole, memory = [], []
        for variants, code in batch:
            with db.session() as session:
                started = time.perf_counter()
                result = repository.find(session, pdq=variants, iscc=code, pdq_threshold=PDQ_THRESHOLD)
                whole.append(time.perf_counter() - started)
                if expect_hit:
                    assert result is not None and result.distance <= PDQ_THRESHOLD, "a planted copy was not found"
            started = time.perf_counter()
            repository._nearest(snap, variants, lambda: code, PDQ_THRESHOLD, repository.ISCC_THRESHOLD)
            memory.append(time.perf_counter() - started)
        return whole, memory

    hit_find, hit_memory = timed(hits, True)
    miss_find, miss_memory = timed(misses, False)
    counts = []
    for _ in range(brute_queries):  # what a count of the served rows costs (a refresh counts once a minute)
        with db.session() as session:
            started = time.perf_counter()
            session.scalar(select(func.count()).select_from(m).where(m.state.in_(repository.SERVED_STATES)))
            counts.append(time.perf_counter() - started)

    index = HammingIndex(pdq, PDQ_THRESHOLD)

    def floor(batch: list) -> list[float]:
        times = []
        for variants, _ in batch:
            packed = [np.frombuffer(bytes.fromhex(v), dtype=np.uint8) for v in variants]
            started = time.perf_counter()
            for query in packed:
                index.search(query)
            times.append(time.perf_counter() - started)
        return times

    hit_floor, miss_floor = floor(hits), floor(misses)
    # A stripped video: 30 usable frames, one of them near a stored picture (a signed photo shown for a second).
    videos = [[models.StoredFrame(t=float(t), pdq=(near(rng, pdq[int(rng.integers(len(pdq)))], 8) if t == 15 else
                                                   rng.integers(0, 256, 32, dtype=np.uint8)).tobytes().hex(),
                                  quality=90) for t in range(VIDEO_FRAMES)] for _ in range(max(queries // 10, 5))]
    video_find, video_floor = [], []
    for frames in videos:
        with db.session() as session:
            started = time.perf_counter()
            found = repository.find_frames(session, frames, pdq_threshold=PDQ_THRESHOLD,
                                           frame_threshold=PDQ_THRESHOLD)
            video_find.append(time.perf_counter() - started)
        assert found is not None and found.binding == "pdq", "a planted frame was not found"
        packed = [np.frombuffer(bytes.fromhex(f.pdq), dtype=np.uint8) for f in frames]
        started = time.perf_counter()
        for query in packed:
            index.search(query)
        video_floor.append(time.perf_counter() - started)
    scan = []
    for variants, _ in misses[:brute_queries]:
        packed = np.vstack([np.frombuffer(bytes.fromhex(v), dtype=np.uint8) for v in variants])
        started = time.perf_counter()
        np.min([repository._distances(snap.pdq, q) for q in packed], axis=0).argmin()
        scan.append(time.perf_counter() - started)

    print(f"lookups ({queries} hits, {queries} misses; 8 orientations each; p50 / p99 ms)")
    print(f"  {'':52}{'hits':>19}  {'misses':>19}")
    print(f"  {'repository.find (one session each)':52}{ms(hit_find)}  {ms(miss_find)}")
    print(f"  {'  in memory only (index + recent rows)':52}{ms(hit_memory)}  {ms(miss_memory)}")
    print(f"  {'HammingIndex alone, same PDQs (floor)':52}{ms(hit_floor)}  {ms(miss_floor)}")
    print(f"  {f'numpy scan of every row (old path, {len(scan)} queries)':52}{'':19}  {ms(scan)}")
    print(f"  {f'count(*) of the served rows ({len(counts)} times)':52}{'':19}  {ms(counts)}")
    print(f"  {f'a video of {VIDEO_FRAMES} frames, repository.find_frames ({len(videos)})':52}{ms(video_find)}")
    print(f"  {f'  HammingIndex alone, the same {VIDEO_FRAMES} PDQs (floor)':52}{ms(video_floor)}")
    ratio = percentile(hit_find, 50) / percentile(hit_floor, 50)
    print(f"find / floor p50: hits {ratio:.1f}x, misses {percentile(miss_find, 50) / percentile(miss_floor, 50):.1f}x;"
          f" in memory / floor p50: hits {percentile(hit_memory, 50) / percentile(hit_floor, 50):.1f}x")

    dispose_all()
    extra_pdq, extra_iscc = hashes_for(rng, stores)
    with psycopg.connect(raw) as conn:
        copy_manifests(conn, rng, extra_pdq, extra_iscc, day_ago, store_bytes)
        with_stores = table_bytes(conn)
        total = conn.execute("SELECT count(*) FROM provenance_manifests").fetchone()[0]
    per_row = bulk_bytes / n
    per_store = (with_stores - bulk_bytes) / stores
    print(f"storage per manifest: {per_row:,.0f} bytes without store bytes; {per_store:,.0f} bytes with a store "
          f"of {store_bytes:,} bytes ({stores:,} such manifests added, {total:,} in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="stored manifests")
    parser.add_argument("--queries", type=int, default=200, help="lookups of each kind (hits, misses)")
    parser.add_argument("--brute-queries", type=int, default=10,
                        help="lookups timed on the old scan, and counts of the served rows timed")
    parser.add_argument("--stores", type=int, default=2_000, help="manifests added with store bytes")
    parser.add_argument("--store-bytes", type=int, default=30_000, help="a store's size (JUMBF with thumbnail)")
    args = parser.parse_args()
    with throwaway_postgres() as url:
        run(url, args.rows, args.queries, args.brute_queries, args.stores, args.store_bytes)


if __name__ == "__main__":
    main()
