"""Pull a peer's signed feed through the guarded fetcher and apply it.

Each page is verified (page signature, then every event's own signature) before anything is
stored, and applied in one transaction together with the new cursor: a tampered page stores
nothing, and a restart resumes from the last applied page without duplicates.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import banks, identity, models
from server.errors import ApiError
from worker.context import Context
from worker.fetcher import FetchLimits, FetchRefused, Want, fetch_document

log = logging.getLogger(__name__)
PAGE_SIZE = 200
MAX_PAGES = 50  # per pull; the next beat continues from the cursor


class FeedRejected(ValueError):
    """The page is not what the peer signed, or not a feed page at all."""


def _json_head(head: bytes) -> str:
    if not head.lstrip()[:1] == b"{":
        raise FetchRefused("refused: the feed did not answer with a JSON object", "not-media")
    return "application/json"


JSON_DOCUMENT = Want("application/json", _json_head)


def verify_page(data: bytes, public_key: str, since: int) -> dict[str, Any]:
    try:
        outer = json.loads(data)
        signed, signature = outer["signed"], outer["signature"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FeedRejected(f"not a signed feed page ({type(exc).__name__})") from exc
    if not isinstance(signed, str) or not isinstance(signature, str):
        raise FeedRejected("not a signed feed page")
    if not identity.verify(public_key, signed.encode("utf-8"), signature):
        raise FeedRejected("page signature does not verify with the peer's key: rejected, nothing stored")
    page = json.loads(signed)
    if page.get("v") != 1 or page.get("since") != since or not isinstance(page.get("events"), list):
        raise FeedRejected("page does not answer the request (version or cursor)")
    for event in page["events"]:
        if not identity.verify(public_key, identity.canonical(event["payload"]), event["signature"]):
            raise FeedRejected(f"event {event.get('cursor')} signature does not verify: page rejected")
    return page


def _local_bank(session: Session, peer: models.Peer, payload: dict[str, Any]) -> models.Bank:
    name = re.sub(r"[^a-z0-9._-]", "-", f"{peer.name}.{payload['bank']}".lower())[:100]
    bank = session.scalars(select(models.Bank).where(models.Bank.name == name)).first()
    return bank or banks.create_bank(session, name=name, kind=payload["bank_kind"], actor=f"peer:{peer.name}",
                                     description=f"Pulled from {peer.name} ({payload['bank']})")


def _copy_of(session: Session, origin: str, entry_id: str) -> models.BankEntry | None:
    return session.scalars(select(models.BankEntry).where(
        models.BankEntry.origin_instance == origin, models.BankEntry.origin_entry_id == entry_id)).first()


def _set_opinion(session: Session, entry: models.BankEntry, instance: str, opinion: str, note: str) -> None:
    row = session.scalars(select(models.Opinion).where(models.Opinion.entry_id == entry.id,
                                                       models.Opinion.instance == instance)).first()
    if row is None:
        session.add(models.Opinion(entry_id=entry.id, instance=instance, opinion=opinion, note=note))
    else:
        row.opinion, row.note, row.at = opinion, note, models.utcnow()
    session.flush()
    opinions = set(session.scalars(select(models.Opinion.opinion).where(models.Opinion.entry_id == entry.id)))
    entry.disputed = "dispute" in opinions


def apply_event(session: Session, peer: models.Peer, event: dict[str, Any], me: str) -> str | None:
    """Apply one verified event; returns the local entry id when what matches may have changed."""
    p, actor = event["payload"], f"peer:{peer.name}"
    origin = p["instance"]
    if p["kind"] == "opinion":
        about = p.get("about") or {}
        entry = (session.get(models.BankEntry, about.get("entry_id")) if about.get("instance") == me
                 else _copy_of(session, about.get("instance"), about.get("entry_id")))
        if entry is not None:
            _set_opinion(session, entry, origin, p["opinion"], p.get("note", ""))
            banks.audit(session, actor, f"opinion.{p['opinion']}", entry.id, note=p.get("note", ""))
        return None
    fields = p["entry"]
    entry = _copy_of(session, origin, fields["id"])
    if p["kind"] == "retraction":
        if entry is None or entry.status in ("retracted", "rejected"):
            return None
        entry.status, entry.review_note = "retracted", f"retracted at origin {origin}: {p.get('note', '')}"
        entry.reviewed_by, entry.reviewed_at = actor, models.utcnow()
        _set_opinion(session, entry, origin, "retract", p.get("note", ""))
        banks.audit(session, actor, "entry.retract", entry.id, origin=origin)
        banks.bump_generation(session, session.get(models.Bank, entry.bank_id))
        return entry.id
    status = "confirmed" if peer.trust == "trusted" else "pending"
    if entry is None:
        try:
            entry = banks.submit_entry(
                session, _local_bank(session, peer, p), actor=actor, label=fields["label"],
                notes=fields.get("notes") or "", source_links=fields.get("source_links") or [],
                tags=fields.get("tags") or [], sha256=fields.get("sha256"), pdq=fields.get("pdq"),
                pdq_quality=fields.get("pdq_quality"), phash=fields.get("phash"),
                media_kind=fields.get("media_kind"), md5=fields.get("md5"), frames=fields.get("frames"))
        except ApiError as exc:
            raise FeedRejected(f"event {event['cursor']}: {exc.message}") from exc
        entry.origin_instance, entry.origin_entry_id, entry.origin_signature = origin, fields["id"], event["signature"]
    elif not (entry.status == "retracted" and entry.reviewed_by == actor) and not (
            entry.status == "pending" and status == "confirmed"):
        # Our own decision on the copy (or nothing new) stands; the peer's view is kept beside it.
        entry.label, entry.notes = fields["label"], fields.get("notes") or ""
        _set_opinion(session, entry, origin, "confirm", p.get("note", ""))
        return None
    entry.status = status
    if status == "confirmed":
        entry.reviewed_by, entry.reviewed_at = actor, models.utcnow()
        entry.review_note = f"confirmed at origin {origin} by {fields.get('reviewed_by')}; peer trusted"
        banks.bump_generation(session, session.get(models.Bank, entry.bank_id))
    _set_opinion(session, entry, origin, "confirm", p.get("note", ""))
    banks.audit(session, actor, "entry.import", entry.id, origin=origin, status=status)
    return entry.id if status == "confirmed" else None


def pull_peer(ctx: Context, peer_id: str, max_pages: int = MAX_PAGES, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Pull pages until the peer has no more (or ``max_pages``); returns what happened."""
    from worker import bank_jobs

    summary: dict[str, Any] = {"pages": 0, "events": 0, "changed": 0, "error": None}
    limits = FetchLimits.from_settings(ctx.settings)
    for _ in range(max_pages):
        with ctx.db.session() as session:
            peer = session.get(models.Peer, peer_id)
            if peer is None:
                return {**summary, "error": "no such peer"}
            session.expunge(peer)
            me = identity.get_or_create(session, ctx.settings.instance_name).name
        query = {"since": peer.cursor, "limit": page_size}
        if peer.banks:
            query["banks"] = ",".join(peer.banks)
        url = f"{peer.url.rstrip('/')}/api/v1/exchange/feed?{urlencode(query)}"
        try:
            page = verify_page(fetch_document(url, limits, JSON_DOCUMENT).data, peer.public_key, peer.cursor)
        except (FetchRefused, FeedRejected) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            log.warning("pull from %s failed: %s", peer.name, reason)
            with ctx.db.session() as session:
                row = session.get(models.Peer, peer_id)
                row.last_error = reason[:1000]
                banks.audit(session, "system", "peer.pull-failed", peer_id, reason=reason[:1000])
            return {**summary, "error": reason}
        changed: list[str] = []
        with ctx.db.session() as session:  # the page and its cursor commit together, or not at all
            row = session.get(models.Peer, peer_id)
            for event in page["events"]:
                entry_id = apply_event(session, row, event, me)
                if entry_id:
                    changed.append(entry_id)
            row.cursor, row.last_pull_at, row.last_error = page["next"], models.utcnow(), None
        summary["pages"] += 1
        summary["events"] += len(page["events"])
        for entry_id in changed:  # re-match stored media: verdicts and cache follow the peer
            bank_jobs.rematch_entry(ctx, entry_id)
        summary["changed"] += len(changed)
        if not page["more"]:
            break
    return summary


def pull_all(ctx: Context) -> dict[str, Any]:
    with ctx.db.session() as session:
        peer_ids = list(session.scalars(select(models.Peer.id)))
    return {peer_id: pull_peer(ctx, peer_id) for peer_id in peer_ids}
