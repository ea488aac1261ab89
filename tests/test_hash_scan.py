"""The record's hash scans find exactly the rows within reach, on SQLite (tested here) and on PostgreSQL
(tested in the database): the same rows and distances as a plain bit count."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server import models
from server.db import Database
from server.banks.hash_scan import near_rows
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


def test_stored_orientations_find_the_same_media_on_both_databases(db: Database, monkeypatch) -> None:
    """The re-match of a confirmed entry: any of a stored image's 8 orientations near the entry's PDQ, or its
    pHash near. On PostgreSQL a prefilter in SQL; the same media either way."""
    from types import SimpleNamespace

    from server.config import Settings
    from worker.banks.jobs import affected_media

    monkeypatch.setattr("server.db.CHUNK_ROWS", 5)
    rng = np.random.default_rng(8)
    entry_pdq, entry_phash = rng.bytes(32), rng.bytes(8)
    rows, expected = [], set()
    for i in range(40):
        variants = [rng.bytes(32) for _ in range(8)]
        if i % 4 == 0:
            variants[i % 8] = _flip(rng, entry_pdq, int(rng.integers(0, 40)))  # near in one orientation
        phash = _flip(rng, entry_phash, 3) if i % 10 == 1 else rng.bytes(8)
        sha = f"{i:064x}"
        rows.append(models.Media(sha256=sha, mime="image/jpeg", size=1, pdq=variants[0].hex(), phash=phash.hex(),
                                 pdq_dihedral=",".join(v.hex() for v in variants)))
        if min(_distance(v.hex(), entry_pdq.hex()) for v in variants) <= 31 or i % 10 == 1:
            expected.add(sha)
    with db.session() as session:
        session.add_all(rows)
    ctx = SimpleNamespace(db=db, settings=Settings())
    entry = models.BankEntry(media_kind="image", pdq=entry_pdq.hex(), phash=entry_phash.hex(), sha256=None)
    assert set(affected_media(ctx, entry)) == expected and 4 < len(expected) < 40
