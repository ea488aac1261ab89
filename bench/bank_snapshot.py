"""What a worker pays to load the banks: N confirmed PDQ entries read from PostgreSQL into the in-memory index.

Why: the index itself is measured by bench/pdq_index.py; a worker also reads every confirmed entry from
the database and keeps its id, and at millions of entries that load, not the index build, decides the
refresh time and the worker's memory. Floor: the raw hash bytes (32 per entry), and the index build
alone on the same hashes, in the same run. Also timed, on the same database: one search as the API runs
it for a person (`server.banks.search`, every entry of any status scanned in chunks, not the index).

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


def fill(url: str, n: int) -> None:
    """A migrated database with one fake bank holding ``n`` confirmed entries with random PDQs (COPY)."""
    import psycopg

    from server import models
    from server.db import Database
    from server.migrate import upgrade

    upgrade(url)
    db = Database(url)
    with db.session() as session:
        bank = models.Bank(name="bench", kind="fake", owner="bench", description="")
        session.add(bank)
        session.flush()
        bank_id = bank.id
    rng = np.random.default_rng(7)
    raw = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(raw) as conn, conn.cursor() as cur:
        columns = "(id, bank_id, pdq, pdq_quality, hash_state, label, notes, source_links, tags, status, " \
                  "submitted_by, submitted_at, updated_at, disputed, media_kind)"
        with cur.copy(f"COPY bank_entries {columns} FROM STDIN") as copy:
            for start in range(0, n, 100_000):
                hashes = rng.integers(0, 256, (min(100_000, n - start), 32), dtype=np.uint8)
                buf = io.StringIO()
                for h in hashes:
                    buf.write(f"{uuid.uuid4().hex}\t{bank_id}\t{h.tobytes().hex()}\t100\tready\tbench\t\t[]\t[]\t"
                              "confirmed\tbench\t2026-12-01 00:00:00\t2026-12-01 00:00:00\tf\timage\n")
                copy.write(buf.getvalue())
    from server.db import dispose_all

    dispose_all()


def measure(url: str) -> dict[str, float]:
    """In this (child) process: load and build the snapshot as a worker does."""
    from server.db import Database
    from worker.banks.index.bank_snapshot import build
    from server.banks.hamming import HammingIndex

    db = Database(url)
    before = _rss_mb()
    started = time.perf_counter()
    snap = build(db, 31, 6)
    total_s = time.perf_counter() - started
    grew = _rss_mb() - before
    n = len(snap.pdq)
    ids_bytes = snap.pdq_ids.nbytes
    started = time.perf_counter()
    HammingIndex(snap.pdq.hashes, 31)
    index_s = time.perf_counter() - started
    from server.banks import search as bank_search

    started = time.perf_counter()
    with db.session() as session:
        bank_search.search(session, sha256=None, pdq=snap.pdq.hashes[n // 2].tobytes().hex(), phash=None)
    search_s = time.perf_counter() - started
    import tempfile
    from pathlib import Path

    from worker.banks.index.bank_snapshot import shared

    with tempfile.TemporaryDirectory() as folder:  # the host's shared copy: built and saved once, then mapped
        started = time.perf_counter()
        assert shared(db, Path(folder), 31, 6).built_here
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        assert not shared(db, Path(folder), 31, 6).built_here
        map_s = time.perf_counter() - started
    return {"n": n, "total_s": total_s, "index_s": index_s, "rss_grew_mb": grew, "search_s": search_s,
            "save_s": save_s, "map_s": map_s,
            "index_mb": snap.pdq.nbytes / 1e6, "ids_mb": ids_bytes / 1e6, "raw_mb": n * 32 / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="entry counts, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    print("size        fill s   load+build s   index alone s   RSS grew MB   index MB   ids MB   raw MB   (index+ids)/raw   API search s   shared: build+save s   map s")
    for n in (int(s) for s in args.sizes.split(",")):
        with throwaway_postgres() as url:
            started = time.perf_counter()
            fill(url, n)
            fill_s = time.perf_counter() - started
            r = in_child(__file__, url)
            print(f"{r['n']:>10,}  {fill_s:7.1f}  {r['total_s']:12.2f}  {r['index_s']:14.2f}  {r['rss_grew_mb']:11.0f}"
                  f"  {r['index_mb']:9.0f}  {r['ids_mb']:7.0f}  {r['raw_mb']:7.0f}  "
                  f"{(r['index_mb'] + r['ids_mb']) / r['raw_mb']:6.1f}x  {r['search_s']:13.2f}"
                  f"  {r['save_s']:21.2f}  {r['map_s']:6.2f}")

if __name__ == "__main__":
    main()
