"""The confirmed entries of every bank, indexed in memory; rebuilt when a bank generation changes."""
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

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    state: tuple[int, int]
    pdq_ids: list[str] = field(default_factory=list)
    pdq_quality: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    pdq: HammingIndex | None = None
    phash_ids: list[str] = field(default_factory=list)
    phash: HammingIndex | None = None
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


def build(db: Database, pdq_threshold: int, phash_threshold: int) -> Snapshot:
    started = time.perf_counter()
    with db.session() as session:
        state = banks.generation_state(session)
        rows = session.execute(
            select(models.BankEntry.id, models.BankEntry.pdq, models.BankEntry.pdq_quality, models.BankEntry.phash)
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
    snap.built_in_s = time.perf_counter() - started
    log.info("bank index built: %d PDQ, %d pHash entries in %.2fs (generation %s)",
             len(pdq_rows), len(phash_rows), snap.built_in_s, state)
    return snap


class SnapshotHolder:
    """One snapshot per process, checked against the banks' generation on every use (one cheap query)."""

    def __init__(self, db: Database, pdq_threshold: int, phash_threshold: int) -> None:
        self.db, self.pdq_threshold, self.phash_threshold = db, pdq_threshold, phash_threshold
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self) -> Snapshot:
        with self.db.session() as session:
            state = banks.generation_state(session)
        with self._lock:
            if self._snapshot is None or self._snapshot.state != state:
                self._snapshot = build(self.db, self.pdq_threshold, self.phash_threshold)
            return self._snapshot
