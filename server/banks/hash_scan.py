"""Exact Hamming scans over the PDQ and pHash values the record stores as hex: which rows are near a query.

People ask these questions (bank search, the desk's "seen before"), over every row of any status, so they
are answered from the database, not from a worker's index of confirmed entries. On PostgreSQL the distance
test runs in the database (``bit_count`` over bit strings), so only near rows cross the wire: at 10M
entries a 31 s scan becomes 5-7 s (bench/bank_snapshot.py). On SQLite (embedded) every row is streamed and tested
here. Either way the distances returned are computed here, from the hex, the same way.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, Row, Table, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import Session

from server.db import stream_rows

# How far a person's search looks (banks, media seen): wider than the match threshold, to show near misses.
SEARCH_PDQ_DISTANCE = 63
SEARCH_PHASH_DISTANCE = 16


@dataclass(frozen=True)
class Near:
    """One row within reach of the query, with its distances (None where it has no such hash)."""

    row: Row
    pdq_distance: int | None
    phash_distance: int | None


def min_distances(values: Sequence[str | None], queries: Sequence[str], nbytes: int) -> np.ndarray:
    """Each stored hex hash's smallest Hamming distance to any of the queries (a hash's orientations);
    -1 where nothing is stored."""
    present = [i for i, v in enumerate(values) if v]
    out = np.full(len(values), -1, dtype=np.int32)
    if present and queries:
        packed = np.frombuffer(bytes.fromhex("".join(values[i] for i in present)), dtype=np.uint8)
        words = packed.reshape(-1, nbytes).view(np.uint64)
        best = None
        for query in queries:
            q = np.frombuffer(bytes.fromhex(query), dtype=np.uint8).view(np.uint64)
            d = np.bitwise_count(words ^ q).sum(axis=1, dtype=np.int32)
            best = d if best is None else np.minimum(best, d)
        out[present] = best
    return out


def _bits(hex_text: ColumnElement, nbits: int) -> ColumnElement:
    return cast(literal("x") + hex_text, BIT(nbits))


def _within(bits: ColumnElement, query: str, nbits: int, limit: int) -> ColumnElement:
    return func.bit_count(bits.op("#")(cast(literal("x" + query), BIT(nbits)))) <= limit


def _postgres_filter(table: Table, columns: Sequence[ColumnElement], pdqs: Sequence[str], pdq_limit: int,
                     phash: str | None, phash_limit: int):
    """The same test in SQL; each stored hex is cast to bits once (the subquery), not once per query."""
    bits = select(*columns, table.c.pdq, table.c.phash, _bits(table.c.pdq, 256).label("pdq_bits"),
                  _bits(table.c.phash, 64).label("phash_bits")).offset(0).subquery()
    near = [_within(bits.c.pdq_bits, q, 256, pdq_limit) for q in pdqs]
    if phash:
        near.append(_within(bits.c.phash_bits, phash, 64, phash_limit))
    return select(*(bits.c[c.name] for c in columns), bits.c.pdq, bits.c.phash).where(or_(*near))


def stored_orientations_filter(session: Session, orientations: ColumnElement, pdq: str | None, pdq_limit: int,
                               phash_column: ColumnElement, phash: str | None, phash_limit: int,
                               count: int = 8) -> ColumnElement | None:
    """On PostgreSQL, a WHERE clause keeping the rows whose stored orientations (``count`` comma-separated
    PDQ hex values) come within ``pdq_limit`` of ``pdq``, or whose pHash is near: a prefilter, the caller
    still computes the distances. None elsewhere (the caller tests every row)."""
    if session.get_bind().dialect.name != "postgresql" or not (pdq or phash):
        return None
    near = [_within(_bits(func.split_part(orientations, ",", k), 256), pdq, 256, pdq_limit)
            for k in range(1, count + 1)] if pdq else []
    if phash:
        near.append(_within(_bits(phash_column, 64), phash, 64, phash_limit))
    return or_(*near)


def near_rows(session: Session, table: Table, columns: Sequence[ColumnElement], *, pdqs: Sequence[str],
              pdq_limit: int, phash: str | None, phash_limit: int) -> Iterator[Near]:
    """Rows of ``table`` (which has ``pdq`` and ``phash`` hex columns) whose PDQ is within ``pdq_limit`` of
    any of ``pdqs``, or whose pHash is within ``phash_limit`` of ``phash``; ``columns`` are also fetched."""
    pdqs = [p for p in pdqs if p]
    if not pdqs and not phash:
        return
    if session.get_bind().dialect.name == "postgresql":
        statement = _postgres_filter(table, columns, pdqs, pdq_limit, phash, phash_limit)
    else:
        statement = select(*columns, table.c.pdq, table.c.phash).where(
            or_(table.c.pdq.is_not(None), table.c.phash.is_not(None)))
    for rows in stream_rows(session, statement):
        pdq_d = min_distances([r.pdq for r in rows], pdqs, 32)
        phash_d = min_distances([r.phash for r in rows], [phash] if phash else [], 8)
        near = ((pdq_d >= 0) & (pdq_d <= pdq_limit)) | ((phash_d >= 0) & (phash_d <= phash_limit))
        for i in np.flatnonzero(near).tolist():
            yield Near(rows[i], int(pdq_d[i]) if pdq_d[i] >= 0 else None, int(phash_d[i]) if phash_d[i] >= 0 else None)
