"""'What do we have that looks like this?': every entry of every bank, any status, with distances.

Runs in the API process over the record (exact: every entry is tested). The workers' in-memory
index serves the hot matching path; this serves people asking, so it favours completeness: near misses up
to 63 PDQ bits, and a video query lists every video entry sharing at least one keyframe, with both vPDQ
shares and whether they reach the match share. The hash test runs in the database where it can
(server.banks.hash_scan), rows come in chunks, and only the hits are loaded as objects, so a search over
millions of entries never holds them all.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server import models
from server.banks import hash_scan
from server.banks import service as banks
from server.db import stream_rows
from server.errors import ApiError
from server.schemas import SearchRequest

if TYPE_CHECKING:
    from server.config import Settings

SEARCH_PDQ_DISTANCE = hash_scan.SEARCH_PDQ_DISTANCE
SEARCH_PHASH_DISTANCE = hash_scan.SEARCH_PHASH_DISTANCE
_ID_BATCH = 500  # ids per IN (...) when loading the hits


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
    pdqs = [pdq] if isinstance(pdq, str) else list(pdq or [])
    found: dict[str, dict[str, Any]] = {}

    def hit(entry_id: str) -> dict[str, Any]:
        return found.setdefault(entry_id, {"exact": False, "pdq_distance": None, "phash_distance": None,
                                           "video": None})

    exact = [c for c in (e.sha256 == sha256 if sha256 else None, e.md5 == md5 if md5 else None) if c is not None]
    if exact:
        for entry_id in session.scalars(select(e.id).where(or_(*exact))):
            hit(entry_id)["exact"] = True
    for near in hash_scan.near_rows(session, models.BankEntry.__table__, [e.id], pdqs=pdqs,
                                    pdq_limit=SEARCH_PDQ_DISTANCE, phash=phash, phash_limit=SEARCH_PHASH_DISTANCE):
        h = hit(near.row.id)
        h["pdq_distance"], h["phash_distance"] = near.pdq_distance, near.phash_distance
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


def hash_query(body: SearchRequest) -> dict[str, Any]:
    """A search by values, each checked as a submission's are (lower-cased); at least one is needed."""
    query: dict[str, Any] = {k: banks.check_hex(k, getattr(body, k)) for k in ("sha256", "pdq", "phash", "md5")}
    frames = banks.check_frames(body.frames)
    if frames:
        query["frames"] = [f._asdict() for f in frames]
    if not any(query.values()):
        raise ApiError(400, "give at least one of sha256, pdq, phash, md5, frames (or upload a file)")
    return query


def upload_query(data: bytes, settings: Settings) -> dict[str, Any]:
    """A search by file: an image's hashes with its PDQ in all 8 orientations (a flipped or rotated copy
    finds the banked original), or a video's file hashes and keyframes."""
    return banks.fingerprint_upload(data, settings).query()


def find(session: Session, query: dict[str, Any], settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """``search`` for a query from ``hash_query`` or ``upload_query``, with the configured vPDQ rule."""
    return search(session, sha256=query.get("sha256"), pdq=query.get("orientations") or query.get("pdq"),
                  phash=query.get("phash"), md5=query.get("md5"), frames=banks.check_frames(query.get("frames")),
                  frame_threshold=settings.vpdq_frame_threshold, match_share=settings.vpdq_match_share, limit=limit)


def near_entries(session: Session, entry: dict[str, Any], limit: int = 12) -> list[dict[str, Any]]:
    """Other entries that look like this image entry: a reviewer sees them before deciding."""
    if not (entry["sha256"] or entry["pdq"] or entry["phash"]):
        return []
    hits = search(session, sha256=entry["sha256"], pdq=entry["pdq"], phash=entry["phash"], limit=limit + 1)
    return [h for h in hits if h["entry"]["id"] != entry["id"]][:limit]
