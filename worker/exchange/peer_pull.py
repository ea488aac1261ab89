"""Pull a peer's signed feed through the guarded fetcher and apply it.

Each page is verified (page signature, then the page against its schema and the request, then
every event's own signature) before anything is stored, and applied in one transaction together
with the new cursor: a tampered, stale or malformed page stores nothing, and a restart resumes
from the last applied page without duplicates.

Everything on a page is attributed to the peer whose pinned key signed it: the name it signs as is
bound to that peer on the first accepted page, every event must carry that name, and a peer can
only change entries that came from it (and its own opinions), never another instance's.

Manifest events (asked for with ``manifests=1``) fill the manifest repository through its import rule with the
peer as origin; each stored record is queued for re-validation here once its page commits, and counts for nothing
before that (docs/repository.md "Sharing in the exchange feed").
"""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, \
    field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import json_edge, models
from server.banks import service as banks
from server.errors import ApiError
from server.exchange import feed, identity
from server.exchange import service as exchange
from server.provenance import repository
from server.queue import enqueue_revalidate_manifest
from worker.context import Context
from worker.fetch.common import FetchLimits, FetchRefused, Want
from worker.fetch.documents import fetch_document

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


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer publishers may add fields; what we use is checked


class EntryFields(_Lenient):
    id: str = Field(min_length=1, max_length=100)
    label: str = Field(min_length=1, max_length=300)
    notes: str | None = Field(None, max_length=20_000)
    tags: list[str] | None = Field(None, max_length=50)
    source_links: list[str] | None = Field(None, max_length=50)
    sha256: str | None = Field(None, max_length=64)
    pdq: str | None = Field(None, max_length=64)
    pdq_quality: StrictInt | None = Field(None, ge=0, le=100)
    phash: str | None = Field(None, max_length=16)
    media_kind: Literal["image", "video"] | None = None
    md5: str | None = Field(None, max_length=32)
    frames: list[dict[str, Any]] | None = Field(None, max_length=models.MAX_FRAMES)
    reviewed_by: str | None = Field(None, max_length=200)

    @field_validator("source_links")
    @classmethod
    def _http_only(cls, links: list[str] | None) -> list[str] | None:
        for link in links or []:
            if not banks.is_http_link(link):
                raise ValueError(f"source_links must be http(s) URLs: {link[:80]!r}")
        return links


class About(_Lenient):
    instance: str = Field(min_length=1, max_length=200)
    entry_id: str = Field(min_length=1, max_length=100)


class Payload(_Lenient):
    kind: Literal["entry", "retraction", "opinion", "manifest", "manifest-withdrawal"]
    instance: str = Field(min_length=1, max_length=200)
    bank: str | None = Field(None, min_length=1, max_length=100)
    bank_kind: Literal["fake", "original"] | None = None
    note: str = Field("", max_length=20_000)
    entry: EntryFields | None = None
    opinion: Literal["confirm", "dispute"] | None = None
    about: About | None = None
    manifest: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "Payload":
        if self.kind in feed.MANIFEST_KINDS:
            return self._manifest_shape()
        if self.bank is None or self.bank_kind is None:
            raise ValueError(f"a {self.kind} event needs bank and bank_kind")
        if self.kind != "opinion" and self.entry is None:
            raise ValueError(f"a {self.kind} event needs its entry")
        if self.kind == "opinion" and (self.opinion is None or self.about is None):
            raise ValueError("an opinion event needs opinion and about")
        return self

    def _manifest_shape(self) -> "Payload":
        """A manifest event's record passes the repository's one import rule (``check_record``); a withdrawal
        names the content by its sha256."""
        if self.manifest is None:
            raise ValueError(f"a {self.kind} event needs its manifest")
        if self.kind == "manifest-withdrawal":
            sha = self.manifest.get("sha256")
            if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
                raise ValueError("a manifest-withdrawal names its content by sha256 (64 lower-case hex digits)")
            return self
        problems = repository.check_record(self.manifest)
        if problems:
            raise ValueError(f"the manifest record cannot be stored: {'; '.join(problems[:5])}")
        return self


class Event(_Lenient):
    cursor: StrictInt = Field(ge=1)
    payload: dict[str, Any]
    signature: str = Field(min_length=1, max_length=200)


class Page(_Lenient):
    v: Literal[2]
    instance: str = Field(min_length=1, max_length=200)
    since: StrictInt = Field(ge=0)
    limit: StrictInt = Field(ge=1)
    next: StrictInt = Field(ge=0)
    more: StrictBool
    head: StrictInt = Field(ge=0)
    issued_at: AwareDatetime
    events: list[Event]


def _schema_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "page"
    return f"{where}: {first['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def verify_page(data: bytes, public_key: str, since: int, limit: int | None = None) -> dict[str, Any]:
    """The page as checked data, or FeedRejected: signed by the pinned key, of the schema, answering
    this request (cursor echoed, at most ``limit`` events, cursors forward only, within the signed
    head), and every event signed by the same key under the page's name."""
    try:
        outer = json_edge.loads(data, "the page")
        signed, signature = outer["signed"], outer["signature"]
    except json_edge.UnsafeText as exc:
        raise FeedRejected(f"{exc}: rejected, nothing stored") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise FeedRejected(f"not a signed feed page ({type(exc).__name__})") from exc
    if not isinstance(signed, str) or not isinstance(signature, str):
        raise FeedRejected("not a signed feed page")
    if not identity.verify(public_key, signed.encode("utf-8"), signature):
        raise FeedRejected("page signature does not verify with the peer's key: rejected, nothing stored")
    try:
        page = json_edge.loads(signed, "the signed page")
    except ValueError as exc:  # UnsafeText included: a lone surrogate or NUL in any event
        raise FeedRejected(f"{exc}: rejected, nothing stored") from exc
    if not isinstance(page, dict):
        raise FeedRejected("the signed page is not a JSON object")
    if page.get("v") != feed.FEED_VERSION:
        raise FeedRejected(f"feed page version {page.get('v')!r} is not read here (this reader needs "
                           f"v{feed.FEED_VERSION}, whose signed head and time make replays detectable)")
    try:
        checked = Page.model_validate(page)
    except ValidationError as exc:
        raise FeedRejected(f"page does not match the feed schema: {_schema_error(exc)}") from exc
    if checked.since != since:
        raise FeedRejected(f"page answers since={checked.since}, not the cursor {since} asked for")
    if limit is not None and (checked.limit > limit or len(checked.events) > limit):
        raise FeedRejected(f"page carries {len(checked.events)} events (limit {checked.limit}) where at most "
                           f"{limit} were asked for")
    if len(checked.events) > checked.limit:
        raise FeedRejected(f"page carries {len(checked.events)} events over its own limit {checked.limit}")
    if not since <= checked.next <= checked.head:
        raise FeedRejected(f"page moves the cursor from {since} to {checked.next} (head {checked.head}): "
                           "cursors only move forward, up to the head")
    if checked.more and checked.next == since:
        raise FeedRejected("page says more events follow but does not move the cursor")
    last = since
    events = []
    for event in checked.events:
        if not last < event.cursor <= checked.next:
            raise FeedRejected(f"event cursor {event.cursor} is out of order (after {last}, up to {checked.next})")
        last = event.cursor
        try:
            signed_ok = identity.verify(public_key, identity.canonical(event.payload), event.signature)
        except ValueError:  # text that cannot be encoded cannot have been signed
            signed_ok = False
        if not signed_ok:
            raise FeedRejected(f"event {event.cursor} signature does not verify: page rejected")
        try:
            payload = Payload.model_validate(event.payload)
        except ValidationError as exc:
            raise FeedRejected(f"event {event.cursor} does not match the feed schema: {_schema_error(exc)}") from exc
        if payload.instance != checked.instance:
            raise FeedRejected(f"event {event.cursor} claims instance {payload.instance!r} on a page signed as "
                               f"{checked.instance!r}: a peer speaks only for itself; page rejected")
        events.append({"cursor": event.cursor, "payload": payload.model_dump(), "signature": event.signature})
    return {"instance": checked.instance, "since": checked.since, "limit": checked.limit, "next": checked.next,
            "more": checked.more, "head": checked.head, "issued_at": checked.issued_at, "events": events}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite drops the zone


def check_fresh(page: dict[str, Any], peer: models.Peer, now: datetime, max_age_s: int) -> None:
    """Refuse a replayed page: signed outside the freshness window, or older (by signed time or head)
    than a page already accepted from this peer."""
    issued, window = page["issued_at"], timedelta(seconds=max_age_s)
    if not now - window <= issued <= now + window:
        raise FeedRejected(f"page signed at {issued.isoformat()} is outside the {max_age_s} s freshness window "
                           "(CREDENCE_PEER_FEED_MAX_AGE_S): stale or replayed, nothing stored")
    if peer.head is not None and page["head"] < peer.head:
        raise FeedRejected(f"page head {page['head']} is behind the head {peer.head} already seen: replayed, "
                           "nothing stored")
    if peer.page_issued_at is not None and issued < _aware(peer.page_issued_at):
        raise FeedRejected(f"page signed at {issued.isoformat()} is older than the page already accepted "
                           f"({_aware(peer.page_issued_at).isoformat()}): replayed, nothing stored")


def bind_instance(session: Session, peer: models.Peer, name: str, me: str) -> str:
    """The origin name of everything this peer publishes: what its key signs as, bound on the first
    accepted page; another peer (or this instance) cannot take it."""
    if name == me:
        raise FeedRejected(f"the page is signed as {name!r}, this instance's own name: rejected")
    if peer.instance and peer.instance != name:
        raise FeedRejected(f"the page is signed as {name!r} but this peer publishes as {peer.instance!r}: rejected")
    other = session.scalars(select(models.Peer.name).where(models.Peer.instance == name,
                                                           models.Peer.id != peer.id)).first()
    if other is not None:
        raise FeedRejected(f"the page is signed as {name!r}, the name of peer {other!r}: one name, one key; rejected")
    peer.instance = name
    return name


def _local_bank(session: Session, peer: models.Peer, payload: dict[str, Any]) -> models.Bank:
    name = re.sub(r"[^a-z0-9._-]", "-", f"{peer.name}.{payload['bank']}".lower())[:100]
    try:
        return banks.get_bank(session, name)
    except ApiError:
        return banks.create_bank(session, name=name, kind=payload["bank_kind"], actor=f"peer:{peer.name}",
                                 description=f"Pulled from {peer.name} ({payload['bank']})")


def _copy_of(session: Session, origin: str, entry_id: str, *, evict: bool = False) -> models.BankEntry | None:
    """The copy the feed reader made of ``origin``'s entry. An entry that merely claims that origin
    (not made from a feed: e.g. an import before origins were refused there) is not it; with
    ``evict`` (the origin's own feed is about to store its entry) the false claim is cleared."""
    entry = session.scalars(select(models.BankEntry).where(
        models.BankEntry.origin_instance == origin, models.BankEntry.origin_entry_id == entry_id)).first()
    if entry is None or entry.is_feed_copy:
        return entry
    if evict:
        banks.audit(session, "system", "entry.origin-cleared", entry.id, claimed_instance=origin,
                    claimed_entry_id=entry_id, reason="the origin was claimed by an entry not pulled from its feed")
        entry.origin_instance = entry.origin_entry_id = entry.origin_signature = None
        session.flush()
    return None


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
    """Apply one verified event of ``peer`` (bound by bind_instance); returns the local entry id when
    what matches may have changed. The origin is the peer's bound name, never the event's field."""
    p, actor = event["payload"], f"peer:{peer.name}"
    origin = peer.instance
    if not origin:
        raise FeedRejected("the peer's name is not bound: apply events only after bind_instance")
    if p["kind"] in feed.MANIFEST_KINDS:
        raise FeedRejected(f"event {event['cursor']}: a {p['kind']} event is applied by apply_manifest_event")
    if p["kind"] == "opinion":  # the peer's own view of someone's entry, kept under the peer's name
        about = p.get("about") or {}
        if about.get("instance") == me:
            entry = session.get(models.BankEntry, about.get("entry_id"))
            entry = entry if entry is not None and not entry.origin_instance else None
        else:
            entry = _copy_of(session, about.get("instance"), about.get("entry_id"))
        if entry is not None:
            _set_opinion(session, entry, origin, p["opinion"], p.get("note", ""))
            banks.audit(session, actor, f"opinion.{p['opinion']}", entry.id, note=p.get("note", ""))
            if entry.status == "confirmed":  # verdicts that cite it must show the dispute (or its end)
                return entry.id
        return None
    fields = p["entry"]
    entry = _copy_of(session, origin, fields["id"], evict=p["kind"] == "entry")
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


def apply_manifest_event(session: Session, peer: models.Peer, event: dict[str, Any],
                         put_blob: Callable[[bytes], str]) -> str | None:
    """Apply one verified manifest event of ``peer`` to the repository, under the peer's bound name; returns the
    row to re-validate here (the caller queues it once the page commits). The record never counts before that
    re-validation (repository ``Recovery.counts``), and never replaces a row this instance read itself."""
    p, origin = event["payload"], peer.instance
    if not origin:
        raise FeedRejected("the peer's name is not bound: apply events only after bind_instance")
    record = p["manifest"]
    if p["kind"] == "manifest-withdrawal":
        if repository.withdraw_peer_record(session, record["sha256"], instance=origin):
            banks.audit(session, f"peer:{peer.name}", "repository.peer-withdrawal", record["sha256"], origin=origin)
        return None
    manifest_id = repository.store_peer_record(session, record, put_blob, instance=origin)
    if manifest_id is not None:
        banks.audit(session, f"peer:{peer.name}", "repository.peer-manifest", manifest_id, origin=origin,
                    sha256=record["sha256"])
    return manifest_id


def pull_peer(ctx: Context, peer_id: str, max_pages: int = MAX_PAGES, page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """Pull pages until the peer has no more (or ``max_pages``); returns what happened."""
    from worker.banks import jobs as bank_jobs

    summary: dict[str, Any] = {"pages": 0, "events": 0, "changed": 0, "manifests": 0, "error": None}
    limits = FetchLimits.from_settings(ctx.settings)
    for _ in range(max_pages):
        with ctx.db.session() as session:
            peer = session.get(models.Peer, peer_id)
            if peer is None:
                return {**summary, "error": "no such peer"}
            session.expunge(peer)
            me = exchange.own_name(session, ctx.settings.instance_name)
        url = exchange.feed_url(peer, page_size)
        changed: list[str] = []
        revalidate: list[str] = []
        try:
            page = verify_page(fetch_document(url, limits, JSON_DOCUMENT).data, peer.public_key, peer.cursor, page_size)
            check_fresh(page, peer, models.utcnow(), ctx.settings.peer_feed_max_age_s)
            with ctx.db.session() as session:  # the page and its cursor commit together, or not at all
                row = session.get(models.Peer, peer_id)
                if row is None:
                    return {**summary, "error": "no such peer"}
                bind_instance(session, row, page["instance"], me)
                for event in page["events"]:
                    if event["payload"]["kind"] in feed.MANIFEST_KINDS:
                        manifest_id = apply_manifest_event(session, row, event, ctx.store.put)
                        if manifest_id:
                            revalidate.append(manifest_id)
                        continue
                    entry_id = apply_event(session, row, event, me)
                    if entry_id:
                        changed.append(entry_id)
                exchange.record_page(row, page)
        except (FetchRefused, FeedRejected) as exc:
            return {**summary, "error": _failed(ctx, peer_id, peer.name, getattr(exc, "reason", None) or str(exc))}
        except Exception as exc:  # noqa: BLE001 - one bad page must not kill the pull task for every peer
            log.exception("applying a page from %s failed", peer.name)
            return {**summary, "error": _failed(ctx, peer_id, peer.name,
                                                f"page could not be applied ({type(exc).__name__}): nothing stored")}
        summary["pages"] += 1
        summary["events"] += len(page["events"])
        for entry_id in changed:  # re-match stored media: verdicts and cache follow the peer
            bank_jobs.rematch_entry(ctx, entry_id)
        summary["changed"] += len(changed)
        for manifest_id in revalidate:  # committed: the worker re-validates each store against our trust lists
            ctx.enqueue(enqueue_revalidate_manifest, manifest_id)
        summary["manifests"] += len(revalidate)
        if not page["more"]:
            break
    return summary


def _failed(ctx: Context, peer_id: str, peer_name: str, reason: str) -> str:
    log.warning("pull from %s failed: %s", peer_name, reason)
    with ctx.db.session() as session:
        exchange.record_pull_failure(session, peer_id, reason)
    return reason


def pull_all(ctx: Context) -> dict[str, Any]:
    with ctx.db.session() as session:
        peer_ids = exchange.peer_ids(session)
    return {peer_id: pull_peer(ctx, peer_id) for peer_id in peer_ids}
