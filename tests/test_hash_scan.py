"""The record's hash scans find exactly the rows within reach, on SQLite (tested here) and on PostgreSQL
(tested in the database): the same rows and distances as a plain bit count."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server import models
from server.db import Database
from server.hash_scan import near_rows
from server.migrate import upgrade


def _flip(rng: np.random.Generator, value: bytes, bits: int) -> bytes:
    b = np.unpackbits(np.frombuffer(value, dtype=np.uint8))
    b[rng.choice(len(b), bits, replace=False)] ^= 1
    return np.packbits(b).tobytes()


def _distance(a: str, b: str) -> int:
    return int(np.unpackbits(np.frombuffer(bytes.fromhex(a), np.uint8) ^ np.frombuffer(bytes.fromhex(b), np.uint8)).sum())


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'scan.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    return Database(url)


def test_near_rows_match_a_plain_bit_count(db: Database, monkeypatch) -> None:
    monkeypatch.setattr("server.db.CHUNK_ROWS", 7)
    rng = np.random.default_rng(3)
    query = rng.bytes(32)
    turned = rng.bytes(32)  # a second orientation of the query
    phash_query = rng.bytes(8)
    rows = []
    for i in range(120):
        kind = i % 6
        pdq = {0: _flip(rng, query, int(rng.integers(0, 80))), 1: _flip(rng, turned, int(rng.integers(50, 70))),
               2: rng.bytes(32), 3: None, 4: _flip(rng, query, 63), 5: _flip(rng, query, 64)}[kind]
        phash = None if kind == 2 and i % 4 == 0 else _flip(rng, phash_query, int(rng.integers(0, 30)))
        rows.append(models.Media(sha256=f"{i:064x}", mime="image/jpeg", size=1,
                                 pdq=pdq.hex() if pdq else None, phash=phash.hex() if phash else None))
    rows.append(models.Media(sha256="f" * 64, mime="image/jpeg", size=1))  # no hashes at all
    with db.session() as session:
        session.add_all(rows)
    queries = [query.hex(), turned.hex()]
    expected = set()
    for r in rows:
        pdq_d = min(_distance(r.pdq, q) for q in queries) if r.pdq else None
        phash_d = _distance(r.phash, phash_query.hex()) if r.phash else None
        if (pdq_d is not None and pdq_d <= 63) or (phash_d is not None and phash_d <= 16):
            expected.add((r.sha256, pdq_d, phash_d))
    media = models.Media.__table__
    with db.session() as session:
        found = {(n.row.sha256, n.pdq_distance, n.phash_distance)
                 for n in near_rows(session, media, [media.c.sha256], pdqs=queries, pdq_limit=63,
                                    phash=phash_query.hex(), phash_limit=16)}
        pdq_only = {n.row.sha256 for n in near_rows(session, media, [media.c.sha256], pdqs=[query.hex()],
                                                    pdq_limit=63, phash=None, phash_limit=16)}
        assert list(near_rows(session, media, [media.c.sha256], pdqs=[], pdq_limit=63, phash=None,
                              phash_limit=16)) == []
    assert found == expected
    assert 30 < len(found) < len(rows)  # near and far rows were both there
    assert pdq_only == {r.sha256 for r in rows if r.pdq and _distance(r.pdq, query.hex()) <= 63}
    assert f"{4:064x}" in pdq_only and f"{5:064x}" not in pdq_only  # 63 bits is in, 64 is out
