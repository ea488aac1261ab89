"""The signed exchange feed: what this instance publishes about its shared banks (and, when the setting
shares them, its manifest repository's own records).

Events are recorded in the same transaction as the change they describe (so the feed never misses
one), each signed on its own (so an imported copy keeps a verifiable origin), and served in
cursor-ordered pages that are signed as a whole (so one changed byte rejects the page).
Format: docs/exchange-feed.md.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import models
from server.exchange import identity
from server.config import get_settings

FEED_VERSION = 2  # pages: v2 adds the signed limit, head and issued_at that readers check for freshness
LEGACY_VERSION = 1  # still served to readers that do not ask for v=2 (no freshness: see the docs)
EVENT_VERSION = 1  # event payloads are unchanged
MAX_PAGE = 500


def _identity(session: Session) -> models.InstanceIdentity:
    return identity.get_or_create(session, get_settings().instance_name)


def public_actor(actor: str | None, instance: str) -> str | None:
    """Who did something, as it may be said outside this instance: the instance, which vouches for it
    by publishing it. Never the desk login or key the audit log keeps (a feed is public, a file leaves
    the house), nor a stored ``peer:`` name, which a file's ``reviewed_by`` may have claimed."""
    return instance if actor else None


def entry_fields(entry: models.BankEntry, instance: str) -> dict[str, Any]:
    """An event's ``entry``: the decision is the publishing instance's (``reviewed_by``), not a person's."""
    return {"id": entry.id, "label": entry.label, "notes": entry.notes, "tags": list(entry.tags or []),
            "source_links": list(entry.source_links or []), "sha256": entry.sha256, "pdq": entry.pdq,
            "pdq_quality": entry.pdq_quality, "phash": entry.phash,
            "media_kind": entry.media_kind, "md5": entry.md5, "frames": entry.frames_list(),
            "reviewed_by": public_actor(entry.reviewed_by, instance),
            "reviewed_at": entry.reviewed_at.isoformat() if entry.reviewed_at else None}


def record(session: Session, kind: str, entry: models.BankEntry, bank: models.Bank, note: str = "",
           opinion: str | None = None) -> models.FeedEvent:
    me = _identity(session)
    payload: dict[str, Any] = {"v": EVENT_VERSION, "kind": kind, "instance": me.name, "bank": bank.name,
                               "bank_kind": bank.kind, "at": models.utcnow().isoformat()}
    if kind == "opinion":  # about someone else's entry: name it by its origin
        payload.update(opinion=opinion, note=note,
                       about={"instance": entry.origin_instance, "entry_id": entry.origin_entry_id})
    else:
        payload.update(entry=entry_fields(entry, me.name), note=note)
    event = models.FeedEvent(bank_id=bank.id, entry_id=entry.id, kind=kind, payload=payload,
                             signature=identity.sign(me, identity.canonical(payload)))
    session.add(event)
    return event


def on_decision(session: Session, entry: models.BankEntry, bank: models.Bank, action: str, note: str) -> None:
    """Publish a review decision: our own entries of shared banks as entries/retractions; our verdict
    on an entry imported from a peer as an opinion (confirm or dispute), whatever the bank's sharing.
    An entry that claims an origin it did not arrive with from that peer's feed publishes nothing: a
    decision on it must never become a signed opinion about someone else's real entry."""
    if entry.origin_instance:
        if entry.is_feed_copy:
            record(session, "opinion", entry, bank, note, opinion="confirm" if action == "confirm" else "dispute")
        return
    elif bank.shared and action == "confirm":
        record(session, "entry", entry, bank, note)
    elif bank.shared and action == "retract":
        record(session, "retraction", entry, bank, note)


MANIFEST_KINDS = ("manifest", "manifest-withdrawal")  # belong to no bank; served only to readers that ask
MAX_PAGE_STORE_CHARS = 8 * 1024 * 1024  # base64 of manifest stores on one page (a 4 MiB store, ~5.6 MB, always fits)


def record_manifest(session: Session, manifest_id: str, record: dict[str, Any]) -> models.FeedEvent:
    """Publish one of the repository's own records (``repository.manifest_record`` without the thumbnail: the
    signed one is inside the store), in the transaction that changed it; signed as every event."""
    return _record_bankless(session, "manifest", manifest_id, record)


def record_manifest_withdrawal(session: Session, manifest_id: str, sha256: str, label: str) -> models.FeedEvent:
    """Publish that the repository forgot a record it had shared (its credentials no longer validate here)."""
    return _record_bankless(session, "manifest-withdrawal", manifest_id, {"sha256": sha256, "label": label})


def _record_bankless(session: Session, kind: str, manifest_id: str, manifest: dict[str, Any]) -> models.FeedEvent:
    me = _identity(session)
    payload: dict[str, Any] = {"v": EVENT_VERSION, "kind": kind, "instance": me.name, "note": "",
                               "at": models.utcnow().isoformat(), "manifest": manifest}
    event = models.FeedEvent(bank_id=None, entry_id=manifest_id, kind=kind, payload=payload,
                             signature=identity.sign(me, identity.canonical(payload)))
    session.add(event)
    return event


def _store_chars(event: models.FeedEvent) -> int:
    manifest = event.payload.get("manifest") if isinstance(event.payload, dict) else None
    store = manifest.get("store") if isinstance(manifest, dict) else None
    return len(store) if isinstance(store, str) else 0


def publish_existing(session: Session, bank: models.Bank) -> int:
    """When a bank becomes shared, its confirmed entries go on the feed."""
    entries = session.scalars(select(models.BankEntry).where(
        models.BankEntry.bank_id == bank.id, models.BankEntry.status == "confirmed",
        models.BankEntry.origin_instance.is_(None))).all()
    for entry in entries:
        record(session, "entry", entry, bank, "bank shared")
    return len(entries)


def page(session: Session, since: int, limit: int, bank_names: list[str] | None,
         version: int = FEED_VERSION, manifests: bool = False) -> dict[str, Any]:
    """``{"signed": <canonical JSON text>, "signature": <Ed25519 over its UTF-8 bytes>}``.

    A v2 page also signs the limit it answers, this feed's head (its highest cursor) and the time,
    so a reader can refuse a captured page replayed later in place of the current one. Manifest events
    (no bank) are served only with ``manifests`` (readers written before them reject unknown kinds), whatever
    the ``banks`` filter; the cursor moves past them either way. A page ends early (``more``) once its
    manifest stores reach ``MAX_PAGE_STORE_CHARS``, so a page stays a few MiB whatever its limit."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(models.FeedEvent, models.Bank.name) \
        .join(models.Bank, models.Bank.id == models.FeedEvent.bank_id, isouter=True) \
        .where(models.FeedEvent.id > since).order_by(models.FeedEvent.id).limit(limit + 1)
    rows = session.execute(query).all()
    more = len(rows) > limit
    events: list[dict[str, Any]] = []
    last, store_chars = since, 0
    for e, bank_name in rows[:limit]:
        if e.kind in MANIFEST_KINDS:
            wanted = manifests
        else:
            wanted = not bank_names or e.kind == "opinion" or bank_name in bank_names
        if wanted:
            weight = _store_chars(e)
            if events and weight and store_chars + weight > MAX_PAGE_STORE_CHARS:
                more = True
                break
            store_chars += weight
            events.append({"cursor": e.id, "payload": e.payload, "signature": e.signature})
        last = e.id
    me = _identity(session)
    body = {"v": FEED_VERSION, "instance": me.name, "public_key": me.public_key, "since": since,
            "next": last, "more": more, "events": events}
    if version >= 2:
        head = session.scalar(select(func.coalesce(func.max(models.FeedEvent.id), 0)))
        body.update(v=FEED_VERSION, limit=limit, head=max(int(head), body["next"]),
                    issued_at=models.utcnow().isoformat())
    else:
        body["v"] = LEGACY_VERSION
    text = identity.canonical(body).decode("utf-8")
    return {"signed": text, "signature": identity.sign(me, text.encode("utf-8"))}
