"""'What do we have that looks like this?': every entry of every bank, any status, with distances.

Runs in the API process over the record (brute force with numpy popcount). The workers' in-memory
index serves the hot matching path; this serves people asking, so it favours completeness: a video
query lists every video entry sharing at least one keyframe, with both vPDQ shares and whether they
reach the match share.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import banks, models

SEARCH_PDQ_DISTANCE = 63  # wider than the match threshold: show near misses, with their distance
SEARCH_PHASH_DISTANCE = 16


def _distances(values: list[str | None], query: str, nbytes: int) -> np.ndarray:
    present = [i for i, v in enumerate(values) if v]
    out = np.full(len(values), -1, dtype=np.int32)
    if present:
        packed = np.frombuffer(bytes.fromhex("".join(values[i] for i in present)), dtype=np.uint8).reshape(-1, nbytes)
        q = np.frombuffer(bytes.fromhex(query), dtype=np.uint8)
        out[present] = np.bitwise_count(packed.view(np.uint64) ^ q.view(np.uint64)).sum(axis=1)
    return out


def _video_shares(entries: list[models.BankEntry], frames: list[Any] | None,
                  threshold: int) -> dict[int, Any]:
    """Row number -> vPDQ comparison, for the video entries sharing at least one keyframe with the query."""
    if not frames:
        return {}
    from worker.stages import video_match  # pure numpy; the API imports the worker only when asked

    query = video_match.usable(frames)
    out = {}
    for i, entry in enumerate(entries):
        if not entry.frame_pdqs:
            continue
        try:
            result = video_match.compare(query, models.decode_frames(entry.frame_pdqs), threshold)
        except ValueError:
            continue  # unreadable stored frames: nothing to show
        if result.query_matched:
            out[i] = result
    return out


def search(session: Session, *, sha256: str | None, pdq: str | None, phash: str | None,
           md5: str | None = None, frames: list[Any] | None = None, frame_threshold: int = 31,
           match_share: float = 0.7, limit: int = 50) -> list[dict[str, Any]]:
    """``frames``: a video query's keyframe PDQs (objects with t, pdq, quality)."""
    rows = session.execute(select(models.BankEntry, models.Bank)
                           .join(models.Bank, models.Bank.id == models.BankEntry.bank_id)).all()
    if not rows:
        return []
    entries = [r[0] for r in rows]
    pdq_d = _distances([e.pdq for e in entries], pdq, 32) if pdq else np.full(len(entries), -1)
    phash_d = _distances([e.phash for e in entries], phash, 8) if phash else np.full(len(entries), -1)
    videos = _video_shares(entries, frames, frame_threshold)
    results = []
    for i, (entry, bank) in enumerate(rows):
        exact = bool((sha256 and entry.sha256 == sha256) or (md5 and entry.md5 == md5))
        near_pdq = 0 <= pdq_d[i] <= SEARCH_PDQ_DISTANCE
        near_phash = 0 <= phash_d[i] <= SEARCH_PHASH_DISTANCE
        if exact or near_pdq or near_phash or i in videos:
            video = videos.get(i)
            results.append({
                "entry": banks.entry_dict(entry, bank), "exact": exact,
                "pdq_distance": int(pdq_d[i]) if pdq_d[i] >= 0 else None,
                "phash_distance": int(phash_d[i]) if phash_d[i] >= 0 else None,
                "video": {**video.details(), "matches": video.matches(match_share)} if video else None,
            })
    results.sort(key=lambda r: (not r["exact"],
                                -min(r["video"]["query_share"], r["video"]["entry_share"]) if r["video"] else 0,
                                r["pdq_distance"] if r["pdq_distance"] is not None else 999,
                                r["phash_distance"] if r["phash_distance"] is not None else 999))
    return results[:limit]
