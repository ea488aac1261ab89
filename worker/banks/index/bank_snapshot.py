"""The confirmed entries of every bank, indexed in memory; rebuilt when a bank generation changes.

Images: one PDQ and one pHash row per entry. Videos: one row per usable keyframe PDQ of each entry
(in their own index, at the vPDQ frame threshold), each pointing back to its entry, so a video query
costs one exact radius search per keyframe however many videos the banks hold.

At millions of entries the load, not the index, is what costs: rows are streamed from the database in
chunks straight into packed arrays (hashes as bytes, entry ids as 16 raw bytes), so a worker never
holds millions of row objects or id strings (bench/bank_snapshot.py).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import models
from server.banks import service as banks
from server.db import Database, stream_rows
from worker import metrics
from worker.banks.index import snapshot_files
from server.banks.hamming import HammingIndex, pack_hex
from worker.stages import video_match

DEFAULT_FRAME_THRESHOLD = 31  # Settings.vpdq_frame_threshold's default

log = logging.getLogger(__name__)


def pack_ids(ids: list[str]) -> np.ndarray:
    """Entry ids are uuid4 hex (``models.new_id``): 16 raw bytes each rather than 32 characters, a
    third of a 10M-entry worker's memory. Any other id keeps its text, fixed-width."""
    joined = "".join(ids)
    try:
        packed = bytes.fromhex(joined)
    except ValueError:
        packed = b""
    if len(packed) == 16 * len(ids) and packed.hex() == joined and all(len(i) == 32 for i in ids):
        return np.frombuffer(packed, dtype="V16")
    return np.array([i.encode() for i in ids], dtype="S32")


def entry_id(ids: np.ndarray, row: int) -> str:
    value = ids[row]
    return value.tobytes().hex() if ids.dtype.kind == "V" else value.decode()


def _join_ids(chunks: list[np.ndarray]) -> np.ndarray:
    """One array; if any chunk kept text ids, all do (rare: only ids not made by ``new_id``)."""
    if all(c.dtype.kind == "V" for c in chunks):
        return np.concatenate(chunks)
    return np.concatenate([np.array([entry_id(c, i).encode() for i in range(len(c))], dtype="S32")
                           if c.dtype.kind == "V" else c for c in chunks])


@dataclass
class Snapshot:
    state: tuple[int, int]
    pdq_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="V16"))  # entry ids, see pack_ids
    pdq_quality: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    pdq: HammingIndex | None = None
    phash_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="V16"))
    phash: HammingIndex | None = None
    video_ids: list[str] = field(default_factory=list)  # video entries with usable frames
    video_frames: list[list[models.StoredFrame]] = field(default_factory=list)  # usable, deduplicated
    frame_owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # row -> video
    frame_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # row -> its frame
    frames: HammingIndex | None = None
    built_in_s: float = 0.0
    built_here: bool = True  # False: mapped from files another process of the host built

    def search_pdq(self, hex_hash: str) -> list[tuple[str, int, int]]:
        """(entry id, distance, entry PDQ quality) within the built threshold."""
        if self.pdq is None or not len(self.pdq_ids):
            return []
        rows, dist = self.pdq.search(pack_hex([hex_hash], 32)[0])
        return [(entry_id(self.pdq_ids, r), int(d), int(self.pdq_quality[r])) for r, d in zip(rows, dist)]

    def search_phash(self, hex_hash: str) -> list[tuple[str, int]]:
        if self.phash is None or not len(self.phash_ids):
            return []
        rows, dist = self.phash.search(pack_hex([hex_hash], 8)[0])
        return [(entry_id(self.phash_ids, r), int(d)) for r, d in zip(rows, dist)]

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


class _VideoRow(NamedTuple):
    id: str
    frame_pdqs: str


class _Column:
    """One hash kind's rows as they stream in: packed hashes, entry ids and qualities, chunk by chunk."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ids: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []
        self.quality: list[np.ndarray] = []

    def add(self, rows: list[tuple[str, str, int]]) -> None:
        if rows:
            self.ids.append(pack_ids([r[0] for r in rows]))
            self.hashes.append(pack_hex([r[1] for r in rows], self.nbytes))
            self.quality.append(np.array([r[2] for r in rows], dtype=np.int16))

    def __len__(self) -> int:
        return sum(len(h) for h in self.hashes)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _join_ids(self.ids), np.concatenate(self.hashes), np.concatenate(self.quality)


def _confirmed_videos(db: Database) -> list[_VideoRow]:
    entries = models.BankEntry.__table__.c
    with db.session() as session:
        return [_VideoRow(e, f) for rows in stream_rows(session, select(entries.id, entries.frame_pdqs).where(
            entries.status == "confirmed", entries.hash_state == "ready", entries.frame_pdqs.is_not(None)))
            for e, f in rows]


def _arrays(snap: Snapshot) -> dict[str, np.ndarray]:
    """The image part of a snapshot as named arrays (the video part is small: each process reads it)."""
    out: dict[str, np.ndarray] = {}
    if snap.pdq is not None:
        out |= {f"pdq_{k}": v for k, v in snap.pdq.arrays().items()}
        out |= {"pdq_ids": snap.pdq_ids, "pdq_quality": snap.pdq_quality}
    if snap.phash is not None:
        out |= {f"phash_{k}": v for k, v in snap.phash.arrays().items()}
        if snap.phash_ids is not snap.pdq_ids:
            out["phash_ids"] = snap.phash_ids
    return out


def _from_arrays(state: tuple[int, int], arrays: dict[str, np.ndarray], pdq_threshold: int,
                 phash_threshold: int) -> Snapshot:
    snap = Snapshot(state=state)
    for kind, threshold in (("pdq", pdq_threshold), ("phash", phash_threshold)):
        parts = {k[len(kind) + 1:]: v for k, v in arrays.items() if k.startswith(kind + "_")}
        if "hashes" in parts:
            setattr(snap, kind, HammingIndex.from_arrays(parts, threshold))
    if "pdq_ids" in arrays:
        snap.pdq_ids, snap.pdq_quality = arrays["pdq_ids"], arrays["pdq_quality"]
    if snap.phash is not None:
        snap.phash_ids = arrays.get("phash_ids", snap.pdq_ids)
    return snap


def shared(db: Database, folder_root: Path, pdq_threshold: int, phash_threshold: int,
           frame_threshold: int = DEFAULT_FRAME_THRESHOLD) -> Snapshot:
    """This generation's snapshot from the host's files when another process built it, else built
    here and saved for the others (worker/banks/index/snapshot_files.py)."""
    with db.session() as session:
        state = banks.generation_state(session)
    thresholds = (pdq_threshold, phash_threshold)
    started = time.perf_counter()
    with snapshot_files.locked(folder_root):
        folder = snapshot_files.folder_for(folder_root, state, thresholds)
        arrays = snapshot_files.load(folder)
        if arrays is None:
            built = build(db, pdq_threshold, phash_threshold, frame_threshold)
            state, folder = built.state, snapshot_files.folder_for(folder_root, built.state, thresholds)
            snapshot_files.save(folder, _arrays(built))
            arrays = snapshot_files.load(folder)  # the builder maps the files too: one copy on the host
            assert arrays is not None, folder
            videos = (built.video_ids, built.video_frames, built.frame_owner, built.frame_pos, built.frames)
            del built
        else:
            videos = None
    snap = _from_arrays(state, arrays, pdq_threshold, phash_threshold)
    snap.built_here = videos is not None
    if videos is None:
        _index_frames(snap, _confirmed_videos(db), frame_threshold)
    else:
        snap.video_ids, snap.video_frames, snap.frame_owner, snap.frame_pos, snap.frames = videos
    snap.built_in_s = time.perf_counter() - started
    log.info("bank index mapped from %s: %d PDQ, %d pHash entries, %d videos in %.2fs",
             folder, len(snap.pdq_ids), len(snap.phash_ids), len(snap.video_ids), snap.built_in_s)
    return snap


def build(db: Database, pdq_threshold: int, phash_threshold: int,
          frame_threshold: int = DEFAULT_FRAME_THRESHOLD) -> Snapshot:
    started = time.perf_counter()
    pdq, phash = _Column(32), _Column(8)
    video_rows: list = []
    entries = models.BankEntry.__table__.c
    with db.session() as session:
        state = banks.generation_state(session)
        # Core rows (plain tuples), streamed: the ORM's per-row work would triple the load time.
        for chunk in stream_rows(session, select(entries.id, entries.pdq, entries.pdq_quality, entries.phash,
                                                 entries.frame_pdqs)
                                 .where(entries.status == "confirmed", entries.hash_state == "ready")):
            pdq.add([(e, p, q or 0) for e, p, q, _, _ in chunk if p])
            phash.add([(e, h, 0) for e, _, _, h, _ in chunk if h])
            video_rows.extend(_VideoRow(e, f) for e, _, _, _, f in chunk if f)
    snap = Snapshot(state=state)
    if len(pdq):
        snap.pdq_ids, hashes, snap.pdq_quality = pdq.arrays()
        snap.pdq = HammingIndex(hashes, pdq_threshold)
    if len(phash):
        snap.phash_ids, hashes, _ = phash.arrays()
        snap.phash = HammingIndex(hashes, phash_threshold)
        if np.array_equal(snap.phash_ids, snap.pdq_ids):  # the usual case: every entry has both hashes
            snap.phash_ids = snap.pdq_ids
    frame_count = _index_frames(snap, video_rows, frame_threshold)
    snap.built_in_s = time.perf_counter() - started
    metrics.BANK_INDEX_SECONDS.observe(snap.built_in_s)
    for kind, rows in (("pdq", len(pdq)), ("phash", len(phash)), ("video-frames", frame_count)):
        metrics.BANK_INDEX_ROWS.labels(kind).set(rows)
    log.info("bank index built: %d PDQ, %d pHash entries, %d videos (%d keyframes) in %.2fs (generation %s)",
             len(pdq), len(phash), len(snap.video_ids), frame_count, snap.built_in_s, state)
    return snap


class SnapshotHolder:
    """One snapshot per process, checked against the banks' generation on every use (one cheap query).
    With ``folder``, the processes of a host share one built copy (``shared``)."""

    def __init__(self, db: Database, pdq_threshold: int, phash_threshold: int,
                 frame_threshold: int = DEFAULT_FRAME_THRESHOLD, folder: Path | None = None) -> None:
        self.db, self.pdq_threshold, self.phash_threshold = db, pdq_threshold, phash_threshold
        self.frame_threshold, self.folder = frame_threshold, folder
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self, session: Session | None = None) -> Snapshot:
        """The snapshot of the banks' current generation; ``session``: read the generation in the caller's."""
        if session is None:
            with self.db.reading() as own:
                state = banks.generation_state(own)
        else:
            state = banks.generation_state(session)
        with self._lock:
            if self._snapshot is None or self._snapshot.state != state:
                if self.folder is None:
                    self._snapshot = build(self.db, self.pdq_threshold, self.phash_threshold, self.frame_threshold)
                else:
                    self._snapshot = shared(self.db, self.folder, self.pdq_threshold, self.phash_threshold,
                                            self.frame_threshold)
            return self._snapshot
