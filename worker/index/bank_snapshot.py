"""The confirmed entries of every bank, indexed in memory; rebuilt when a bank generation changes.

Images: one PDQ and one pHash row per entry. Videos: one row per usable keyframe PDQ of each entry
(in their own index, at the vPDQ frame threshold), each pointing back to its entry, so a video query
costs one exact radius search per keyframe however many videos the banks hold.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from server import banks, models
from server.db import Database
from worker.index.hamming import HammingIndex, pack_hex
from worker.stages import video_match

DEFAULT_FRAME_THRESHOLD = 31  # Settings.vpdq_frame_threshold's default

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    state: tuple[int, int]
    pdq_ids: list[str] = field(default_factory=list)
    pdq_quality: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    pdq: HammingIndex | None = None
    phash_ids: list[str] = field(default_factory=list)
    phash: HammingIndex | None = None
    video_ids: list[str] = field(default_factory=list)  # video entries with usable frames
    video_frames: list[list[models.StoredFrame]] = field(default_factory=list)  # usable, deduplicated
    frame_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # row -> video
    frame_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # row -> its frame
    frames: HammingIndex | None = None
    built_in_s: float = 0.0

    def search_pdq(self, hex_hash: str) -> list[tuple[str, int, int]]:
        """(entry id, distance, entry PDQ quality) within the built threshold."""
        if self.pdq is None or not self.pdq_ids:
            return []
        rows, dist = self.pdq.search(pack_hex([hex_hash], 32)[0])
        return [(self.pdq_ids[r], int(d), int(self.pdq_quality[r])) for r, d in zip(rows, dist)]

    def search_phash(self, hex_hash: str) -> list[tuple[str, int]]:
        if self.phash is None or not self.phash_ids:
            return []
        rows, dist = self.phash.search(pack_hex([hex_hash], 8)[0])
        return [(self.phash_ids[r], int(d)) for r, d in zip(rows, dist)]

    def search_frame(self, hex_hash: str) -> list[tuple[int, int, int]]:
        """(video number, frame number within it, distance) for every banked keyframe within the
        frame threshold; numbers index ``video_ids`` / ``video_frames``."""
        if self.frames is None:
            return []
        rows, dist = self.frames.search(pack_hex([hex_hash], 32)[0])
        return [(int(self.frame_owner[r]), int(self.frame_pos[r]), int(d)) for r, d in zip(rows, dist)]


def _index_frames(snap: Snapshot, rows: list, frame_threshold: int) -> int:
    """Fill the video part of the snapshot; returns how many keyframes it indexed."""
    hexes: list[str] = []
    owners: list[int] = []
    positions: list[int] = []
    for row in rows:
        if not row.frame_pdqs:
            continue
        try:
            frames = video_match.usable(models.decode_frames(row.frame_pdqs))
        except ValueError:
            log.warning("bank entry %s has unreadable keyframe PDQs; not indexed", row.id)
            continue
        if not frames:
            continue  # no usable frame: it can only match by MD5 / SHA-256
        number = len(snap.video_ids)
        snap.video_ids.append(row.id)
        snap.video_frames.append(frames)
        hexes.extend(f.pdq for f in frames)
        owners.extend([number] * len(frames))
        positions.extend(range(len(frames)))
    if hexes:
        snap.frame_owner = np.array(owners, dtype=np.int32)
        snap.frame_pos = np.array(positions, dtype=np.int32)
        snap.frames = HammingIndex(pack_hex(hexes, 32), frame_threshold)
    return len(hexes)


def build(db: Database, pdq_threshold: int, phash_threshold: int,
          frame_threshold: int = DEFAULT_FRAME_THRESHOLD) -> Snapshot:
    started = time.perf_counter()
    with db.session() as session:
        state = banks.generation_state(session)
        rows = session.execute(
            select(models.BankEntry.id, models.BankEntry.pdq, models.BankEntry.pdq_quality, models.BankEntry.phash,
                   models.BankEntry.frame_pdqs)
            .where(models.BankEntry.status == "confirmed", models.BankEntry.hash_state == "ready")
        ).all()
    pdq_rows = [(r.id, r.pdq, r.pdq_quality or 0) for r in rows if r.pdq]
    phash_rows = [(r.id, r.phash) for r in rows if r.phash]
    snap = Snapshot(state=state)
    if pdq_rows:
        snap.pdq_ids = [r[0] for r in pdq_rows]
        snap.pdq_quality = np.array([r[2] for r in pdq_rows], dtype=np.int16)
        snap.pdq = HammingIndex(pack_hex([r[1] for r in pdq_rows], 32), pdq_threshold)
    if phash_rows:
        snap.phash_ids = [r[0] for r in phash_rows]
        snap.phash = HammingIndex(pack_hex([r[1] for r in phash_rows], 8), phash_threshold)
    frame_count = _index_frames(snap, rows, frame_threshold)
    snap.built_in_s = time.perf_counter() - started
    log.info("bank index built: %d PDQ, %d pHash entries, %d videos (%d keyframes) in %.2fs (generation %s)",
             len(pdq_rows), len(phash_rows), len(snap.video_ids), frame_count, snap.built_in_s, state)
    return snap


class SnapshotHolder:
    """One snapshot per process, checked against the banks' generation on every use (one cheap query)."""

    def __init__(self, db: Database, pdq_threshold: int, phash_threshold: int,
                 frame_threshold: int = DEFAULT_FRAME_THRESHOLD) -> None:
        self.db, self.pdq_threshold, self.phash_threshold = db, pdq_threshold, phash_threshold
        self.frame_threshold = frame_threshold
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        with self.db.session() as session:
            state = banks.generation_state(session)
        with self._lock:
            if self._snapshot is None or self._snapshot.state != state:
                self._snapshot = build(self.db, self.pdq_threshold, self.phash_threshold, self.frame_threshold)
            return self._snapshot
