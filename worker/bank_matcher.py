"""Find what the banks know about one content: exact SHA-256 first, then PDQ (all 8 orientations)
and pHash near-duplicates. Only confirmed entries match."""
from __future__ import annotations

from sqlalchemy import select

from server import models
from server.db import Database
from worker.index.bank_snapshot import SnapshotHolder
from worker.stages.bank_match import BankHit
from worker.stages.hashes import PDQ_MIN_QUALITY, PerceptualHashes


class BankMatcher:
    def __init__(self, db: Database, pdq_threshold: int, phash_threshold: int) -> None:
        self.db = db
        self.holder = SnapshotHolder(db, pdq_threshold, phash_threshold)

    @property
    def generation(self) -> tuple[int, int]:
        return self.holder.current().state

    def match(self, sha256: str, hashes: PerceptualHashes | None, dihedral: list[str] | None = None) -> list[BankHit]:
        found: dict[str, tuple[str, int, int]] = {}  # entry id -> (method, distance, variant)
        snap = self.holder.current()
        with self.db.session() as session:
            exact = session.scalars(select(models.BankEntry.id).where(
                models.BankEntry.sha256 == sha256, models.BankEntry.status == "confirmed")).all()
        for entry_id in exact:
            found[entry_id] = ("sha256", 0, 0)
        if hashes is not None and hashes.pdq_usable:
            # Flat images (low PDQ quality) match by exact bytes only: their PDQ and pHash are
            # degenerate (every flat image's pHash is 8000000000000000) and would match each other.
            pdq_hits: dict[str, tuple[int, int]] = {}
            for variant, hex_hash in enumerate(dihedral or [hashes.pdq]):
                for entry_id, dist, quality in snap.search_pdq(hex_hash):
                    if quality >= PDQ_MIN_QUALITY and (entry_id not in pdq_hits or dist < pdq_hits[entry_id][0]):
                        pdq_hits[entry_id] = (dist, variant)
            for entry_id, (dist, variant) in pdq_hits.items():
                found.setdefault(entry_id, ("pdq", dist, variant))
            for entry_id, dist in snap.search_phash(hashes.phash):
                found.setdefault(entry_id, ("phash", dist, 0))
        if not found:
            return []
        with self.db.session() as session:
            rows = session.execute(
                select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
                .where(models.BankEntry.id.in_(list(found)), models.BankEntry.status == "confirmed")
            ).all()
        hits = []
        for entry, bank in rows:
            method, dist, variant = found[entry.id]
            hits.append(BankHit(entry_id=entry.id, bank=bank.name, bank_kind=bank.kind, label=entry.label,
                                notes=entry.notes, method=method, distance=dist, variant=variant,
                                source_links=list(entry.source_links or []), source_url=entry.source_url))
        return hits
