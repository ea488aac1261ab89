"""'What do we have that looks like this?': every entry of every bank, any status, with distances.

Runs in the API process over the record (brute force with numpy popcount). The workers' in-memory
index serves the hot matching path; this serves people asking, so it favours completeness.
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


def search(session: Session, *, sha256: str | None, pdq: str | None, phash: str | None,
           limit: int = 50) -> list[dict[str, Any]]:
    rows = session.execute(select(models.BankEntry, models.Bank)
                           .join(models.Bank, models.Bank.id == models.BankEntry.bank_id)).all()
    if not rows:
        return []
    entries = [r[0] for r in rows]
    pdq_d = _distances([e.pdq for e in entries], pdq, 32) if pdq else np.full(len(entries), -1)
    phash_d = _distances([e.phash for e in entries], phash, 8) if phash else np.full(len(entries), -1)
    results = []
    for i, (entry, bank) in enumerate(rows):
        exact = bool(sha256 and entry.sha256 == sha256)
        near_pdq = 0 <= pdq_d[i] <= SEARCH_PDQ_DISTANCE
        near_phash = 0 <= phash_d[i] <= SEARCH_PHASH_DISTANCE
        if exact or near_pdq or near_phash:
            results.append({
                "entry": banks.entry_dict(entry, bank), "exact": exact,
                "pdq_distance": int(pdq_d[i]) if pdq_d[i] >= 0 else None,
                "phash_distance": int(phash_d[i]) if phash_d[i] >= 0 else None,
            })
    results.sort(key=lambda r: (not r["exact"], r["pdq_distance"] if r["pdq_distance"] is not None else 999,
                                r["phash_distance"] if r["phash_distance"] is not None else 999))
    return results[:limit]
