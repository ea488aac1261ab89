"""SQLAlchemy 2.0 tables: the record. Redis only ever holds copies of what is here."""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, NamedTuple

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text,
                        true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Media(Base):
    """One row per distinct content (sha256), however many URLs serve it."""

    __tablename__ = "media"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    # Perceptual hashes, kept so bank changes re-match stored media without refetching.
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    phash: Mapped[str | None] = mapped_column(String(16))
    pdq_dihedral: Mapped[str | None] = mapped_column(Text)  # 8 orientations, comma-separated
    # Videos: the file's MD5 (NULL when only part of the file was read) and the keyframe PDQs
    # (see encode_frames), so bank changes re-match stored videos without refetching too.
    md5: Mapped[str | None] = mapped_column(String(32), index=True)
    frame_pdqs: Mapped[str | None] = mapped_column(Text)
    source_size: Mapped[int | None] = mapped_column(BigInteger)  # whole file's size when only part was fetched


class MediaUrl(Base):
    """Normalised URL -> the content it served when last fetched."""

    __tablename__ = "media_urls"
    url_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(ForeignKey("media.sha256"), index=True)
    final_url: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(200))
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Verdict(Base):
    """A verdict as made: level, evidence and the versions it was made with."""

    __tablename__ = "verdicts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("media.sha256"), index=True)
    level: Mapped[str] = mapped_column(String(32))
    pipeline_version: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_verdicts_sha_version", "sha256", "pipeline_version"),)


class Check(Base):
    """One request to check one URL or upload; several checks may share one analysis."""

    __tablename__ = "checks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(16))  # url | upload
    url: Mapped[str | None] = mapped_column(Text)
    url_hash: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done
    verdict_id: Mapped[str | None] = mapped_column(ForeignKey("verdicts.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_checks_url_hash_status", "url_hash", "status"),
        Index("ix_checks_status_updated", "status", "updated_at"),
    )


class Bank(Base):
    """A named collection of known content: ``fake`` (debunked) or ``original`` (verified sources)."""

    __tablename__ = "banks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # fake | original
    owner: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # Bumped (to a global maximum + 1) whenever what this bank matches changes; workers rebuild on it.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)  # published on the exchange feed


class BankEntry(Base):
    """One known item: its hashes, what it is, and where it stands in review."""

    __tablename__ = "bank_entries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    bank_id: Mapped[str] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    phash: Mapped[str | None] = mapped_column(String(16))
    media_kind: Mapped[str] = mapped_column(String(8), default="image")  # image | video
    md5: Mapped[str | None] = mapped_column(String(32), index=True)  # videos: the ecosystem's video_md5
    frame_pdqs: Mapped[str | None] = mapped_column(Text)  # videos: keyframe PDQs, see encode_frames
    hash_state: Mapped[str] = mapped_column(String(16), default="ready")  # pending | ready | failed
    hash_error: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str] = mapped_column(Text, default="")
    source_url: Mapped[str | None] = mapped_column(Text)  # where the submitted copy was fetched
    source_links: Mapped[list[Any]] = mapped_column(JSON, default=list)  # debunks, originals
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|confirmed|rejected|retracted
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Where an imported entry came from; NULL for entries made here.
    origin_instance: Mapped[str | None] = mapped_column(String(200))
    origin_entry_id: Mapped[str | None] = mapped_column(String(100))
    origin_signature: Mapped[str | None] = mapped_column(Text)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def is_feed_copy(self) -> bool:
        """An entry speaks for a peer's entry only when the feed reader made it from that peer's signed
        feed; an origin on anything else (e.g. written by an old import) is a claim nobody verified."""
        return bool(self.origin_instance) and (self.submitted_by or "").startswith("peer:")

    def frames_list(self) -> list[dict[str, Any]] | None:
        """The keyframe PDQs as JSON objects; None for images."""
        if not self.frame_pdqs:
            return None
        return [f._asdict() for f in decode_frames(self.frame_pdqs)]

    __table_args__ = (
        Index("ix_bank_entries_status", "status"),
        Index("ix_bank_entries_origin", "origin_instance", "origin_entry_id", unique=True),
    )


class Opinion(Base):
    """One instance's view of an entry (confirm or dispute); disagreement is kept, never overwritten."""

    __tablename__ = "opinions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), index=True)
    instance: Mapped[str] = mapped_column(String(200))
    opinion: Mapped[str] = mapped_column(String(16))  # confirm | dispute
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_opinions_entry_instance", "entry_id", "instance", unique=True),)


class FeedEvent(Base):
    """The signed change log of shared banks (and of shared repository manifests, which belong to no bank);
    its id is the feed cursor."""

    __tablename__ = "feed_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bank_id: Mapped[str | None] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[str] = mapped_column(String(32), index=True)  # a manifest event: the manifest's row id
    kind: Mapped[str] = mapped_column(String(24))  # entry | retraction | opinion | manifest | manifest-withdrawal
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class InstanceIdentity(Base):
    """This instance's Ed25519 signing key, made on first start."""

    __tablename__ = "instance_identity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    private_key: Mapped[str] = mapped_column(Text)  # raw 32 bytes, base64
    public_key: Mapped[str] = mapped_column(String(100))  # raw 32 bytes, base64
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Peer(Base):
    """Another Credence instance whose shared banks we pull."""

    __tablename__ = "peers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(String(100))
    banks: Mapped[list[Any]] = mapped_column(JSON, default=list)  # names to pull; empty = all shared
    trust: Mapped[str] = mapped_column(String(16), default="review")  # trusted | review
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    last_pull_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bound on the first accepted page: the name the peer's key signs as, the origin of its entries.
    instance: Mapped[str | None] = mapped_column(String(200))
    head: Mapped[int | None] = mapped_column(BigInteger)  # highest signed head seen: older pages are replays
    page_issued_at: Mapped[datetime | None] = mapped_column()  # signed time of the newest accepted page
    # Whether its feed's manifest events are asked for (the manifest repository; migration 0012).
    manifests: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (Index("ix_peers_instance", "instance", unique=True),)


class ApiKey(Base):
    """Only the SHA-256 of a key is stored; the key itself is shown once at creation."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A newsroom desk account. Roles are the API's: reader < reporter < reviewer < admin."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))  # werkzeug.security (scrypt), never the password
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()
    # In the session cookie at sign-in; sign-out bumps it, so a copy of the old cookie opens nothing.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class DeskCheck(Base):
    """Who ran which check from the desk, and what they gave it (a file name or a URL)."""

    __tablename__ = "desk_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)



class ProvenanceManifest(Base):
    """One valid manifest Credence has read, kept so stripped copies of its content find it again
    (server/provenance/repository.py; docs/repository.md). Tampered or invalid manifests never get a row."""

    __tablename__ = "provenance_manifests"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the signed content's bytes
    mime: Mapped[str | None] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(Text, index=True)  # the active manifest's label: the API's manifest id
    state: Mapped[str] = mapped_column(String(16))  # trusted | valid (valid but signer not trusted)
    signer: Mapped[dict[str, Any]] = mapped_column(JSON)
    signing_time: Mapped[str | None] = mapped_column(String(64))
    actions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ai_declarations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))  # in the media store
    thumbnail_format: Mapped[str | None] = mapped_column(String(100))
    store: Mapped[bytes | None] = mapped_column(LargeBinary)  # the manifest store (JUMBF) as embedded
    store_size: Mapped[int | None] = mapped_column(Integer)
    # Soft bindings: PDQ with its 8 orientations (as media rows keep them) and the ISCC Image-Code.
    pdq: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(Integer)
    pdq_dihedral: Mapped[str | None] = mapped_column(Text)
    iscc: Mapped[str | None] = mapped_column(String(64), index=True)
    # Videos: their vPDQ frame PDQs (see encode_frames), what a stripped re-encode's frames are looked up by
    # (migration 0011). None for images.
    frame_pdqs: Mapped[str | None] = mapped_column(Text)
    # None: read here from the asset, against this instance's trust lists. Else where the record came from
    # ("import by cli:ana"): its state and declarations are another instance's reading, not checked here.
    origin: Mapped[str | None] = mapped_column(String(300))
    # An import's store re-validated here (worker/stages/manifest_check.py): {"at", "counts", and "state" and the
    # proven "bindings", or "reason"}. None: read here (origin None), or an import not re-validated yet.
    revalidation: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # lookups refresh from it

    # The videos alone: the frame lookup reads and counts them without scanning every picture's row.
    __table_args__ = (Index("ix_provenance_manifests_videos", "last_seen",
                            postgresql_where=text("frame_pdqs IS NOT NULL"),
                            sqlite_where=text("frame_pdqs IS NOT NULL")),)


class ProvenanceBinding(Base):
    """A ``c2pa.soft-binding`` value a stored manifest declares (alg + value), found by exact lookup."""

    __tablename__ = "provenance_bindings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    manifest_id: Mapped[str] = mapped_column(ForeignKey("provenance_manifests.id", ondelete="CASCADE"), index=True)
    alg: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(String(512))

    __table_args__ = (Index("ix_provenance_bindings_alg_value", "alg", "value"),)

# ---------------------------------------------------------------------------- keyframe PDQs

MAX_FRAMES = 4000  # an hour at ThreatExchange's one hash per second, with room to spare
_FRAME_RE = re.compile(r"^([0-9a-f]{64}),(\d{1,3}),([0-9.eE+-]+)$")


class StoredFrame(NamedTuple):
    """One keyframe's PDQ as stored; has the attributes of worker.stages.video_hashes.FrameHash."""

    t: float
    pdq: str
    quality: int


def encode_frames(frames: Iterable[Any]) -> str | None:
    """Keyframe PDQs as ThreatExchange's vPDQ signal string: a JSON list of ``"<pdq hex>,<quality>,<seconds>"``.

    One format for the column, the exports and the ecosystem, so a stored value is exported as it is
    and an imported ``vpdq`` signal is stored as it came (after validation). Anything with ``t``,
    ``pdq`` and ``quality`` attributes is accepted."""
    items = [f"{f.pdq},{int(f.quality)},{round(float(f.t), 3)}" for f in frames]
    return json.dumps(items, separators=(",", ":")) if items else None


def parse_frame(item: str) -> StoredFrame:
    """One ``"<pdq hex>,<quality>,<seconds>"``; ValueError says what is wrong."""
    match = _FRAME_RE.match(item.strip().lower()) if isinstance(item, str) else None
    if match is None:
        raise ValueError(f"a vPDQ frame must be '<64 hex>,<quality>,<seconds>', not {str(item)[:80]!r}")
    quality, t = int(match.group(2)), float(match.group(3))
    if not 0 <= quality <= 100 or not t >= 0:  # also refuses NaN
        raise ValueError(f"a vPDQ frame needs quality 0-100 and seconds >= 0: {item[:80]!r}")
    return StoredFrame(t=t, pdq=match.group(1), quality=quality)


def decode_frames(text: str | None) -> list[StoredFrame]:
    """The inverse of encode_frames; ValueError on anything else (imports rely on it to validate)."""
    if not text:
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"a vPDQ signal must be a JSON list ({exc.msg})") from exc
    if not isinstance(items, list):
        raise ValueError("a vPDQ signal must be a JSON list of '<64 hex>,<quality>,<seconds>' strings")
    if len(items) > MAX_FRAMES:
        raise ValueError(f"a vPDQ signal may hold at most {MAX_FRAMES} frames")
    return [parse_frame(item) for item in items]
