"""What a confirmation costs a worker: finding the stored media an image entry touches among N stored images.

Why: when a reviewer confirms or retracts an entry, `worker.banks.jobs.affected_media` scans every stored
image's 8 PDQ orientations and its pHash (exact brute force), chunk by chunk from PostgreSQL, so a reader's
next page load shows the new badge. At millions of recorded checks that scan decides how fresh a badge is and
how much memory the worker needs. Floor, in the same run: streaming the same rows from the database without
matching them.

Each size runs in a child process, so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import time
import uuid

import numpy as np
from common import in_child, throwaway_postgres


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(url: str, n: int) -> str:
    """A migrated database with ``n`` stored images (random hashes) and one planted copy of the entry's
    PDQ; returns that PDQ."""
    import psycopg

    from server.migrate import upgrade

    upgrade(url)
    rng = np.random.default_rng(11)
    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    target = rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()
    with psycopg.connect(raw) as conn, conn.cursor() as cur:
        with cur.copy("COPY media (sha256, mime, size, pdq, pdq_quality, phash, pdq_dihedral, first_seen) "
                      "FROM STDIN") as copy:
            for start in range(0, n, 50_000):
                count = min(50_000, n - start)
                pdqs = rng.integers(0, 256, (count, 8, 32), dtype=np.uint8)
                phashes = rng.integers(0, 256, (count, 8), dtype=np.uint8)
                if start == 0:
                    pdqs[0, 3] = np.frombuffer(bytes.fromhex(target), dtype=np.uint8)  # a mirrored copy
                buf = io.StringIO()
                for variants, phash in zip(pdqs, phashes):
                    hexes = [v.tobytes().hex() for v in variants]
                    buf.write(f"{uuid.uuid4().hex * 2}\timage/jpeg\t1000\t{hexes[0]}\t100\t{phash.tobytes().hex()}\t"
                              f"{','.join(hexes)}\t2026-12-01 00:00:00\n")
                copy.write(buf.getvalue())
    return target


def measure(url: str, pdq: str) -> dict[str, float]:
    """In this (child) process: the floor (stream only), then the scan as a worker runs it."""
    from types import SimpleNamespace

    from sqlalchemy import select

    from server import models
    from server.config import Settings
    from server.db import Database, stream_rows
    from worker.banks.jobs import affected_media

    db = Database(url)
    media = models.Media.__table__.c
    started = time.perf_counter()
    rows = 0
    with db.session() as session:
        for chunk in stream_rows(session, select(media.sha256, media.pdq_dihedral, media.phash)
                                 .where(media.pdq.is_not(None))):
            rows += len(chunk)
    floor_s = time.perf_counter() - started
    before = _rss_mb()
    ctx = SimpleNamespace(db=db, settings=Settings())
    entry = models.BankEntry(media_kind="image", pdq=pdq, phash=None, sha256=None)
    started = time.perf_counter()
    found = affected_media(ctx, entry)
    scan_s = time.perf_counter() - started
    assert len(found) == 1, found  # the planted copy, and nothing else
    return {"n": rows, "floor_s": floor_s, "scan_s": scan_s, "rss_grew_mb": _rss_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="stored image counts, comma-separated")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    print("stored images   fill s   stream only s (floor)   scan s   scan/floor   RSS grew MB")
    for n in (int(s) for s in args.sizes.split(",")):
        with throwaway_postgres() as url:
            started = time.perf_counter()
            pdq = fill(url, n)
            fill_s = time.perf_counter() - started
            r = in_child(__file__, url, pdq)
            print(f"{r['n']:>13,}  {fill_s:7.1f}  {r['floor_s']:22.2f}  {r['scan_s']:7.2f}  "
                  f"{r['scan_s'] / r['floor_s']:10.2f}x  {r['rss_grew_mb']:11.0f}")

if __name__ == "__main__":
    main()
