"""'What do we have that looks like this?': every entry of every bank, any status, with distances.

Runs in the API process over the record (exact brute force with numpy popcount). The workers' in-memory
index serves the hot matching path; this serves people asking, so it favours completeness: near misses up
to 63 PDQ bits, and a video query lists every video entry sharing at least one keyframe, with both vPDQ
shares and whether they reach the match share. Entries are scanned in chunks of plain rows, and only the
hits are loaded as objects, so a search over millions of entries never holds them all.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server import banks, models
from server.db import stream_rows

SEARCH_PDQ_DISTANCE = 63  # wider than the match threshold: show near misses, with their distance
SEARCH_PHASH_DISTANCE = 16
_ID_BATCH = 500  # ids per IN (...) when loading the hits


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


def _video_shares(session: Session, frames: list[Any], threshold: int) -> dict[str, Any]:
    """Entry id -> vPDQ comparison, for the video entries sharing at least one keyframe with the query."""
    from worker.stages import video_match  # pure numpy; the API imports the worker only when asked

    query = video_match.usable(frames)
    e = models.BankEntry.__table__.c
    out = {}
    for rows in stream_rows(session, select(e.id, e.frame_pdqs).where(e.frame_pdqs.is_not(None))):
        for row in rows:
            try:
                result = video_match.compare(query, models.decode_frames(row.frame_pdqs), threshold)
            except ValueError:
                continue  # unreadable stored frames: nothing to show
            if result.query_matched:
                out[row.id] = result
    return out


def search(session: Session, *, sha256: str | None, pdq: str | Sequence[str] | None, phash: str | None,
           md5: str | None = None, frames: list[Any] | None = None, frame_threshold: int = 31,
           match_share: float = 0.7, limit: int = 50) -> list[dict[str, Any]]:
    """``pdq``: one hash, or a query's orientations (an entry's distance is its smallest to any);
    ``frames``: a video query's keyframe PDQs (objects with t, pdq, quality)."""
    e = models.BankEntry.__table__.c
    pdqs = [pdq] if isinstance(pdq, str) else [p for p in pdq or [] if p]
    found: dict[str, dict[str, Any]] = {}

    def hit(entry_id: str) -> dict[str, Any]:
        return found.setdefault(entry_id, {"exact": False, "pdq_distance": None, "phash_distance": None,
                                           "video": None})

    exact = [c for c in (e.sha256 == sha256 if sha256 else None, e.md5 == md5 if md5 else None) if c is not None]
    if exact:
        for entry_id in session.scalars(select(e.id).where(or_(*exact))):
            hit(entry_id)["exact"] = True
    if pdqs or phash:
        exact_ids = set(found)
        for rows in stream_rows(session, select(e.id, e.pdq, e.phash)
                                .where(or_(e.pdq.is_not(None), e.phash.is_not(None)))):
            pdq_d = min_distances([r.pdq for r in rows], pdqs, 32)
            phash_d = min_distances([r.phash for r in rows], [phash] if phash else [], 8)
            near = ((pdq_d >= 0) & (pdq_d <= SEARCH_PDQ_DISTANCE)) | ((phash_d >= 0) & (phash_d <= SEARCH_PHASH_DISTANCE))
            keep = set(np.flatnonzero(near).tolist())
            if exact_ids:
                keep.update(i for i, r in enumerate(rows) if r.id in exact_ids)
            for i in keep:
                h = hit(rows[i].id)
                h["pdq_distance"] = int(pdq_d[i]) if pdq_d[i] >= 0 else None
                h["phash_distance"] = int(phash_d[i]) if phash_d[i] >= 0 else None
    if frames:
        for entry_id, result in _video_shares(session, frames, frame_threshold).items():
            hit(entry_id)["video"] = {**result.details(), "matches": result.matches(match_share)}

    def order(item: tuple[str, dict[str, Any]]) -> tuple:
        r = item[1]
        return (not r["exact"],
                -min(r["video"]["query_share"], r["video"]["entry_share"]) if r["video"] else 0,
                r["pdq_distance"] if r["pdq_distance"] is not None else 999,
                r["phash_distance"] if r["phash_distance"] is not None else 999)

    best = sorted(found.items(), key=order)[:limit]
    return [{"entry": banks.entry_dict(entry, bank), **found[entry.id]} for entry, bank in _load(session, best)]


def _load(session: Session, best: list[tuple[str, dict[str, Any]]]) -> list[tuple[models.BankEntry, models.Bank]]:
    """The hits as objects, in the order given."""
    ids = [entry_id for entry_id, _ in best]
    loaded: dict[str, tuple[models.BankEntry, models.Bank]] = {}
    for start in range(0, len(ids), _ID_BATCH):
        for entry, bank in session.execute(select(models.BankEntry, models.Bank)
                                           .join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
                                           .where(models.BankEntry.id.in_(ids[start:start + _ID_BATCH]))).all():
            loaded[entry.id] = (entry, bank)
    return [loaded[i] for i in ids if i in loaded]
