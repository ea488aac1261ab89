"""The manifest repository: valid manifests Credence has read, kept with the soft bindings that find them
again once a platform strips them from a copy (docs/repository.md).

The one home of its rules and queries. Only manifests whose validation was trusted or valid-but-untrusted
are recorded (read from a final verdict's evidence, where the worker records verdicts); a content whose
credentials later read otherwise (tampered, expired, unchecked) loses its row, and nothing else is ever served.
Lookups are exact at the configured thresholds over a per-process copy of the hashes, refreshed from what
changed: the banks' multi-index (server/banks/hamming.py) over the bulk, a popcount scan over the rows
changed since it was built.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from server import json_edge, models
from server.banks.hamming import HammingIndex
from server.exchange import feed
from server.verdicts import Evidence
from server.vocabulary import Kind, Stage, is_ai_declaration, is_c2pa

ISCC_ALG = "io.iscc.v0"  # ISO 24138, on C2PA's soft-binding algorithm list
PDQ_BINDING = "pdq"
VPDQ_BINDING = "vpdq"  # a video's frame PDQs (ThreatExchange's signal name): a copy's frames matched a signed video's
ISCC_BINDING = ISCC_ALG
STATES = {Kind.C2PA_TRUSTED: "trusted", Kind.C2PA_UNTRUSTED: "valid"}
SERVED_STATES = ("trusted", "valid")
ISCC_THRESHOLD = 6  # of 64 bits; flat images never reach a lookup (their PDQ quality is too low)
PDQ_MIN_QUALITY = 50  # as the banks: below it PDQ is degenerate
_SCAN_BATCH = 20_000
PEER_ORIGIN = "peer "  # + the name a peer's key signs as: the origin of a record pulled from its feed


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
    origin: str | None = None  # None: read here; else another instance's reading (an import)
    # An import's re-validation here (``record_revalidation``): None when it never ran.
    revalidation: dict[str, Any] | None = None

    @property
    def counts(self) -> bool:
        """Whether this instance's own reading stands behind the match: a manifest read here, or an import whose
        store validated here and whose signed manifest proves the binding that matched."""
        if self.origin is None:
            return True
        done = self.revalidation or {}
        return bool(done.get("counts")) and self.binding in (done.get("bindings") or [])

    @property
    def from_peer(self) -> bool:
        """Pulled from a peer's signed feed (else, when it has an origin, imported from a file)."""
        return bool(self.origin and self.origin.startswith(PEER_ORIGIN))

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
                "binding": self.binding, "distance": self.distance, "origin": self.origin,
                "revalidation": self.revalidation}


def _bits(hex_values: Sequence[str | None], width: int) -> np.ndarray:
    """Hex hashes as rows of bytes in the hex's bit order (as the banks' index reads them); missing or malformed
    ones become all-ones (near nothing real)."""
    chars = width // 4
    blank = "f" * chars
    text = "".join(v if isinstance(v, str) and len(v) == chars else blank for v in hex_values)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return np.vstack([_bits([v], width) for v in hex_values]) if len(hex_values) > 1 else _bits([None], width)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, width // 8)


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
                        read_store: Callable[[str], bytes | None], *,
                        share: bool = False) -> models.ProvenanceManifest | None:
    """Keep (or refresh) the manifest of a final verdict's content when it validated; forget it when the
    content's credentials now fail. ``read_store`` gives the media store's bytes for the stored JUMBF. With
    ``share`` (CREDENCE_SHARE_MANIFESTS) a change a peer would need goes on the feed in the same transaction."""
    kinds = _by_kind(evidence)
    c2pa = next((kinds[k] for k in STATES if k in kinds), None)
    if c2pa is None and any(e.stage == Stage.C2PA and is_c2pa(e.kind) for e in evidence):
        forget(session, sha256, share=share)  # broken, expired, unchecked or unreadable now: never served again
        return None
    bindings = kinds.get(Kind.SOFT_BINDINGS)
    if c2pa is None or bindings is None:
        return None
    b = bindings.details
    hashes = kinds.get(Kind.HASHES)
    h = hashes.details if hashes is not None else {}
    decoded = kinds.get(Kind.DECODED)
    store_ref = b.get("store") if isinstance(b.get("store"), dict) else {}
    store = read_store(store_ref["sha256"]) if store_ref.get("sha256") else None
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == sha256))
    before = shared_record(session, row) if share and row is not None and row.origin is None else None
    if row is not None and row.origin is not None:
        # Read here now: this instance's own reading outranks the copy's (imported from a file or a peer), which
        # it replaces whole; a peer's later withdrawal no longer touches it.
        row.origin, row.revalidation, row.store, row.store_size = None, None, None, None
    if row is None:
        row = models.ProvenanceManifest(sha256=sha256)
        session.add(row)
    row.mime = (decoded.details.get("mime") if decoded else None) or row.mime
    _apply_reading(row, c2pa, evidence)
    if store is not None:
        row.store, row.store_size = store, len(store)
    row.pdq, row.pdq_quality = h.get("pdq"), h.get("pdq_quality")
    row.pdq_dihedral = ",".join(h["dihedral"]) if isinstance(h.get("dihedral"), list) else None
    row.iscc = b.get("iscc")
    row.frame_pdqs = _video_frames(kinds.get(Kind.VIDEO_HASHES))
    row.last_seen = func.now()  # the database's clock: every host's writes order the same way
    _replace_bindings(session, row, list(b.get("declared") or []))
    if share and row.origin is None and row.store:
        session.flush()
        after = shared_record(session, row)
        if after != before:  # new, or a field a reader keeps changed: a re-read of the same asset says nothing
            feed.record_manifest(session, row.id, after)
    return row


def publish_existing(session: Session) -> int:
    """Put on the feed this instance's own served records that never went there (kept before
    CREDENCE_SHARE_MANIFESTS was turned on, or while it was off), as ``record_from_verdict`` would have; returns
    how many. Idempotent: a record with a manifest event is left alone (its later changes publish themselves)."""
    m, e = models.ProvenanceManifest, models.FeedEvent
    published = select(e.entry_id).where(e.kind == "manifest")
    rows = session.scalars(select(m).where(m.origin.is_(None), m.state.in_(SERVED_STATES), m.store.is_not(None),
                                           m.id.not_in(published)).order_by(m.first_seen, m.id)).all()
    for row in rows:
        feed.record_manifest(session, row.id, shared_record(session, row))
    return len(rows)


def shared_record(session: Session, row: models.ProvenanceManifest) -> dict[str, Any]:
    """What a feed event carries of one of this instance's own records: ``manifest_record`` with the store inline
    and no thumbnail (the signed thumbnail is inside the store; a reader takes it from there when it re-validates)."""
    return manifest_record(session, row, lambda sha: None)


def _apply_reading(row: models.ProvenanceManifest, c2pa: Evidence, evidence: Sequence[Evidence]) -> None:
    """The fields a validation here decides (label, state, signer, time, actions, AI declarations, thumbnail), from
    the pipeline's C2PA evidence: one rule for an asset read here and for an imported store re-validated here."""
    d = c2pa.details
    stamp = d.get("timestamp") if isinstance(d.get("timestamp"), dict) else {}
    thumb = d.get("thumbnail") if isinstance(d.get("thumbnail"), dict) else {}
    signer = d.get("signer") if isinstance(d.get("signer"), dict) else {}
    declarations = [decl for e in evidence if e.stage == Stage.C2PA and is_ai_declaration(e.kind)
                    for decl in (e.details.get("declarations") or [])]
    row.label = str(d.get("manifest") or "")
    row.state = STATES[Kind(c2pa.kind)]
    row.signer = {k: signer.get(k) for k in ("organisation", "common_name", "issuer", "algorithm", "serial")}
    row.signing_time = d.get("signing_time") or stamp.get("time")
    row.actions = list(d.get("actions") or [])[:24]
    row.ai_declarations = declarations[:16]
    row.thumbnail_sha256, row.thumbnail_format = thumb.get("sha256"), thumb.get("format")


def _replace_bindings(session: Session, row: models.ProvenanceManifest, declared: list[dict[str, Any]]) -> None:
    session.flush()
    session.execute(delete(models.ProvenanceBinding).where(models.ProvenanceBinding.manifest_id == row.id))
    for item in declared[:16]:
        session.add(models.ProvenanceBinding(manifest_id=row.id, alg=str(item["alg"])[:100],
                                             value=str(item["value"])[:512]))


def record_revalidation(session: Session, manifest_id: str, evidence: Sequence[Evidence], *, bindings: list[str],
                        declared: list[dict[str, str]], reason: str | None) -> models.ProvenanceManifest | None:
    """Keep the outcome of re-validating an imported record's store here (worker/stages/manifest_check.py).

    When it counts (the store validated here and its signed manifest proves a soft binding), the row takes this
    instance's reading, as ``record_from_verdict`` would from an asset: its state against these trust lists, the
    signer, actions, AI declarations and signed thumbnail, and the soft-binding values the manifest signs; the
    bindings it proves are kept, and only a match on one of them supports a level. Otherwise the row stays the
    exporter's reading, informational, with the reason. ``origin`` stays: it is still not this instance's own
    record, and is never exported as one."""
    row = session.get(models.ProvenanceManifest, manifest_id)
    if row is None or row.origin is None:
        return None
    c2pa = next((e for e in evidence if e.kind in STATES), None)
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if c2pa is not None and bindings and reason is None:
        _apply_reading(row, c2pa, evidence)
        _replace_bindings(session, row, declared)
        row.revalidation = {"at": at, "counts": True, "state": row.state, "bindings": bindings[:16]}
    else:
        row.revalidation = {"at": at, "counts": False, "reason": (reason or "it did not validate here")[:500]}
    row.last_seen = func.now()
    return row


def forget(session: Session, sha256: str, *, share: bool = False) -> bool:
    """Drop a content's manifest (its credentials no longer validate); True when there was one. With ``share``,
    a record of this instance's own that it may have published is withdrawn on the feed in the same transaction."""
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == sha256))
    if row is None:
        return False
    if share and row.origin is None:
        feed.record_manifest_withdrawal(session, row.id, row.sha256, row.label)
    session.execute(delete(models.ProvenanceBinding).where(models.ProvenanceBinding.manifest_id == row.id))
    session.delete(row)
    return True


def expire(session: Session, days: int, *, batch: int = 1000) -> int:
    """Forget every record untouched for ``days`` (CREDENCE_REPOSITORY_RETENTION_DAYS): what this instance keeps
    about the signed media its users met has an end. ``last_seen`` is what a check, an import or a re-validation
    stamps; a lookup that recovers a record does not (it would turn every read into a write). No withdrawal goes
    on the feed: expiry is this instance's housekeeping, not news about the credentials. Returns how many went."""
    if days <= 0:
        raise ValueError("a retention of at least one day")
    m = models.ProvenanceManifest
    cutoff = models.utcnow() - timedelta(days=days)  # a day's resolution: the hosts' clocks need not agree
    gone = 0
    while ids := list(session.scalars(select(m.id).where(m.last_seen < cutoff).order_by(m.id).limit(batch))):
        session.execute(delete(models.ProvenanceBinding).where(models.ProvenanceBinding.manifest_id.in_(ids)))
        session.execute(delete(m).where(m.id.in_(ids)))
        session.flush()
        gone += len(ids)
    return gone


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
        origin=row.origin, revalidation=dict(row.revalidation) if row.revalidation else None,
    )


_INDEX_MIN_ROWS = 2_048  # below, a scan of every row costs about what the index does: none is built
_DELTA_SHARE = 16  # rows added or changed since the index was built, past 1/16 of it, make it be built again
_MAX_PROBE_RADIUS = 2  # a wider threshold than the index can serve at this radius is scanned (never seen in use)


@dataclass
class _Snapshot:
    """One process's copy of the searchable columns, refreshed by what changed since (``last_seen``).

    Rows keep their place (``pos``) for the snapshot's life. Above ``_INDEX_MIN_ROWS`` the banks' exact
    multi-index (``HammingIndex``) answers for the rows ``[0, built)`` as they were at its build; the rows added
    since and the rows changed since (``stale``: their index entries hold the old value, so they are masked out of
    its answers) are scanned, until they grow past a share of it and it is built again."""

    ids: list[str] = field(default_factory=list)
    pos: dict[str, int] = field(default_factory=dict)
    pdq: np.ndarray = field(default_factory=lambda: np.zeros((0, 32), dtype=np.uint8))
    usable: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    iscc: np.ndarray = field(default_factory=lambda: np.zeros((0, 8), dtype=np.uint8))
    seen: datetime | None = None
    indexes: dict[str, Any] = field(default_factory=dict)  # column -> HammingIndex over rows [0, built)
    built: int = 0
    stale: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # False: found forgotten (``drop``)
    counted: float = -math.inf  # when the served rows were last counted (monotonic seconds)

    def apply(self, rows: Sequence[Any]) -> None:
        fresh = [r for r in rows if r[0] not in self.pos]
        known = [r for r in rows if r[0] in self.pos]
        if known:
            at = np.array([self.pos[r[0]] for r in known])
            pdq, iscc = _bits([r[1] for r in known], 256), _bits([iscc_digest(r[3]) for r in known], 64)
            usable = np.array([(r[2] or 0) >= PDQ_MIN_QUALITY for r in known])
            # Most are the overlap's rows read again unchanged; one that changed is no longer the index's to answer.
            moved = ((self.pdq[at] != pdq).any(axis=1) | (self.iscc[at] != iscc).any(axis=1)
                     | (self.usable[at] != usable))
            self.pdq[at], self.iscc[at], self.usable[at] = pdq, iscc, usable
            self.stale[at[moved & (at < self.built)]] = True
            self.live[at] = True
        if fresh:
            for r in fresh:
                self.pos[r[0]] = len(self.ids)
                self.ids.append(r[0])
            self.pdq = np.concatenate([self.pdq, _bits([r[1] for r in fresh], 256)])
            self.usable = np.concatenate([self.usable, np.array([(r[2] or 0) >= PDQ_MIN_QUALITY for r in fresh])])
            self.iscc = np.concatenate([self.iscc, _bits([iscc_digest(r[3]) for r in fresh], 64)])
            self.stale = np.concatenate([self.stale, np.zeros(len(fresh), dtype=bool)])
            self.live = np.concatenate([self.live, np.ones(len(fresh), dtype=bool)])
        newest = max((r[4] for r in rows if r[4] is not None), default=None)
        if newest is not None and (self.seen is None or _aware(newest) > self.seen):
            self.seen = _aware(newest)

    def drop(self, row_id: str) -> None:
        """A row the database no longer has (forgotten since the last count): never a candidate again."""
        self.live[self.pos[row_id]] = False

    def delta(self) -> np.ndarray:
        """The rows a lookup scans beside the index: changed since its build, or added after it."""
        return np.concatenate([np.flatnonzero(self.stale[:self.built]), np.arange(self.built, len(self.ids))])

    def index_for(self, thresholds: dict[str, int]) -> None:
        """Build the indexes (again) when none covers enough of the rows, or a lookup asks a wider threshold
        (within what the index serves) than they were built for; each is built for the widest asked so far."""
        if len(self.ids) < _INDEX_MIN_ROWS:
            return
        built_for = {column: getattr(self.indexes.get(column), "max_distance", -1) for column in thresholds}
        wanted = {column: max(limit if _indexable(limit, getattr(self, column).shape[1]) else -1, built_for[column])
                  for column, limit in thresholds.items()}
        wanted = {column: limit for column, limit in wanted.items() if limit >= 0}
        wider = any(limit > built_for[column] for column, limit in wanted.items())
        if self.indexes and not wider and len(self.delta()) * _DELTA_SHARE <= self.built:
            return
        # The index keeps a view of the column as it is: rows changed in place later are masked by ``stale``.
        self.indexes = {column: HammingIndex(getattr(self, column), limit) for column, limit in wanted.items()}
        self.built, self.stale = len(self.ids), np.zeros(len(self.ids), dtype=bool)


def _indexable(threshold: int, nbytes: int) -> bool:
    """Whether the multi-index serves this threshold at a small probe radius (16-bit substrings)."""
    return 0 <= threshold and math.ceil((threshold + 1) / (nbytes * 8 // 16)) - 1 <= _MAX_PROBE_RADIUS


def _distances(hashes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Hamming distance of every row of bytes to one query, popcount 64 bits at a time."""
    return np.bitwise_count(hashes.view(np.uint64) ^ query.view(np.uint64)).sum(axis=1, dtype=np.int32)


_SNAPSHOTS: dict[str, _Snapshot] = {}
_CLOCK_SKEW = timedelta(seconds=30)  # a transaction stamped at its start may commit this much later
# A count of the served rows scans the table (0.5 s at 1M manifests: bench/repository.py), so it runs at most this
# often; in between, ``find`` re-reads the row it picked, and one forgotten meanwhile is dropped and never served.
_RECOUNT_S = 60.0
_FORGOTTEN_RETRIES = 8  # rows found forgotten in one lookup before the whole copy is read again


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_MANIFESTS = models.ProvenanceManifest.__table__
_SERVED = _MANIFESTS.c.state.in_(SERVED_STATES)
# Built once: each fresh image without credentials reads what changed (Core, not the ORM: issue 17).
_SERVED_ROWS = select(_MANIFESTS.c.id, _MANIFESTS.c.pdq, _MANIFESTS.c.pdq_quality, _MANIFESTS.c.iscc,
                      _MANIFESTS.c.last_seen).where(_SERVED)
_CHANGED_ROWS = _SERVED_ROWS.where(_MANIFESTS.c.last_seen >= bindparam("since"))


def _snapshot(session: Session) -> _Snapshot:
    """The searchable columns of every served manifest. Each lookup asks the database what changed since the
    last one (an indexed ``last_seen`` range); a count (at most every ``_RECOUNT_S``) that no longer agrees with
    the rows still live here (manifests forgotten) reads every row again."""
    key = str(session.get_bind().url)
    snap = _SNAPSHOTS.get(key) or _Snapshot()
    if snap.seen is None:  # nothing read yet (a new copy): every row
        _read_all(session, snap)
    else:
        snap.apply(session.execute(_CHANGED_ROWS, {"since": snap.seen - _CLOCK_SKEW}).all())
    now = time.monotonic()
    if now - snap.counted >= _RECOUNT_S:
        count = session.scalar(select(func.count()).select_from(_MANIFESTS).where(_SERVED)) or 0
        snap.counted = now
        if int(snap.live.sum()) != count:
            snap = _Snapshot(counted=now)
            _read_all(session, snap)
    _SNAPSHOTS[key] = snap
    return snap


def _read_all(session: Session, snap: _Snapshot) -> None:
    """Every row into an empty copy, streamed; later lookups read only what changed since the database's clock
    now (an empty repository too: it was read again at every lookup, a streamed read of seven round trips with
    PostgreSQL on every fresh image)."""
    snap.seen = _aware(session.scalar(select(func.now())))
    for batch in session.execute(_SERVED_ROWS.execution_options(yield_per=_SCAN_BATCH)).partitions(_SCAN_BATCH):
        snap.apply(batch)


def _closest(snap: _Snapshot, column: str, queries: np.ndarray, threshold: int,
             delta: np.ndarray) -> tuple[int, int] | None:
    """(distance, row) of the row nearest any of the queries within the threshold, the first row of equals (as
    a scan of every row picks); PDQs of low quality never count. Exact either way: the index finds every row
    within its radius (tests/test_hamming_index.py), and what it does not answer for is scanned."""
    hashes = getattr(snap, column)
    index = snap.indexes.get(column)
    rows, dists = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int32)]
    if index is not None and threshold <= index.max_distance:
        recent = hashes[delta]
        for query in queries:
            found, dist = index.search(query, threshold)
            current = ~snap.stale[found]
            scanned = _distances(recent, query)
            near = scanned <= threshold
            rows += [found[current], delta[near]]
            dists += [dist[current], scanned[near]]
    else:
        for query in queries:
            dist = _distances(hashes, query)
            near = np.flatnonzero(dist <= threshold)
            rows.append(near)
            dists.append(dist[near])
    row, dist = np.concatenate(rows), np.concatenate(dists)
    keep = snap.live[row] & snap.usable[row] if column == "pdq" else snap.live[row]
    row, dist = row[keep], dist[keep]
    if not len(row):
        return None
    best = np.lexsort((row, dist))[0]
    return int(dist[best]), int(row[best])


def _nearest(snap: _Snapshot, pdq: Sequence[str], iscc: Callable[[], str | None], pdq_threshold: int,
             iscc_threshold: int) -> tuple[str, int, str] | None:
    """(binding, distance, manifest id) of the best candidate: any PDQ match before any ISCC one."""
    if not snap.ids:
        return None
    snap.index_for({"pdq": pdq_threshold, "iscc": iscc_threshold})
    delta = snap.delta()
    if pdq:
        best = _closest(snap, "pdq", _bits(list(pdq), 256), pdq_threshold, delta)
        if best is not None:
            return PDQ_BINDING, best[0], snap.ids[best[1]]
    digest = iscc_digest(iscc())
    if digest:
        best = _closest(snap, "iscc", _bits([digest], 64), iscc_threshold, delta)
        if best is not None:
            return ISCC_BINDING, best[0], snap.ids[best[1]]
    return None


def find(session: Session, *, pdq: Sequence[str], iscc: str | Callable[[], str | None] | None, pdq_threshold: int,
         iscc_threshold: int = ISCC_THRESHOLD, exclude_sha256: str | None = None) -> Recovery | None:
    """The stored original nearest a copy: PDQ (any of the copy's orientations, within the banks' threshold)
    first, then the ISCC Image-Code (exact, then near). Only trusted or valid manifests are ever served.
    ``iscc`` may be a function: then it is computed only when the lookup gets that far (an empty repository or
    a PDQ match never does), which spares the pipeline most of this rule's cost."""
    code = functools.cache(iscc) if callable(iscc) else (lambda: iscc)
    for attempt in range(_FORGOTTEN_RETRIES + 1):
        if attempt == _FORGOTTEN_RETRIES:
            _SNAPSHOTS.pop(str(session.get_bind().url), None)  # many forgotten at once: read every row again
        snap = _snapshot(session)
        best = _nearest(snap, pdq, code, pdq_threshold, iscc_threshold)
        if best is None:
            return None
        row = session.get(models.ProvenanceManifest, best[2])
        if row is not None:
            break
        snap.drop(best[2])  # forgotten since the last count: the next nearest is the candidate
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


# --------------------------------------------------------------------------- video frames

@dataclass
class FrameRecovery(Recovery):
    """A stored original that frames of a video without credentials look like: a signed video (its vPDQ frames
    matched the copy's) or a signed picture (its PDQ matched some of the copy's frames). What it proves depends
    on how much of the copy matched (``share``): a frame that looks like a signed picture says nothing about
    the rest of the video, nor who made it."""

    t: float = 0.0  # the copy's frame of the nearest pair, in seconds
    original_t: float | None = None  # the original video's frame of that pair; None when the original is a picture
    frames_matched: int = 0  # the copy's usable frames within the threshold of some frame of the original
    frames: int = 0  # the copy's usable frames (quality >= 50, repeated hashes once)
    original_frames: int = 0  # the original's usable frames (1 for a picture)

    @property
    def share(self) -> float:
        return self.frames_matched / self.frames if self.frames else 0.0

    @property
    def original_is_video(self) -> bool:
        return self.original_t is not None

    def details(self) -> dict[str, Any]:
        return {**super().details(),
                "frames": {"t": self.t, "original_t": self.original_t, "matched": self.frames_matched,
                           "of": self.frames, "share": round(self.share, 4), "original_frames": self.original_frames,
                           "original": "video" if self.original_is_video else "image"}}


def _video_frames(hashes: Evidence | None) -> str | None:
    """A video verdict's vPDQ frames (the ``video-hashes`` evidence) in the column's form (models.encode_frames)."""
    raw = hashes.details.get("frames") if hashes is not None else None
    try:
        return _encoded_frames(raw) if isinstance(raw, list) else None
    except ValueError:
        return None  # never from the pipeline; a malformed verdict keeps no frames rather than failing the record


def _encoded_frames(frames: Any) -> str | None:
    """A record's ``frames`` ([{t, pdq, quality}], at most models.MAX_FRAMES) in the column's form; ValueError says
    what is wrong (the file import lists it)."""
    if frames is None:
        return None
    if not isinstance(frames, list) or len(frames) > models.MAX_FRAMES:
        raise ValueError(f"frames must be a list of at most {models.MAX_FRAMES} {{t, pdq, quality}} objects")
    out = []
    for f in frames:
        t, quality = f.get("t") if isinstance(f, dict) else None, f.get("quality") if isinstance(f, dict) else None
        if not (isinstance(f, dict) and _is_hex(f.get("pdq"), 64) and isinstance(quality, int)
                and not isinstance(quality, bool) and 0 <= quality <= 100 and isinstance(t, (int, float))
                and not isinstance(t, bool) and 0 <= t < 1e7):
            raise ValueError("each frame needs t (seconds >= 0), pdq (64 hex digits) and quality (0-100)")
        out.append(models.StoredFrame(t=float(t), pdq=f["pdq"], quality=quality))
    return models.encode_frames(out)


def _stored_frames(text: str | None) -> list[dict[str, Any]]:
    try:
        return [f._asdict() for f in models.decode_frames(text)]
    except ValueError:
        return []


def _usable_frames(frames: Iterable[Any]) -> list[Any]:
    """Frames of quality >= 50 (flat frames match each other), each hash once, in order (vPDQ's rule)."""
    seen: set[str] = set()
    out = []
    for f in frames:
        if (f.quality or 0) >= PDQ_MIN_QUALITY and _is_hex(f.pdq, 64) and f.pdq not in seen:
            seen.add(f.pdq)
            out.append(f)
    return out


_NO_FRAMES = (np.zeros((0, 4), dtype=np.uint64), np.zeros(0))


def _frame_entries(frame_pdqs: str | None) -> tuple[np.ndarray, np.ndarray]:
    """One video row's searchable frames (the usable ones) and their times."""
    try:
        frames = _usable_frames(models.decode_frames(frame_pdqs))
    except ValueError:
        return _NO_FRAMES
    if not frames:
        return _NO_FRAMES
    return _bits([f.pdq for f in frames], 256).view(np.uint64), np.array([f.t for f in frames], dtype=float)


@dataclass
class _FrameSnapshot:
    """One process's copy of every served video's frames. Searched by brute force (numpy popcount over all of them;
    signed videos are few beside signed pictures, whose PDQs the rows' index answers for); refreshed by
    ``last_seen`` as the rows' snapshot is."""

    rows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seen: datetime | None = None
    counted: float = -math.inf  # when the served videos were last counted (monotonic seconds)
    _packed: tuple[list[str], np.ndarray, np.ndarray, np.ndarray] | None = None

    def apply(self, rows: Sequence[Any]) -> None:
        for r in rows:
            self.rows[r[0]] = _frame_entries(r[1])
        if rows:
            self._packed = None
        newest = max((r[2] for r in rows if r[2] is not None), default=None)
        if newest is not None and (self.seen is None or _aware(newest) > self.seen):
            self.seen = _aware(newest)

    def packed(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(row ids, each frame's row index, frames' PDQ bits, frames' times), rebuilt after a change."""
        if self._packed is None:
            ids = list(self.rows)
            parts = [self.rows[i] for i in ids]
            owner = np.repeat(np.arange(len(ids)), [len(p[1]) for p in parts]) if ids else np.zeros(0, dtype=int)
            bits = np.concatenate([p[0] for p in parts]) if ids else _NO_FRAMES[0]
            times = np.concatenate([p[1] for p in parts]) if ids else _NO_FRAMES[1]
            self._packed = (ids, owner, bits, times)
        return self._packed


_FRAME_SNAPSHOTS: dict[str, _FrameSnapshot] = {}


def _frame_snapshot(session: Session) -> _FrameSnapshot:
    """Every served video's frames, refreshed as the rows' snapshot is: what changed since the last lookup (the
    indexed ``last_seen``), and a count (at most every ``_RECOUNT_S``: it scans the table) that no longer agrees
    reads them all again. A repository without videos is read once, not at every lookup."""
    m = models.ProvenanceManifest
    key = str(session.get_bind().url)
    snap = _FRAME_SNAPSHOTS.get(key)
    served = m.state.in_(SERVED_STATES) & m.frame_pdqs.is_not(None)
    columns = select(m.id, m.frame_pdqs, m.last_seen).where(served)
    now = time.monotonic()
    if snap is not None:
        snap.apply(session.execute(columns.where(m.last_seen >= snap.seen - _CLOCK_SKEW)).all())
        if now - snap.counted >= _RECOUNT_S:
            snap.counted = now
            if session.scalar(select(func.count()).select_from(m).where(served)) != len(snap.rows):
                snap = None  # a video forgotten: read them all again
    if snap is None:
        snap = _FrameSnapshot(seen=_aware(session.scalar(select(func.now()))), counted=now)
        for batch in session.execute(columns.execution_options(yield_per=_SCAN_BATCH)).partitions(_SCAN_BATCH):
            snap.apply(batch)
    _FRAME_SNAPSHOTS[key] = snap
    return snap


@dataclass(frozen=True)
class _FrameHit:
    manifest_id: str
    distance: int
    t: float
    original_t: float | None
    matched: int
    original_frames: int


def _nearest_video(snap: _FrameSnapshot, query: Sequence[Any], frame_threshold: int) -> _FrameHit | None:
    """The stored video most of the copy's frames match within ``frame_threshold``, then the nearest; with the
    copy's and the original's frame of its nearest pair."""
    ids, owner, bits, times = snap.packed()
    if not ids or not len(bits):
        return None
    matched = np.zeros(len(ids), dtype=np.int64)
    best = np.full(len(ids), 257, dtype=np.int64)
    best_query = np.full(len(ids), -1, dtype=np.int64)
    best_entry = np.full(len(ids), -1, dtype=np.int64)
    for qi, q in enumerate(_bits([f.pdq for f in query], 256).view(np.uint64)):  # usable: well-formed
        dist = np.bitwise_count(bits ^ q).sum(axis=1).astype(np.int64)
        hit = np.nonzero(dist <= frame_threshold)[0]
        if not hit.size:
            continue
        order = hit[np.lexsort((dist[hit], owner[hit]))]  # by row, nearest first
        rows, first = np.unique(owner[order], return_index=True)
        nearest = order[first]
        matched[rows] += 1
        closer = dist[nearest] < best[rows]
        best[rows[closer]] = dist[nearest[closer]]
        best_query[rows[closer]] = qi
        best_entry[rows[closer]] = nearest[closer]
    if not matched.any():
        return None
    i = int(np.lexsort((best, -matched))[0])  # most frames matched, then the smallest distance
    return _FrameHit(manifest_id=ids[i], distance=int(best[i]), t=float(query[best_query[i]].t),
                     original_t=float(times[best_entry[i]]), matched=int(matched[i]),
                     original_frames=int((owner == i).sum()))


def _nearest_picture(snap: _Snapshot, query: Sequence[Any], pdq_threshold: int) -> _FrameHit | None:
    """The stored picture that most of the copy's frames have as their nearest within ``pdq_threshold`` (each frame
    asked of the rows' index as an image's PDQ is, as it is, not turned), then the nearest."""
    if not snap.ids:
        return None
    snap.index_for({"pdq": pdq_threshold, "iscc": ISCC_THRESHOLD})
    delta = snap.delta()
    matched: dict[int, int] = {}
    best: dict[int, tuple[int, int]] = {}  # row -> (distance, the copy's frame)
    for qi, frame in enumerate(query):
        found = _closest(snap, "pdq", _bits([frame.pdq], 256), pdq_threshold, delta)
        if found is None:
            continue
        dist, row = found
        matched[row] = matched.get(row, 0) + 1
        if row not in best or dist < best[row][0]:
            best[row] = (dist, qi)
    if not matched:
        return None
    row = min(matched, key=lambda r: (-matched[r], best[r][0], r))
    return _FrameHit(manifest_id=snap.ids[row], distance=best[row][0], t=float(query[best[row][1]].t),
                     original_t=None, matched=matched[row], original_frames=1)


def find_frames(session: Session, frames: Sequence[Any], *, pdq_threshold: int, frame_threshold: int,
                exclude_sha256: str | None = None) -> FrameRecovery | None:
    """The stored original a video without credentials looks most like, by its vPDQ frames (anything with ``t``,
    ``pdq`` and ``quality``): stored videos' frames (a stripped re-encode) and stored pictures' PDQs (a signed
    photo shown in the video). Only the copy's usable frames count. Only trusted or valid manifests are served."""
    query = _usable_frames(frames)
    if not query:
        return None
    key = str(session.get_bind().url)
    for attempt in range(_FORGOTTEN_RETRIES + 1):
        if attempt == _FORGOTTEN_RETRIES:  # many forgotten at once: read every row again
            _SNAPSHOTS.pop(key, None)
            _FRAME_SNAPSHOTS.pop(key, None)
        pictures = _snapshot(session)
        hits = [h for h in (_nearest_video(_frame_snapshot(session), query, frame_threshold),
                            _nearest_picture(pictures, query, pdq_threshold)) if h is not None]
        if not hits:
            return None
        hit = min(hits, key=lambda h: (-h.matched, h.distance))
        row = session.get(models.ProvenanceManifest, hit.manifest_id)
        if row is not None:
            break
        # Forgotten since the copies were read: never a candidate again; the next nearest is.
        if hit.original_t is None:
            pictures.drop(hit.manifest_id)
        else:
            _FRAME_SNAPSHOTS.pop(key, None)
    if row is None or row.state not in SERVED_STATES or row.sha256 == exclude_sha256:
        return None
    base = _recovery(session, row, VPDQ_BINDING if hit.original_t is not None else PDQ_BINDING, hit.distance)
    return FrameRecovery(**vars(base), t=hit.t, original_t=hit.original_t, frames_matched=hit.matched,
                         frames=len(query), original_frames=hit.original_frames)


# --------------------------------------------------------------------------- export and import as files

EXPORT_FORMAT = "credence-manifests/1"
MAX_STORE_BYTES = 4 * 1024 * 1024  # as recording keeps them (docs/repository.md)
_HEX = frozenset("0123456789abcdef")


class ImportRejected(ValueError):
    """A repository file that is not one, or lines that are not manifests: nothing is imported."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:20]))
        self.problems = problems


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data else None


def manifest_record(session: Session, row: models.ProvenanceManifest,
                    read_blob: Callable[[str], bytes | None]) -> dict[str, Any]:
    """One stored manifest as a self-contained record (the store and thumbnail bytes inline): a file line, and
    what another instance needs to recover it (its own C2PA signature still covers the store)."""
    declared = session.scalars(select(models.ProvenanceBinding).where(
        models.ProvenanceBinding.manifest_id == row.id).order_by(models.ProvenanceBinding.id)).all()
    thumb = read_blob(row.thumbnail_sha256) if row.thumbnail_sha256 else None
    return {"sha256": row.sha256, "mime": row.mime, "label": row.label, "state": row.state,
            "signer": dict(row.signer or {}), "signing_time": row.signing_time, "actions": list(row.actions or []),
            "ai_declarations": list(row.ai_declarations or []),
            "thumbnail": {"format": row.thumbnail_format, "data": _b64(thumb)} if thumb else None,
            "store": _b64(row.store), "pdq": row.pdq, "pdq_quality": row.pdq_quality,
            "pdq_dihedral": row.pdq_dihedral.split(",") if row.pdq_dihedral else None, "iscc": row.iscc,
            "frames": _stored_frames(row.frame_pdqs) or None,
            "bindings": [{"alg": b.alg, "value": b.value} for b in declared]}


def export_lines(session: Session, read_blob: Callable[[str], bytes | None]) -> Iterator[str]:
    """The manifests this instance read itself, as JSON lines, a header first (format and count), oldest first.
    Imported ones are not passed on: they are another instance's reading, which this one never checked."""
    m = models.ProvenanceManifest
    served = m.state.in_(SERVED_STATES) & m.origin.is_(None)
    count = session.scalar(select(func.count()).select_from(m).where(served)) or 0
    yield json.dumps({"format": EXPORT_FORMAT, "manifests": count}) + "\n"
    query = select(m).where(served).order_by(m.first_seen, m.id).execution_options(yield_per=500)
    for row in session.scalars(query):
        yield json.dumps(manifest_record(session, row, read_blob), ensure_ascii=False) + "\n"


def _is_hex(value: Any, chars: int) -> bool:
    return isinstance(value, str) and len(value) == chars and set(value) <= _HEX


def _decoded(value: Any, what: str, limit: int) -> bytes | None:
    if value is None:
        return None
    try:
        data = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        data = None
    if data is None:
        raise ValueError(f"{what} is not base64")
    if len(data) > limit:
        raise ValueError(f"{what} is over {limit} bytes")
    return data


def check_record(record: Any) -> list[str]:
    """Why a record cannot be stored (empty when it can): the fields lookups and the API rely on."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = []
    if not _is_hex(record.get("sha256"), 64):
        problems.append("sha256 must be 64 lower-case hex digits")
    if not isinstance(record.get("label"), str) or not record["label"] or len(record["label"]) > 1000:
        problems.append("label must be the active manifest's label")
    if record.get("state") not in SERVED_STATES:
        problems.append(f"state must be one of {', '.join(SERVED_STATES)} (nothing else is ever served)")
    if not isinstance(record.get("signer"), dict):
        problems.append("signer must be an object")
    if record.get("pdq") is not None and not _is_hex(record.get("pdq"), 64):
        problems.append("pdq must be 64 hex digits")
    quality = record.get("pdq_quality")
    if quality is not None and (not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 100):
        problems.append("pdq_quality must be an integer 0-100")
    dihedral = record.get("pdq_dihedral")
    if dihedral is not None and (not isinstance(dihedral, list) or len(dihedral) > 8
                                 or not all(_is_hex(v, 64) for v in dihedral)):
        problems.append("pdq_dihedral must be at most 8 PDQ hashes")
    if record.get("iscc") is not None and iscc_digest(record.get("iscc")) is None:
        problems.append("iscc must be a 64-bit ISCC Image-Code (ISCC:EE...)")
    frames = record.get("frames")
    if frames is not None:
        try:
            _encoded_frames(frames)
        except ValueError as exc:
            problems.append(str(exc))
    if record.get("pdq") is None and record.get("iscc") is None and not record.get("bindings") and not frames:
        problems.append("a manifest needs a soft binding (pdq, iscc, frames or bindings) to be found again")
    for key, kind in (("actions", list), ("ai_declarations", list), ("bindings", list)):
        if record.get(key) is not None and not isinstance(record[key], kind):
            problems.append(f"{key} must be a list")
    for binding in record.get("bindings") or [] if isinstance(record.get("bindings"), list) else []:
        if not (isinstance(binding, dict) and isinstance(binding.get("alg"), str) and binding["alg"]
                and isinstance(binding.get("value"), str) and binding["value"]):
            problems.append("bindings must be objects with alg and value")
            break
    thumb = record.get("thumbnail")
    try:
        _decoded(record.get("store"), "store", MAX_STORE_BYTES)
        if thumb is not None:
            if not isinstance(thumb, dict):
                raise ValueError("thumbnail must be an object")
            _decoded(thumb.get("data"), "thumbnail", MAX_STORE_BYTES)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def store_record(session: Session, record: dict[str, Any], put_blob: Callable[[bytes], str], *, origin: str) -> bool:
    """Keep a checked record (``check_record``) of another instance or file; True when it was new. A content
    already kept here stays as this instance read it: its own reading of the asset outranks a copy's. ``origin``
    is kept with it: its state and declarations are the other instance's reading, which a recovery reports as
    such and never as this instance's evidence, unless its store is re-validated here (``record_revalidation``)."""
    if session.scalar(select(models.ProvenanceManifest.id).where(
            models.ProvenanceManifest.sha256 == record["sha256"])) is not None:
        return False
    thumb = record.get("thumbnail") or {}
    thumb_data = _decoded(thumb.get("data"), "thumbnail", MAX_STORE_BYTES)
    store = _decoded(record.get("store"), "store", MAX_STORE_BYTES)
    signer = record["signer"]
    row = models.ProvenanceManifest(
        sha256=record["sha256"], mime=str(record.get("mime") or "")[:100] or None, label=record["label"],
        state=record["state"],
        signer={k: signer.get(k) for k in ("organisation", "common_name", "issuer", "algorithm", "serial")},
        signing_time=str(record["signing_time"])[:64] if record.get("signing_time") else None,
        actions=list(record.get("actions") or [])[:24], ai_declarations=list(record.get("ai_declarations") or [])[:16],
        thumbnail_sha256=put_blob(thumb_data) if thumb_data else None,
        thumbnail_format=str(thumb.get("format") or "")[:100] or None if thumb_data else None,
        store=store, store_size=len(store) if store else None, pdq=record.get("pdq"),
        pdq_quality=record.get("pdq_quality"),
        pdq_dihedral=",".join(record["pdq_dihedral"]) if record.get("pdq_dihedral") else None,
        iscc=record.get("iscc"), frame_pdqs=_encoded_frames(record.get("frames")), origin=origin[:300],
        last_seen=func.now())
    session.add(row)
    session.flush()
    for binding in list(record.get("bindings") or [])[:16]:
        session.add(models.ProvenanceBinding(manifest_id=row.id, alg=binding["alg"][:100],
                                             value=binding["value"][:512]))
    return True


def peer_origin(instance: str) -> str:
    """The ``origin`` of a record pulled from a peer's feed, by the name its pinned key signs as."""
    return f"{PEER_ORIGIN}{instance}"


def store_peer_record(session: Session, record: dict[str, Any], put_blob: Callable[[bytes], str], *,
                      instance: str) -> str | None:
    """Keep a record a peer published (checked with ``check_record`` when its page was verified); returns the row
    to re-validate here, or None when nothing changed. The import rule (``store_record``) decides: a content this
    instance keeps already, read here or from another source, stays as it is. The peer's earlier copy is replaced
    (its reading changed), and with it the outcome of re-validating the old one."""
    origin = peer_origin(instance)
    record = {**record, "thumbnail": None}  # a publisher sends none; the signed one comes with re-validation
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == record["sha256"]))
    if row is not None and row.origin == origin:
        forget(session, row.sha256)
        session.flush()
    if not store_record(session, record, put_blob, origin=origin):
        return None
    return session.scalar(select(models.ProvenanceManifest.id).where(
        models.ProvenanceManifest.sha256 == record["sha256"]))


def withdraw_peer_record(session: Session, sha256: str, *, instance: str) -> bool:
    """A peer withdrew a record it had published: only the copy that came from that peer goes."""
    row = session.scalar(select(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == sha256))
    if row is None or row.origin != peer_origin(instance):
        return False
    return forget(session, sha256)


@dataclass
class Imported:
    created: int
    unchanged: int
    ids: list[str] = field(default_factory=list)  # imported rows never re-validated: each one a worker task


MAX_IMPORT_BYTES = 1024 * 1024 * 1024  # a file of stores and thumbnails: larger than a bank's


def import_lines(session: Session, data: bytes, put_blob: Callable[[bytes], str], *, actor: str) -> Imported:
    """A file ``export_lines`` wrote: all or nothing (every bad line is listed), idempotent (contents kept
    already are left as they are). The stores keep their own C2PA signatures, but the states and declarations
    are the exporter's reading: until a worker re-validates a store here (``Imported.ids``, the caller queues
    them), a recovery from it says so and supports no level."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRejected([f"the file is not UTF-8 (byte {exc.start})"]) from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        header = json_edge.loads(lines[0][1], "line 1") if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise ImportRejected([f"line 1: not a manifest repository file (its first line names {EXPORT_FORMAT})"])
    records, problems = [], []
    for n, line in lines[1:]:
        try:
            record = json_edge.loads(line, f"line {n}")
        except ValueError as exc:
            problems.append(f"line {n}: not JSON that can be stored ({exc})")
            continue
        problems += [f"line {n}: {p}" for p in check_record(record)]
        records.append(record)
    if problems:
        raise ImportRejected(problems)
    origin = f"import by {actor}"
    created = sum(store_record(session, record, put_blob, origin=origin) for record in records)
    session.add(models.AuditLog(actor=actor, action="repository.import", target="provenance_manifests",
                                details={"created": created, "unchanged": len(records) - created}))
    session.flush()
    return Imported(created=created, unchanged=len(records) - created, ids=imported_ids(session, pending_only=True))


def imported_ids(session: Session, *, pending_only: bool) -> list[str]:
    """Imported rows to re-validate: those never re-validated, or all of them (after a trust list change)."""
    m = models.ProvenanceManifest
    query = select(m.id).where(m.origin.is_not(None))
    if pending_only:
        query = query.where(m.revalidation.is_(None))
    return list(session.scalars(query.order_by(m.first_seen, m.id)))
