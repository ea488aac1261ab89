"""Banks of known content and their review workflow: the one place that reads and changes them.

The API (server/api/banks.py), the CLI (server/cli/banks.py) and the desk (server/desk/curation.py,
history.py) parse their input into the schemas of server/schemas.py, call one function of the last
section below and render what it returns; bank imports and peer pulls use the functions above it. Every
change is audited; every change that alters what matches bumps the bank's generation so workers rebuild
their in-memory index.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import models
from server.banks.hashes_hex import HEX_LENGTHS
from server.checks.urls import BadUrl, normalise
from server.errors import ApiError
from server.exchange import feed
from server.json_edge import scrub
from server.queue import enqueue_hash_entry, enqueue_rematch, enqueue_rematch_removed
from server.vocabulary import Stage
from server.schemas import EntryDelete, EntrySubmit, ReportRequest, RetractRequest, ReviewRequest, iso

if TYPE_CHECKING:
    from server.config import Settings
    from server.services import Services
    from worker.stages.fingerprint import Fingerprint

HEX = {**HEX_LENGTHS, "md5": 32}  # md5: a video file's, as the ecosystem's video_md5 signal
KINDS = ("fake", "original")
MEDIA_KINDS = ("image", "video")
UNKNOWN_FRAME_QUALITY = 50  # a bare PDQ given without its quality counts as just usable, as on import
STATUSES = ("pending", "confirmed", "rejected", "retracted")
MATCH_CHANGING = ("confirmed", "retracted")  # reaching (or leaving, by deletion) these changes stored verdicts
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
REPORTS_BANK = "reader-reports"


def audit(session: Session, actor: str, action: str, target: str, **details: Any) -> None:
    session.add(models.AuditLog(actor=actor, action=action, target=target, details=details))


def bump_generation(session: Session, bank: models.Bank) -> None:
    """Global maximum + 1, so (max, count) of all banks changes on every change anywhere."""
    current = session.scalar(select(func.coalesce(func.max(models.Bank.generation), 0)))
    bank.generation = int(current) + 1


_BANKS = models.Bank.__table__
_GENERATION = select(func.coalesce(func.max(_BANKS.c.generation), 0), func.count(_BANKS.c.id))  # read at every match


def generation_state(session: Session) -> tuple[int, int]:
    row = session.execute(_GENERATION).one()
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
    or ``{"pdq", "quality", "t"}``; or objects with t, pdq, quality (EntryFrame, computed ones). A bare PDQ has
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
            else:  # EntryFrame / FrameHash / StoredFrame
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
                description: str = "", shared: bool = False) -> models.Bank:
    if not NAME_RE.match(name):
        raise ApiError(400, "bank names are lower-case letters, digits, '.', '_' and '-'")
    if kind not in KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(KINDS)}")
    if session.scalars(select(models.Bank.id).where(models.Bank.name == name)).first():
        raise ApiError(409, f"a bank named {name!r} exists")
    bank = models.Bank(name=name, kind=kind, owner=owner or actor, description=description, generation=0,
                       shared=shared)
    session.add(bank)
    session.flush()
    audit(session, actor, "bank.create", bank.id, name=name, kind=kind)
    return bank


def update_bank(session: Session, name: str, *, actor: str, **changes: Any) -> models.Bank:
    """Only the fields given change. Sharing a bank publishes what it holds; a new kind changes what matches."""
    bank = get_bank(session, name)
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


def delete_bank(session: Session, name: str, *, actor: str) -> None:
    bank = get_bank(session, name)
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
    changed = target in MATCH_CHANGING
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


def cited(session: Session, evidence: list[dict[str, Any]]) -> list[tuple[dict[str, Any], models.BankEntry | None]]:
    """A verdict's bank-match evidence with the entry each item cites as it stands now (None: deleted since):
    a report shows the entry's status and disputes today, not as they were when the verdict was made."""
    out = []
    for item in evidence:
        if item.get("stage") != Stage.BANK_MATCH:
            continue
        entry_id = (item.get("details") or {}).get("entry_id")
        out.append((item, session.get(models.BankEntry, entry_id) if entry_id else None))
    return out


def _remove_row(session: Session, entry: models.BankEntry, *, actor: str, note: str) -> dict[str, Any]:
    """Remove one entry for good; audited with its hashes, and the generation is bumped. Returns the hashes
    stored media are re-matched against, since the row is gone.

    A confirmed entry of our own in a shared bank is first published as a retraction, so peers drop their
    copy (its text scrubbed of characters that cannot be signed: such text is why an admin may be deleting it)."""
    bank = session.get(models.Bank, entry.bank_id)
    if entry.status == "confirmed" and bank is not None and bank.shared and not entry.origin_instance:
        entry.label, entry.notes = scrub(entry.label) or "", scrub(entry.notes) or ""
        entry.tags = [scrub(t) for t in entry.tags or []]
        entry.source_links = [scrub(u) for u in entry.source_links or []]
        feed.record(session, "retraction", entry, bank, note)
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


# -- What the API, the CLI and the desk call: validated input in (server/schemas.py), plain dicts out. ----------

class Jobs(Protocol):
    """Work that follows a committed change: hashing a submitted file or URL, re-matching the stored media
    a decision or a deletion touches. It runs after the commit because the job reads the committed rows.
    The API and the desk queue it for the workers (``Queued``); the CLI runs it at once (its operator may
    run no worker) and returns how many verdicts changed, which the result then carries."""

    def hash_entry(self, entry_id: str) -> object: ...

    def rematch(self, entry_id: str) -> int | None: ...

    def rematch_removed(self, hashes: dict[str, Any]) -> int | None: ...


Send = Callable[[Callable[[Celery, Any], None], Any], None]


class Queued:
    """Jobs sent by task name (server.queue) through ``send``: the front end's ``enqueue``, which logs a
    broker that is down rather than failing a change that is already recorded."""

    def __init__(self, send: Send) -> None:
        self.send = send

    def hash_entry(self, entry_id: str) -> None:
        self.send(enqueue_hash_entry, entry_id)

    def rematch(self, entry_id: str) -> None:
        self.send(enqueue_rematch, entry_id)

    def rematch_removed(self, hashes: dict[str, Any]) -> None:
        self.send(enqueue_rematch_removed, hashes)


def list_banks(session: Session) -> list[dict[str, Any]]:
    """Every bank by name, with its entry counts by status."""
    counts = entry_counts(session)
    return [bank_dict(b, counts.get(b.id)) for b in session.scalars(select(models.Bank).order_by(models.Bank.name))]


def bank_names(session: Session) -> list[str]:
    return list(session.scalars(select(models.Bank.name).order_by(models.Bank.name)))


def bank_info(session: Session, name: str) -> dict[str, Any]:
    bank = get_bank(session, name)
    return bank_dict(bank, entry_counts(session).get(bank.id))


def list_entries(session: Session, *, bank: str | None = None, status: str | None = None, offset: int = 0,
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Entries of one bank (or of all), in submission order, oldest first (ties by id): pages stay put while
    new entries arrive, and a review queue is first come, first served. ``limit`` None: all of them."""
    if status and status not in STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
    query = select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
    if bank is not None:
        query = query.where(models.BankEntry.bank_id == get_bank(session, bank).id)
    if status:
        query = query.where(models.BankEntry.status == status)
    query = query.order_by(models.BankEntry.submitted_at, models.BankEntry.id).offset(offset).limit(limit)
    return [entry_dict(entry, b) for entry, b in session.execute(query).all()]


def entry_detail(session: Session, entry_id: str) -> dict[str, Any]:
    """One entry with its audit history (who did what, when, why), oldest first."""
    entry = get_entry(session, entry_id)
    history = session.scalars(select(models.AuditLog).where(models.AuditLog.target == entry_id)
                              .order_by(models.AuditLog.id))
    return {**entry_dict(entry, session.get(models.Bank, entry.bank_id)),
            "history": [{"at": iso(h.at), "actor": h.actor, "action": h.action, "details": h.details}
                        for h in history]}


def fingerprint_upload(data: bytes, settings: Settings) -> Fingerprint:
    """A file hashed by the one rule (worker.stages.fingerprint) for a search or a submission; a file that
    is neither an image nor a video is a 400 that says why."""
    from worker.stages.fingerprint import FingerprintError, fingerprint  # pure functions, loaded when asked

    try:
        return fingerprint(data, settings)
    except FingerprintError as exc:
        raise ApiError(400, str(exc)) from exc


def file_hashes(data: bytes, settings: Settings) -> dict[str, Any]:
    """A file's hashes as a submission (EntrySubmit) names them; a video's keyframes as frame objects. An
    image entry stores its PDQ as is: the matcher turns the query, not the entry."""
    fp = fingerprint_upload(data, settings)
    if fp.kind == "video":
        return {"media_kind": "video", "sha256": fp.sha256, "md5": fp.md5,
                "frames": [{"t": f.t, "pdq": f.pdq, "quality": f.quality} for f in fp.frames]}
    return {"media_kind": "image", "sha256": fp.sha256, "pdq": fp.pdq, "pdq_quality": fp.pdq_quality,
            "phash": fp.phash}


def _normalised(url: str) -> str:
    """A URL to fetch, as the cache keys it (server.checks.urls), or a 400 that says what is wrong with it."""
    try:
        return normalise(url)
    except BadUrl as exc:
        raise ApiError(400, str(exc)) from exc


def submit(svc: Services, bank_name: str, body: EntrySubmit, *, actor: str, jobs: Jobs,
           upload: bytes | None = None) -> dict[str, Any]:
    """A pending entry from hash values, from a URL (fetched through the guard by the hashing job) or from
    an uploaded file (kept in the media store, so reviewers see it; hashed by the job)."""
    check_links(body.source_links)  # before any bytes are stored
    sha256, hash_state, source_url = body.sha256, "ready", None
    if upload is not None:
        sha256, hash_state = svc.store.put(upload), "pending"
    elif body.url:
        source_url, hash_state = _normalised(body.url), "pending"
    with svc.db.session() as session:
        bank = get_bank(session, bank_name)
        entry = submit_entry(
            session, bank, actor=actor, label=body.label, notes=body.notes, source_links=body.source_links,
            tags=body.tags, sha256=sha256, pdq=body.pdq, pdq_quality=body.pdq_quality, phash=body.phash,
            source_url=source_url, hash_state=hash_state, media_kind=body.media_kind, md5=body.md5,
            frames=body.frames)
        result = entry_dict(entry, bank)
    if hash_state == "pending":
        jobs.hash_entry(result["id"])
    return result


def submit_media(svc: Services, bank_name: str, sha256: str, body: EntrySubmit, *, actor: str,
                 jobs: Jobs) -> dict[str, Any]:
    """Propose content this instance has checked (the desk's report page): a pending entry with the stored
    hashes, or, while the media has none yet, hashed from the stored file by the hashing job."""
    with svc.db.session() as session:
        media = session.get(models.Media, sha256)
        if media is None:
            raise ApiError(404, "no such media")
        ready = media.pdq is not None
        bank = get_bank(session, bank_name)
        entry = submit_entry(
            session, bank, actor=actor, label=body.label, notes=body.notes, source_links=body.source_links,
            tags=body.tags, sha256=sha256, pdq=media.pdq if ready else None,
            pdq_quality=media.pdq_quality if ready else None, phash=media.phash if ready else None,
            hash_state="ready" if ready else "pending")
        result = entry_dict(entry, bank)
    if not ready:
        jobs.hash_entry(result["id"])
    return result


def report(svc: Services, body: ReportRequest, *, actor: str, jobs: Jobs) -> dict[str, Any]:
    """A reader's "report as fake": a pending entry in the readers' reports bank, fetched by the hashing job."""
    url = _normalised(body.url)
    with svc.db.session() as session:
        bank = ensure_reports_bank(session)
        entry = submit_entry(session, bank, actor=actor, label=body.label or "Reported by a reader",
                             notes=body.note, source_url=url, hash_state="pending")
        result = entry_dict(entry, bank)
    jobs.hash_entry(result["id"])
    return result


def review(svc: Services, entry_id: str, decision: ReviewRequest | RetractRequest, *, actor: str,
           jobs: Jobs) -> dict[str, Any]:
    """Confirm, reject or retract, then re-match the stored media the entry touches when what matches
    changed. The entry as it is now, plus ``rematched_changed`` when the re-match ran at once."""
    action = decision.action if isinstance(decision, ReviewRequest) else "retract"
    with svc.db.session() as session:
        entry = get_entry(session, entry_id)
        changed = decide(session, entry, action=action, actor=actor, note=decision.note)
        result = entry_dict(entry, session.get(models.Bank, entry.bank_id))
    if changed and (count := jobs.rematch(entry_id)) is not None:
        result["rematched_changed"] = count
    return result


def delete_entry(svc: Services, entry_id: str, body: EntryDelete, *, actor: str, jobs: Jobs) -> dict[str, Any]:
    """Remove one entry for good (admins: e.g. one whose text breaks exports). What it matched is
    re-matched without it when it was confirmed or retracted."""
    with svc.db.session() as session:
        hashes = _remove_row(session, get_entry(session, entry_id), actor=actor, note=body.note)
    result: dict[str, Any] = {"deleted": entry_id}
    if hashes["status"] in MATCH_CHANGING and (count := jobs.rematch_removed(hashes)) is not None:
        result["rematched_changed"] = count
    return result
