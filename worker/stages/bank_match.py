"""Turn bank hits into evidence: a confirmed fake is decisive, a registered original is news."""
from __future__ import annotations

from dataclasses import dataclass, field

from server.verdicts import Evidence, Level
from worker.stages.hashes import ORIENTATION_NAMES

BITS = {"sha256": 1, "pdq": 256, "phash": 64}
STAGE = "bank-match"


@dataclass(frozen=True)
class BankHit:
    entry_id: str
    bank: str
    bank_kind: str  # fake | original
    label: str
    notes: str
    method: str  # sha256 | pdq | phash
    distance: int
    variant: int = 0  # index into ORIENTATION_NAMES for PDQ matches
    source_links: list[str] = field(default_factory=list)
    source_url: str | None = None


def _how(hit: BankHit) -> str:
    if hit.method == "sha256":
        return "the identical file"
    how = f"{hit.method.upper() if hit.method == 'pdq' else 'pHash'} distance {hit.distance} of {BITS[hit.method]}"
    if hit.variant:
        how += f", {ORIENTATION_NAMES[hit.variant]}"
    return how


def score(hit: BankHit) -> float:
    """Similarity in [0, 1]: 1 for identical bytes, 1 - distance/bits for perceptual matches."""
    return 1.0 if hit.method == "sha256" else round(1 - hit.distance / BITS[hit.method], 4)


def evidence(hits: list[BankHit]) -> list[Evidence]:
    out = []
    for hit in sorted(hits, key=lambda h: -score(h)):
        details = {"entry_id": hit.entry_id, "bank": hit.bank, "bank_kind": hit.bank_kind, "label": hit.label,
                   "notes": hit.notes, "method": hit.method, "distance": hit.distance,
                   "transform": ORIENTATION_NAMES[hit.variant], "source_links": hit.source_links}
        if hit.bank_kind == "fake":
            out.append(Evidence(stage=STAGE, kind="known-fake", supports=Level.KNOWN_FAKE, score=score(hit),
                                summary=f"Matches a confirmed fake in “{hit.bank}”: {hit.label} ({_how(hit)}).",
                                details=details))
        else:
            source = hit.source_links[0] if hit.source_links else (hit.source_url or hit.bank)
            word = "Identical to" if hit.method == "sha256" else "Near duplicate of"
            out.append(Evidence(stage=STAGE, kind="near-original", score=score(hit),
                                summary=f"{word} a registered original: {hit.label} ({source}; {_how(hit)}).",
                                details=details))
    return out
