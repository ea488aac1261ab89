"""vPDQ's comparison of two videos by their frame PDQs: pure, no database, no index.

Meta's vPDQ (ThreatExchange: vpdq/README.md, python-threatexchange's vpdq extension) compares videos as
bags of frame hashes rather than frame by frame in time, so trimming, re-encoding, resizing and a
different frame rate still match: frames below PDQ quality 50 are dropped and identical hashes counted
once on both sides; a query frame *matches* when some frame of the other video is within the frame
threshold, and the other way round. Two shares come out: the query's frames that match, and the banked
video's. A match needs the query share to reach the match share; the banked video's share only has to
reach ``ENTRY_SHARE`` (vPDQ's "compared" threshold, 0% in ThreatExchange), so an excerpt of a banked
video matches it, while a compilation that holds a banked clip among other footage does not.

The bank matcher finds the frame pairs with its exact in-memory index; people's search and the
freshness re-match find them by brute force here. Both count them with ``tally``, so they agree.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from server.banks.hamming import brute_force, pack_hex
from worker.stages.hashes import PDQ_MIN_QUALITY

MAX_PAIRS_SHOWN = 64  # matched moments kept in evidence details
ENTRY_SHARE = 0.0  # vPDQ's compared-share threshold (VPDQ_INDEX_MATCH_THRESHOLD_PERCENT): any


class FrameLike(Protocol):
    """vpdq.FrameHash or server.models.StoredFrame."""

    t: float
    pdq: str
    quality: int


@dataclass(frozen=True)
class FramePair:
    query_t: float
    entry_t: float
    distance: int


@dataclass(frozen=True)
class VideoMatch:
    query_matched: int   # usable query frames within the threshold of some entry frame
    query_frames: int    # usable query frames
    entry_matched: int   # usable entry frames within the threshold of some query frame
    entry_frames: int    # usable entry frames
    best_distance: int   # smallest distance of any matching pair; -1 when none
    pairs: tuple[FramePair, ...] = ()  # per matched query frame, its closest entry frame

    @property
    def query_share(self) -> float:
        return self.query_matched / self.query_frames if self.query_frames else 0.0

    @property
    def entry_share(self) -> float:
        return self.entry_matched / self.entry_frames if self.entry_frames else 0.0

    def matches(self, share: float) -> bool:
        """vPDQ's rule (see the module); a video without usable frames never matches."""
        return self.query_matched > 0 and self.query_share >= share and self.entry_share >= ENTRY_SHARE

    def details(self) -> dict[str, object]:
        return {"query_share": round(self.query_share, 4), "entry_share": round(self.entry_share, 4),
                "frames_matched": self.query_matched, "frames": self.query_frames,
                "entry_frames_matched": self.entry_matched, "entry_frames": self.entry_frames,
                "best_distance": self.best_distance,
                "pairs": [{"t": p.query_t, "entry_t": p.entry_t, "distance": p.distance}
                          for p in self.pairs[:MAX_PAIRS_SHOWN]]}


def usable(frames: Iterable[FrameLike], min_quality: int = PDQ_MIN_QUALITY) -> list[FrameLike]:
    """Drop low-quality frames (flat: their PDQs match each other) and repeated hashes, keeping order."""
    seen: set[str] = set()
    out = []
    for frame in frames:
        if frame.quality >= min_quality and frame.pdq not in seen:
            seen.add(frame.pdq)
            out.append(frame)
    return out


def tally(pairs: Iterable[tuple[int, int, int]], query: Sequence[FrameLike], entry: Sequence[FrameLike]) -> VideoMatch:
    """Count (query index, entry index, distance) pairs found within the threshold, indices into the
    *usable* frame lists ``query`` and ``entry``."""
    closest: dict[int, tuple[int, int]] = {}  # query index -> (distance, entry index)
    entry_hit: set[int] = set()
    for qi, ei, dist in pairs:
        entry_hit.add(ei)
        if qi not in closest or dist < closest[qi][0]:
            closest[qi] = (dist, ei)
    shown = tuple(FramePair(query_t=query[qi].t, entry_t=entry[ei].t, distance=d)
                  for qi, (d, ei) in sorted(closest.items()))
    return VideoMatch(query_matched=len(closest), query_frames=len(query), entry_matched=len(entry_hit),
                      entry_frames=len(entry), best_distance=min((d for d, _ in closest.values()), default=-1),
                      pairs=shown)


def frame_pairs(query: Sequence[FrameLike], entry: Sequence[FrameLike], threshold: int) -> list[tuple[int, int, int]]:
    """Every (query index, entry index, distance) within ``threshold``, by popcount (exact)."""
    if not query or not entry:
        return []
    packed = pack_hex([f.pdq for f in entry], 32)
    columns = np.ascontiguousarray(packed.view(np.uint64).T)
    out = []
    for qi, q in enumerate(pack_hex([f.pdq for f in query], 32)):
        rows, dist = brute_force(packed, q, threshold, columns)
        out.extend((qi, int(r), int(d)) for r, d in zip(rows, dist))
    return out


def compare(query: Iterable[FrameLike], entry: Iterable[FrameLike], threshold: int) -> VideoMatch:
    """Compare two videos' frame PDQs (quality-filtered and deduplicated here)."""
    q, e = usable(query), usable(entry)
    return tally(frame_pairs(q, e, threshold), q, e)
