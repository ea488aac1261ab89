"""Banks of known content and their review workflow: the one place that changes them.

Used by the API and the CLI alike. Every change is audited; every change that alters what matches
bumps the bank's generation so workers rebuild their in-memory index.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import models
from server.errors import ApiError
from server.exchange import feed
from server.banks.hashes_hex import HEX_LENGTHS
from server.json_edge import scrub
from server.schemas import iso

HEX = {**HEX_LENGTHS, "md5": 32}  # md5: a video file's, as the ecosystem's video_md5 signal
KINDS = ("fake", "original")
MEDIA_KINDS = ("image", "video")
UNKNOWN_FRAME_QUALITY = 50  # a bare PDQ given without its quality counts as just usable, as on import
STATUSES = ("pending", "confirmed", "rejected", "retracted")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
REPORTS_BANK = "reader-reports"


def audit(session: Session, actor: str, action: str, target: str, **details: Any) -> None:
    session.add(models.AuditLog(actor=actor, action=action, target=target, details=details))


def bump_generation(session: Session, bank: models.Bank) -> None:
    """Global maximum + 1, so (max, count) of all banks changes on every change anywhere."""
    current = session.scalar(select(func.coalesce(func.max(models.Bank.generation), 0)))
    bank.generation = int(current) + 1


def generation_state(session: Session) -> tuple[int, int]:
    row = session.execute(select(func.coalesce(func.max(models.Bank.generation), 0), func.count(models.Bank.id))).one()
    return int(row[0]), int(row[1])


def check_hex(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != HEX[field] or not re.fullmatch(r"[0-9a-f]+", value):
        raise ApiError(400, f"{field} must be {HEX[field]} hex characters")
    return value


def check_frames(frames: list[Any] | None) -> list[models.StoredFrame] | None:
    """Keyframe PDQs given by people: a 64-hex PDQ, the ecosystem's ``"<pdq>,<quality>,<seconds>"``,
    or ``{"pdq", "quality", "t"}``; or computed ones (objects with t, pdq, quality). A bare PDQ has
    quality 50 and time 0 (unknown)."""
    if frames is None:
        return None
    if len(frames) > models.MAX_FRAMES:
        raise ApiError(400, f"at most {models.MAX_FRAMES} frames")
    out = []
    try:
        for frame in frames:
            if isinstance(frame, dict):
                frame = f"{frame.get('pdq')},{frame.get('quality', UNKNOWN_FRAME_QUALITY)},{frame.get('t', 0)}"
            elif isinstance(frame, str):
                frame = frame if "," in frame else f"{frame},{UNKNOWN_FRAME_QUALITY},0"
            else:  # FrameHash / StoredFrame
                frame = f"{getattr(frame, 'pdq', None)},{getattr(frame, 'quality', None)},{getattr(frame, 't', None)}"
            out.append(models.parse_frame(frame))
    except ValueError as exc:
        raise ApiError(400, f"frames: {exc}") from exc
    return out


MAX_LINK = 2000
_LINK_RE = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


def is_http_link(value: object) -> bool:
    """Only http(s) links are stored and rendered: a ``javascript:`` or ``data:`` link on the desk is a
    script run by a reviewer's click."""
    if not isinstance(value, str) or len(value) > MAX_LINK or not _LINK_RE.fullmatch(value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def check_links(links: list[Any] | None) -> list[str]:
    """``source_links`` from anyone (API, desk, CLI, imports, peers): http(s) URLs only, or 400."""
    for link in links or []:
        if not is_http_link(link):
            shown = link[:80] if isinstance(link, str) else type(link).__name__
            raise ApiError(400, f"source_links must be http(s) URLs (at most {MAX_LINK} characters): {shown!r}")
    return list(links or [])


def get_bank(session: Session, name: str) -> models.Bank:
    bank = session.scalars(select(models.Bank).where(models.Bank.name == name)).first()
    if bank is None:
        raise ApiError(404, f"no bank named {name!r}")
    return bank


def get_entry(session: Session, entry_id: str) -> models.BankEntry:
    entry = session.get(models.BankEntry, entry_id)
    if entry is None:
        raise ApiError(404, "no such entry")
    return entry


def create_bank(session: Session, *, name: str, kind: str, actor: str, owner: str = "",
                description: str = "") -> models.Bank:
    if not NAME_RE.match(name):
        raise ApiError(400, "bank names are lower-case letters, digits, '.', '_' and '-'")
    if kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
    if session.scalars(select(models.Bank.id).where(models.Bank.name == name)).first():
        raise ApiError(409, f"a bank named {name!r} exists")
    bank = models.Bank(name=name, kind=kind, owner=owner or actor, description=description, generation=0)
    session.add(bank)
    session.flush()
    audit(session, actor, "bank.create", bank.id, name=name, kind=kind)
    return bank


def update_bank(session: Session, bank: models.Bank, *, actor: str, **changes: Any) -> models.Bank:
    changes = {k: v for k, v in changes.items() if v is not None}
    if "kind" in changes and changes["kind"] not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
    newly_shared = changes.get("shared") and not bank.shared
    for key, value in changes.items():
        setattr(bank, key, value)
    if "kind" in changes:
        bump_generation(session, bank)
    if newly_shared:
        feed.publish_existing(session, bank)
    audit(session, actor, "bank.update", bank.id, **changes)
    return bank


def delete_bank(session: Session, bank: models.Bank, *, actor: str) -> None:
    audit(session, actor, "bank.delete", bank.id, name=bank.name)
    session.delete(bank)


def ensure_reports_bank(session: Session) -> models.Bank:
    """Readers' "report as fake" lands here, pending, until a reviewer decides."""
    bank = session.scalars(select(models.Bank).where(models.Bank.name == REPORTS_BANK)).first()
    return bank or create_bank(session, name=REPORTS_BANK, kind="fake", actor="system",
                               description="Reports from readers, pending review")


def submit_entry(session: Session, bank: models.Bank, *, actor: str, label: str, notes: str = "",
                 source_links: list[str] | None = None, tags: list[str] | None = None,
                 sha256: str | None = None, pdq: str | None = None, pdq_quality: int | None = None,
                 phash: str | None = None, source_url: str | None = None,
                 hash_state: str = "ready", media_kind: str | None = None, md5: str | None = None,
                 frames: list[Any] | None = None) -> models.BankEntry:
    """A new entry is always ``pending``: only a reviewer's confirmation makes it match.

    An image entry has sha256 / pdq / phash; a video entry sha256 / md5 / keyframe PDQs (``frames``).
    ``media_kind`` defaults to video when md5 or frames are given; for a file or URL still to be
    hashed, the hashing job sets it from the bytes."""
    sha256, pdq, phash = check_hex("sha256", sha256), check_hex("pdq", pdq), check_hex("phash", phash)
    md5, stored_frames = check_hex("md5", md5), check_frames(frames)
    media_kind = media_kind or ("video" if md5 or stored_frames else "image")
    if media_kind not in MEDIA_KINDS:
        raise ApiError(400, f"media_kind must be one of {', '.join(MEDIA_KINDS)}")
    if media_kind == "video" and (pdq or phash):
        raise ApiError(400, "a video entry is matched by sha256, md5 and frames, not pdq or phash")
    if media_kind == "image" and (md5 or stored_frames):
        raise ApiError(400, "md5 and frames are for video entries")
    source_links = check_links(source_links)
    if hash_state == "ready" and not (sha256 or pdq or phash or md5 or stored_frames):
        raise ApiError(400, "an entry needs a file, a URL, or at least one of sha256, pdq, phash, md5, frames")
    entry = models.BankEntry(
        bank_id=bank.id, sha256=sha256, pdq=pdq, pdq_quality=pdq_quality if pdq else None, phash=phash,
        media_kind=media_kind, md5=md5, frame_pdqs=models.encode_frames(stored_frames or []),
        hash_state=hash_state, label=label, notes=notes, source_url=source_url,
        source_links=list(source_links or []), tags=list(tags or []), status="pending", submitted_by=actor,
    )
    session.add(entry)
    session.flush()
    audit(session, actor, "entry.submit", entry.id, bank=bank.name, label=label, source_url=source_url)
    return entry


TRANSITIONS = {("pending", "confirm"): "confirmed", ("pending", "reject"): "rejected",
               ("confirmed", "retract"): "retracted"}


def decide(session: Session, entry: models.BankEntry, *, action: str, actor: str, note: str) -> bool:
    """Apply a review action; returns True when what matches changed (confirmed or retracted)."""
    target = TRANSITIONS.get((entry.status, action))
    if target is None:
        raise ApiError(409, f"cannot {action} an entry that is {entry.status}")
    if action == "confirm" and entry.hash_state != "ready":
        raise ApiError(409, f"cannot confirm before the entry's hashes are ready ({entry.hash_state})")
    entry.status = target
    entry.reviewed_by, entry.reviewed_at, entry.review_note = actor, models.utcnow(), note
    audit(session, actor, f"entry.{action}", entry.id, note=note)
    changed = target in ("confirmed", "retracted")
    bank = session.get(models.Bank, entry.bank_id)
    if changed:
        bump_generation(session, bank)
    feed.on_decision(session, entry, bank, action, note)
    return changed


def disputes_of(session: Session, entry_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Peers' disputes of these entries (their opinions on the exchange feed), oldest first: who, why, when.
    The one query behind the match evidence, the media report and the desk."""
    if not entry_ids:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    rows = session.scalars(select(models.Opinion).where(
        models.Opinion.entry_id.in_(entry_ids), models.Opinion.opinion == "dispute").order_by(models.Opinion.at))
    for row in rows:
        out.setdefault(row.entry_id, []).append({"by": row.instance, "reason": row.note or "", "at": iso(row.at)})
    return out


def delete_entry(session: Session, entry: models.BankEntry, *, actor: str, note: str) -> dict[str, Any]:
    """Remove one entry for good (admins: e.g. one whose text breaks exports); audited with its hashes,
    and the generation is bumped. Returns the hashes the caller re-matches stored media against, since
    the row is gone. server/banks/removal.py also retracts it on the feed."""
    bank = session.get(models.Bank, entry.bank_id)
    hashes = {"id": entry.id, "status": entry.status, "media_kind": entry.media_kind or "image",
              "sha256": entry.sha256, "pdq": entry.pdq, "phash": entry.phash, "md5": entry.md5,
              "frame_pdqs": entry.frame_pdqs}
    audit(session, actor, "entry.delete", entry.id, bank=bank.name, note=note, label=scrub(entry.label),
          **{k: v for k, v in hashes.items() if k not in ("id", "frame_pdqs")})
    session.execute(models.Opinion.__table__.delete().where(models.Opinion.entry_id == entry.id))
    session.delete(entry)
    bump_generation(session, bank)
    return hashes


def bank_dict(bank: models.Bank, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {"name": bank.name, "kind": bank.kind, "owner": bank.owner, "description": bank.description,
            "generation": bank.generation, "shared": bool(bank.shared), "created_at": iso(bank.created_at),
            "entries": counts or {}}


def entry_dict(entry: models.BankEntry, bank: models.Bank | None = None) -> dict[str, Any]:
    return {
        "id": entry.id, "bank": bank.name if bank else None, "bank_kind": bank.kind if bank else None,
        "status": entry.status, "label": entry.label, "notes": entry.notes,
        "sha256": entry.sha256, "pdq": entry.pdq, "pdq_quality": entry.pdq_quality, "phash": entry.phash,
        "media_kind": entry.media_kind or "image", "md5": entry.md5, "frames": entry.frames_list(),
        "hash_state": entry.hash_state, "hash_error": entry.hash_error, "source_url": entry.source_url,
        "source_links": entry.source_links, "tags": entry.tags,
        "submitted_by": entry.submitted_by, "submitted_at": iso(entry.submitted_at),
        "reviewed_by": entry.reviewed_by, "reviewed_at": iso(entry.reviewed_at),
        "review_note": entry.review_note, "disputed": bool(entry.disputed),
        "origin": {"instance": entry.origin_instance, "entry_id": entry.origin_entry_id} if entry.origin_instance else None,
    }


def entry_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(select(models.BankEntry.bank_id, models.BankEntry.status, func.count())
                           .group_by(models.BankEntry.bank_id, models.BankEntry.status)).all()
    out: dict[str, dict[str, int]] = {}
    for bank_id, status, count in rows:
        out.setdefault(bank_id, {})[status] = count
    return out
