"""The manifest repository: valid manifests Credence has read, kept with the soft bindings that find them
again once a platform strips them from a copy (docs/repository.md).

The one home of its rules and queries. Only manifests whose validation was trusted or valid-but-untrusted
are recorded (read from a final verdict's evidence, where the worker records verdicts); a content whose
credentials later read otherwise (tampered, expired, unchecked) loses its row, and nothing else is ever served. Lookups are exact scans at the
configured thresholds over a per-process copy of the hashes (numpy popcount), refreshed from what changed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from server import models
from server.verdicts import Evidence
from server.vocabulary import Kind, Stage, is_ai_declaration, is_c2pa

ISCC_ALG = "io.iscc.v0"  # ISO 24138, on C2PA's soft-binding algorithm list
PDQ_BINDING = "pdq"
ISCC_BINDING = ISCC_ALG
STATES = {Kind.C2PA_TRUSTED: "trusted", Kind.C2PA_UNTRUSTED: "valid"}
SERVED_STATES = ("trusted", "valid")
ISCC_THRESHOLD = 6  # of 64 bits; flat images never reach a lookup (their PDQ quality is too low)
PDQ_MIN_QUALITY = 50  # as the banks: below it PDQ is degenerate
_SCAN_BATCH = 20_000


@dataclass
class Recovery:
    """A stored original whose credentials a copy's soft bindings matched."""

    manifest_id: str
    sha256: str
    label: str
    state: str
    signer: dict[str, Any]
    signing_time: str | None
    actions: list[Any]
    ai_declarations: list[dict[str, Any]]
    thumbnail: dict[str, Any] | None
    binding: str
    distance: int
    bindings: list[dict[str, str]] = field(default_factory=list)

    @property
    def signer_words(self) -> str:
        org, cn = self.signer.get("organisation"), self.signer.get("common_name")
        if org and cn and cn != org:
            return f"{org} ({cn})"
        return org or cn or "an unnamed signer"

    def details(self) -> dict[str, Any]:
        return {"manifest_id": self.manifest_id, "original_sha256": self.sha256, "manifest": self.label,
                "state": self.state, "signer": self.signer, "signing_time": self.signing_time,
                "actions": self.actions, "ai_declarations": self.ai_declarations, "thumbnail": self.thumbnail,
                "binding": self.binding, "distance": self.distance}


def _bits(hex_values: Sequence[str | None], width: int) -> np.ndarray:
    """Hex hashes as rows of uint64 words; missing or malformed ones become all-ones (near nothing real)."""
    chars = width // 4
    blank = "f" * chars
    text = "".join(v if isinstance(v, str) and len(v) == chars else blank for v in hex_values)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return np.vstack([_bits([v], width) for v in hex_values]) if len(hex_values) > 1 else _bits([None], width)
    return np.frombuffer(raw, dtype=">u8").reshape(-1, width // 64).astype(np.uint64)


# RFC 4648 base32 -> the digits int(..., 32) reads, so a code decodes without a bytes round trip.
_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHIJKLMNOPQRSTUV")


def iscc_digest(code: str | None) -> str | None:
    """The 64-bit body of an ``ISCC:EE...`` Image-Code (Content-Code, Image, 64 bits) as hex, or None."""
    text = code.removeprefix("ISCC:").strip().upper() if isinstance(code, str) else ""
    if len(text) != 16 or not text.startswith("EE"):
        return None
    try:
        value = int(text.translate(_B32), 32)
    except ValueError:
        return None
    return f"{value & (2 ** 64 - 1):016x}"


# --------------------------------------------------------------------------- recording

def _by_kind(evidence: Iterable[Evidence]) -> dict[str, Evidence]:
    found: dict[str, Evidence] = {}
    for item in evidence:
        found.setdefault(str(item.kind), item)
    return found


def record_from_verdict(session: Session, sha256: str, evidence: Sequence[Evidence],
                        read_store: Callable[[str], bytes | None]) -> models.ProvenanceManifest | None:
    """Keep (or refresh) the manifest of a final verdict's content when it validated; forget it when the
    content's credentials now fail. ``read_store`` gives the media store's bytes for the stored JUMBF."""
    kinds = _by_kind(evidence)
    c2pa = next((kinds[k] for k in STATES if k in kinds), None)
    if c2pa is None and any(e.stage == Stage.C2PA and is_c2pa(e.kind) for e in evidence):
        forget(session, sha256)  # broken, expired, unchecked or unreadable now: never served again
        return None
    bindings = kinds.get(Kind.SOFT_BINDINGS)
    if c2pa is None or bindings is None:
        return None
    d, b = c2pa.details, bindings.details
    hashes = kinds.get(Kind.HASHES)
    h = hashes.details if hashes is not None else {}
    decoded = kinds.get(Kind.DECODED)
    stamp = d.get("timestamp") if isinstance(d.get("timestamp"), dict) else {}
    thumb = d.get("thumbnail") if isinstance(d.get("thumbnail"), dict) else {}
    store_ref = b.get("store") if isinstance(b.get("store"), dict) else {}
    store = read_store(store_ref["sha256"]) if store_ref.get("sha256") else None
    signer = d.get("signer") if isinstance(d.get("signer"), dict) else {}
    declarations = [decl for e in evidence if e.stage == Stage.C2PA and is_ai_declaration(e.kind)
                    for decl in (e.details.get("declarations") or [])]
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == sha256))
    if row is None:
        row = models.ProvenanceManifest(sha256=sha256)
        session.add(row)
    row.mime = (decoded.details.get("mime") if decoded else None) or row.mime
    row.label = str(d.get("manifest") or "")
    row.state = STATES[Kind(c2pa.kind)]
    row.signer = {k: signer.get(k) for k in ("organisation", "common_name", "issuer", "algorithm", "serial")}
    row.signing_time = d.get("signing_time") or stamp.get("time")
    row.actions = list(d.get("actions") or [])[:24]
    row.ai_declarations = declarations[:16]
    row.thumbnail_sha256, row.thumbnail_format = thumb.get("sha256"), thumb.get("format")
    if store is not None:
        row.store, row.store_size = store, len(store)
    row.pdq, row.pdq_quality = h.get("pdq"), h.get("pdq_quality")
    row.pdq_dihedral = ",".join(h["dihedral"]) if isinstance(h.get("dihedral"), list) else None
    row.iscc = b.get("iscc")
    row.last_seen = func.now()  # the database's clock: every host's writes order the same way
    session.flush()
    session.execute(delete(models.ProvenanceBinding).where(models.ProvenanceBinding.manifest_id == row.id))
    for declared in list(b.get("declared") or [])[:16]:
        session.add(models.ProvenanceBinding(manifest_id=row.id, alg=str(declared["alg"])[:100],
                                             value=str(declared["value"])[:512]))
    return row


def forget(session: Session, sha256: str) -> bool:
    """Drop a content's manifest (its credentials no longer validate); True when there was one."""
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == sha256))
    if row is None:
        return False
    session.execute(delete(models.ProvenanceBinding).where(models.ProvenanceBinding.manifest_id == row.id))
    session.delete(row)
    return True


# --------------------------------------------------------------------------- recovery

def _recovery(session: Session, row: models.ProvenanceManifest, binding: str, distance: int) -> Recovery:
    declared = session.scalars(select(models.ProvenanceBinding).where(
        models.ProvenanceBinding.manifest_id == row.id)).all()
    return Recovery(
        manifest_id=row.id, sha256=row.sha256, label=row.label, state=row.state, signer=dict(row.signer or {}),
        signing_time=row.signing_time, actions=list(row.actions or []),
        ai_declarations=list(row.ai_declarations or []),
        thumbnail={"sha256": row.thumbnail_sha256, "format": row.thumbnail_format} if row.thumbnail_sha256 else None,
        binding=binding, distance=int(distance), bindings=[{"alg": b.alg, "value": b.value} for b in declared],
    )


@dataclass
class _Snapshot:
    """One process's copy of the searchable columns, refreshed by what changed since (``last_seen``)."""

    ids: list[str] = field(default_factory=list)
    pos: dict[str, int] = field(default_factory=dict)
    pdq: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.uint64))
    usable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    iscc: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.uint64))
    seen: datetime | None = None

    def apply(self, rows: Sequence[Any]) -> None:
        fresh = [r for r in rows if r[0] not in self.pos]
        known = [r for r in rows if r[0] in self.pos]
        if known:
            at = np.array([self.pos[r[0]] for r in known])
            self.pdq[at] = _bits([r[1] for r in known], 256)
            self.usable[at] = [(r[2] or 0) >= PDQ_MIN_QUALITY for r in known]
            self.iscc[at] = _bits([iscc_digest(r[3]) for r in known], 64)
        if fresh:
            for r in fresh:
                self.pos[r[0]] = len(self.ids)
                self.ids.append(r[0])
            self.pdq = np.concatenate([self.pdq, _bits([r[1] for r in fresh], 256)])
            self.usable = np.concatenate([self.usable, np.array([(r[2] or 0) >= PDQ_MIN_QUALITY for r in fresh])])
            self.iscc = np.concatenate([self.iscc, _bits([iscc_digest(r[3]) for r in fresh], 64)])
        newest = max((r[4] for r in rows if r[4] is not None), default=None)
        if newest is not None and (self.seen is None or _aware(newest) > self.seen):
            self.seen = _aware(newest)


_SNAPSHOTS: dict[str, _Snapshot] = {}
_CLOCK_SKEW = timedelta(seconds=30)  # a transaction stamped at its start may commit this much later


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _snapshot(session: Session) -> _Snapshot:
    """The searchable columns of every served manifest. Each lookup asks the database what changed since the
    last one (an indexed ``last_seen`` range); a count that no longer agrees (a manifest forgotten) rebuilds."""
    m = models.ProvenanceManifest
    key = str(session.get_bind().url)
    snap = _SNAPSHOTS.get(key) or _Snapshot()
    served = m.state.in_(SERVED_STATES)
    columns = select(m.id, m.pdq, m.pdq_quality, m.iscc, m.last_seen).where(served)
    count = session.scalar(select(func.count()).select_from(m).where(served)) or 0
    if snap.seen is not None:
        snap.apply(session.execute(columns.where(m.last_seen >= snap.seen - _CLOCK_SKEW)).all())
    if len(snap.ids) != count:
        snap = _Snapshot()
        for batch in session.execute(columns.execution_options(yield_per=_SCAN_BATCH)).partitions(_SCAN_BATCH):
            snap.apply(batch)
    _SNAPSHOTS[key] = snap
    return snap


def _nearest(snap: _Snapshot, pdq: Sequence[str], iscc: str | None, pdq_threshold: int,
             iscc_threshold: int) -> tuple[str, int, str] | None:
    """(binding, distance, manifest id) of the best candidate: any PDQ match before any ISCC one."""
    if not snap.ids:
        return None
    if pdq:
        dist = np.full(len(snap.ids), 257)
        for variant in _bits(list(pdq), 256):
            dist = np.minimum(dist, np.bitwise_count(snap.pdq ^ variant).sum(axis=1))
        dist = np.where(snap.usable, dist, 257)
        i = int(dist.argmin())
        if dist[i] <= pdq_threshold:
            return PDQ_BINDING, int(dist[i]), snap.ids[i]
    digest = iscc_digest(iscc)
    if digest:
        dist = np.bitwise_count(snap.iscc ^ _bits([digest], 64)[0]).sum(axis=1)
        i = int(dist.argmin())
        if dist[i] <= iscc_threshold:
            return ISCC_BINDING, int(dist[i]), snap.ids[i]
    return None


def find(session: Session, *, pdq: Sequence[str], iscc: str | None, pdq_threshold: int,
         iscc_threshold: int = ISCC_THRESHOLD, exclude_sha256: str | None = None) -> Recovery | None:
    """The stored original nearest a copy: PDQ (any of the copy's orientations, within the banks' threshold)
    first, then the ISCC Image-Code (exact, then near). Only trusted or valid manifests are ever served."""
    for _ in range(2):
        best = _nearest(_snapshot(session), pdq, iscc, pdq_threshold, iscc_threshold)
        if best is None:
            return None
        row = session.get(models.ProvenanceManifest, best[2])
        if row is not None:
            break
        # Forgotten while another was added (the count agreed): rebuild once.
        _SNAPSHOTS.pop(str(session.get_bind().url), None)
    if row is None or row.state not in SERVED_STATES or row.sha256 == exclude_sha256:
        return None
    return _recovery(session, row, best[0], best[1])


def find_by_binding(session: Session, alg: str, value: str) -> list[Recovery]:
    """Manifests that declare exactly this soft-binding value (e.g. a watermark id read by another tool)."""
    rows = session.scalars(
        select(models.ProvenanceManifest).join(models.ProvenanceBinding,
                                               models.ProvenanceBinding.manifest_id == models.ProvenanceManifest.id)
        .where(models.ProvenanceBinding.alg == alg, models.ProvenanceBinding.value == value,
               models.ProvenanceManifest.state.in_(SERVED_STATES)).limit(100)).all()
    return [_recovery(session, row, alg, 0) for row in dict.fromkeys(rows)]
