"""Sharing between instances: the one place its rules and queries live.

The API blueprint and the CLI only parse, call a function here and render what it returns; the
worker's feed reader (worker/exchange/peer_pull.py) keeps a peer's state through it too. So a peer,
an export or an import is refused or accepted the same way whichever front end asked. Formats are
bank_io's, the signed feed is feed's, the key is identity's; this module decides who may do what
with them.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import models
from server.banks import service as banks
from server.errors import ApiError
from server.exchange import bank_io, feed, identity
from server.schemas import iso

if TYPE_CHECKING:
    from server.services import Services

FEED_PATH = "/api/v1/exchange/feed"
PEER_NAME = r"[a-z0-9][a-z0-9._-]{0,99}"  # like a bank's: it names the local banks of the peer's copies
MAX_URL = 2000
TRUST_LEVELS = ("trusted", "review")
KEY_BYTES = 32  # a raw Ed25519 public key
MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_WARNINGS = 200  # per-line warnings an import answers with; a count says how many more there were
# A raw import body's content types besides text/* (none at all is raw too); multipart/form-data has it as 'file'.
IMPORT_CONTENT_TYPES = ("application/octet-stream", "application/x-ndjson", "application/jsonl",
                        "application/x-jsonlines", "application/json", "application/csv")
UNASKED_PAGE_VERSION = feed.LEGACY_VERSION  # a reader that does not ask for v=2 may not read it


# --- this instance's identity --------------------------------------------------------------------


def identity_card(session: Session, instance_name: str) -> dict[str, Any]:
    """What an admin hands to a peer (API and CLI show the same card): name, key, where the feed is."""
    row = identity.get_or_create(session, instance_name)
    return {"name": row.name, "public_key": row.public_key, "algorithm": "ed25519",
            "feed_version": feed.FEED_VERSION, "feed": FEED_PATH}


def own_name(session: Session, instance_name: str) -> str:
    """The name this instance signs as: the stored identity's, which outlives a later rename in settings."""
    return identity.get_or_create(session, instance_name).name


# --- the feed, as served and as asked for ----------------------------------------------------------


def bank_filter(text: str | None) -> list[str] | None:
    """The feed's ``banks`` parameter (names joined by commas); None for every shared bank."""
    return [name for name in (text or "").split(",") if name] or None


def feed_page(session: Session, *, since: int, limit: int, banks_param: str | None, version: int,
              manifests: bool = False) -> dict[str, Any]:
    """A signed page. A version above ours gets ours: a newer reader still reads what we can sign. Manifest
    events only for a v2 reader that asks for them: older readers reject a page with a kind they do not know."""
    version = min(version, feed.FEED_VERSION)
    return feed.page(session, since, limit, bank_filter(banks_param), version,
                     manifests=manifests and version >= feed.FEED_VERSION)


def feed_url(peer: models.Peer, page_size: int) -> str:
    """The request for the peer's next page: from its cursor, in the version a reader here checks."""
    query: dict[str, Any] = {"since": peer.cursor, "limit": page_size, "v": feed.FEED_VERSION}
    if peer.manifests is not False:  # a row not flushed yet has no default: on, as the column's
        query["manifests"] = 1
    if peer.banks:
        query["banks"] = ",".join(peer.banks)
    return f"{peer.url.rstrip('/')}{FEED_PATH}?{urlencode(query)}"


# --- peers ---------------------------------------------------------------------------------------


def _key_bytes(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _is_base_url(url: str) -> bool:
    """The feed's path and query are appended to it, so it has neither a query nor a fragment."""
    if not banks.is_http_link(url) or len(url) > MAX_URL:
        return False
    parts = urlsplit(url)
    return not parts.query and not parts.fragment and "?" not in url and "#" not in url


def check_peer(*, name: str, url: str, public_key: str, bank_names: list[str], trust: str) -> None:
    """400 unless this could be pulled: a name for its local banks, an http(s) base URL, a pinned
    Ed25519 key, bank names the feed's comma-separated filter can carry, a known trust level."""
    if not isinstance(name, str) or not re.fullmatch(PEER_NAME, name):
        raise ApiError(400, "peer names are 1-100 lower-case letters, digits, '.', '_' and '-', "
                            "starting with a letter or digit")
    if not isinstance(url, str) or not _is_base_url(url):
        raise ApiError(400, f"url must be the http(s) base URL of the peer's Credence API (at most {MAX_URL} "
                            "characters, no query or fragment)")
    if not isinstance(public_key, str) or len(_key_bytes(public_key)) != KEY_BYTES:
        raise ApiError(400, "public_key must be a base64 Ed25519 key of 32 bytes")
    for bank_name in bank_names:
        if not isinstance(bank_name, str) or not banks.NAME_RE.fullmatch(bank_name):
            raise ApiError(400, f"banks must be bank names (lower-case letters, digits, '.', '_' and '-'): "
                                f"{str(bank_name)[:80]!r}")
    if trust not in TRUST_LEVELS:
        raise ApiError(400, f"trust must be one of {', '.join(TRUST_LEVELS)}")


def add_peer(session: Session, *, name: str, url: str, public_key: str, bank_names: list[str], trust: str,
             actor: str, manifests: bool = True) -> models.Peer:
    """``manifests``: whether the peer's shared manifest records are pulled into the manifest repository."""
    check_peer(name=name, url=url, public_key=public_key, bank_names=bank_names, trust=trust)
    if session.scalars(select(models.Peer.id).where(models.Peer.name == name)).first():
        raise ApiError(409, f"a peer named {name!r} exists")
    peer = models.Peer(name=name, url=url, public_key=public_key, banks=list(bank_names), trust=trust,
                       manifests=bool(manifests))
    session.add(peer)
    session.flush()
    banks.audit(session, actor, "peer.add", peer.id, name=name, url=url, trust=trust, manifests=bool(manifests))
    return peer


def list_peers(session: Session) -> list[models.Peer]:
    return list(session.scalars(select(models.Peer).order_by(models.Peer.name)))


def peer_ids(session: Session) -> list[str]:
    return list(session.scalars(select(models.Peer.id).order_by(models.Peer.name)))


def get_peer(session: Session, name: str) -> models.Peer:
    peer = session.scalars(select(models.Peer).where(models.Peer.name == name)).first()
    if peer is None:
        raise ApiError(404, f"no peer named {name!r}")
    return peer


def remove_peer(session: Session, name: str, *, actor: str) -> None:
    """The peer goes; the copies pulled from it stay, with their origin, for a reviewer to decide."""
    peer = get_peer(session, name)
    banks.audit(session, actor, "peer.delete", peer.id, name=name)
    session.delete(peer)


def update_peer(session: Session, name: str, *, actor: str, trust: str | None = None,
                manifests: bool | None = None) -> models.Peer:
    """Both apply to what the peer sends next: copies already pulled keep their status, and manifest records
    already pulled stay (expiry or a withdrawal removes them). A switch turned on again gets the manifest events
    published after the pull it reaches: those its feed sent while it was off are not asked for again."""
    if trust is not None and trust not in TRUST_LEVELS:
        raise ApiError(400, f"trust must be one of {', '.join(TRUST_LEVELS)}")
    peer = get_peer(session, name)
    if trust is not None and peer.trust != trust:
        banks.audit(session, actor, "peer.trust", peer.id, name=name, before=peer.trust, trust=trust)
        peer.trust = trust
    if manifests is not None and peer.manifests != manifests:
        banks.audit(session, actor, "peer.manifests", peer.id, name=name, manifests=manifests)
        peer.manifests = manifests
    return peer


def peer_dict(peer: models.Peer) -> dict[str, Any]:
    return {"id": peer.id, "name": peer.name, "url": peer.url, "public_key": peer.public_key, "banks": peer.banks,
            "trust": peer.trust, "manifests": peer.manifests, "cursor": peer.cursor, "last_error": peer.last_error,
            "instance": peer.instance, "head": peer.head, "last_pull_at": iso(peer.last_pull_at)}


def record_page(peer: models.Peer, page: dict[str, Any]) -> None:
    """A page was applied: its cursor, head and signed time are where the next pull resumes and what
    a replayed page is measured against. Same transaction as the page's events."""
    peer.cursor, peer.last_pull_at, peer.last_error = page["next"], models.utcnow(), None
    peer.head, peer.page_issued_at = page["head"], page["issued_at"]


def record_pull_failure(session: Session, peer_id: str, reason: str) -> None:
    """Why a pull stopped, where admins look (the peer's last_error) and in the audit log."""
    peer = session.get(models.Peer, peer_id)
    if peer is not None:
        peer.last_error = reason[:1000]
    banks.audit(session, "system", "peer.pull-failed", peer_id, reason=reason[:1000])


# --- export and import of banks -------------------------------------------------------------------


def check_format(fmt: str) -> str:
    if fmt not in bank_io.FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(bank_io.FORMATS)}")
    return fmt


def export_lines(session: Session, fmt: str, bank_names: list[str] | None, instance_name: str) -> Iterator[str]:
    """Lines of the file; every named bank must exist (404 before anything is written), none named is all."""
    check_format(fmt)
    for name in bank_names or []:
        banks.get_bank(session, name)
    return bank_io.export(session, fmt, list(bank_names or []) or None, instance_name)


@dataclass
class Imported:
    created: int
    unchanged: int
    statuses_kept: bool
    confirmed: list[str] = field(default_factory=list)  # entries that match from now on: to re-match
    warnings: list[str] = field(default_factory=list)  # lines read but not imported as they stand


def import_body_is_multipart(content_type: str) -> bool:
    """Where an API import's file is: the raw body (False) or multipart field 'file' (True). Any other
    type is a 415: a form-encoded body (what ``curl --data-binary`` sends unless told otherwise) has
    been taken apart as form fields before anyone reads it, so it would import nothing, and say so as
    ``created 0``."""
    if content_type == "multipart/form-data":
        return True
    if content_type and not content_type.startswith("text/") and content_type not in IMPORT_CONTENT_TYPES:
        raise ApiError(415, f"an import is the file itself as the body (text/*, {', '.join(IMPORT_CONTENT_TYPES)}) "
                            f"or multipart/form-data with the file in field 'file', not {content_type[:100]} "
                            "(with curl: --data-binary @FILE -H 'Content-Type: text/plain', or -F file=@FILE)")
    return False


def read_import(data: bytes) -> str:
    """The file's text, or why not: at most MAX_IMPORT_BYTES (413), UTF-8 (400)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, "import file is too large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the file is not UTF-8 (byte {exc.start})") from exc


def import_file(session: Session, bank_name: str, data: bytes, fmt: str, *, actor: str,
                keep_status: bool) -> Imported:
    """All or nothing (bank_io.ImportRejected lists every bad line), idempotent. ``keep_status`` keeps
    the file's statuses; otherwise everything arrives pending for review. The file is checked before
    the bank is looked up, so a bad file is reported as such whatever the bank."""
    fmt = check_format(fmt)
    parsed = bank_io.parse(read_import(data), fmt)
    bank = banks.get_bank(session, bank_name)
    result = bank_io.import_records(session, bank, parsed, actor=actor, keep_status=keep_status)
    return Imported(result.created, result.unchanged, keep_status, list(result.confirmed), list(result.warnings))


def import_bank(svc: Services, bank_name: str, data: bytes, fmt: str, *, actor: str, keep_status: bool,
                jobs: banks.Jobs) -> dict[str, Any]:
    """Import a file (``import_file``), then re-match the stored media its newly confirmed entries touch,
    as a confirmation does (server/banks/service.py ``Jobs``: queued by the API, at once by the CLI, which
    then says how many verdicts changed). ``warnings`` is there only when a line was not imported as it
    stands, as errors' ``details`` are."""
    with svc.db.session() as session:
        result = import_file(session, bank_name, data, fmt, actor=actor, keep_status=keep_status)
    counts = [jobs.rematch(entry_id) for entry_id in result.confirmed]
    out: dict[str, Any] = {"created": result.created, "unchanged": result.unchanged,
                           "statuses_kept": result.statuses_kept}
    if counts and all(isinstance(n, int) for n in counts):
        out["verdicts_changed"] = sum(counts)
    if result.warnings:
        out["warnings"] = result.warnings[:MAX_WARNINGS]
        if len(result.warnings) > MAX_WARNINGS:
            out["warnings"].append(f"... and {len(result.warnings) - MAX_WARNINGS} more warnings")
    return out
