"""Sharing: export/import of banks, the signed exchange feed, this instance's identity, and peers."""
from __future__ import annotations

import base64
import binascii

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from server import models
from server.exchange import bank_io
from server.banks import service as banks
from server.exchange import feed
from server.exchange import identity
from server.api.deps import enqueue, services
from server.api.request_body import parse_json, query_int
from server.auth import actor, current_role, rank, require_role
from server.errors import ApiError
from server.schemas import iso
from server.queue import enqueue_pull_peer, enqueue_rematch

bp = Blueprint("exchange", __name__)
MAX_CURSOR = 2**63 - 1  # the largest id either database stores
MAX_IMPORT_BYTES = 50 * 1024 * 1024
MIME = {"jsonl": "application/x-ndjson", "te-lines": "text/plain", "te-csv": "text/csv"}


class PeerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    url: str = Field(min_length=1, max_length=2000, description="Base URL of the peer's Credence API.")
    public_key: str = Field(min_length=40, max_length=100, description="The peer's Ed25519 key (base64, 32 bytes).")
    banks: list[str] = Field(default_factory=list, description="Bank names to pull; empty pulls every shared bank.")
    trust: str = Field("review", pattern="^(trusted|review)$")


def _identity_row():
    with services().db.session() as session:
        row = identity.get_or_create(session, services().settings.instance_name)
        return {"name": row.name, "public_key": row.public_key, "algorithm": "ed25519", "feed_version": feed.FEED_VERSION,
                "feed": "/api/v1/exchange/feed"}


@bp.get("/.well-known/credence-instance")
def well_known():
    return jsonify(_identity_row())


@bp.get("/api/v1/exchange/identity")
def exchange_identity():
    return jsonify(_identity_row())


@bp.get("/api/v1/exchange/feed")
def exchange_feed():
    """Public on purpose: it carries only banks an admin chose to share."""
    since = query_int("since", 0, 0, MAX_CURSOR)
    limit = query_int("limit", 200, 1, 2**31 - 1)  # over feed.MAX_PAGE: capped, as peers expect
    version = min(query_int("v", feed.LEGACY_VERSION, 1, 2**31 - 1), feed.FEED_VERSION)  # readers ask v=2
    names = [n for n in request.args.get("banks", "").split(",") if n]
    with services().db.session() as session:
        return jsonify(feed.page(session, since, limit, names or None, version))


def _format() -> str:
    fmt = request.args.get("format", "jsonl")
    if fmt not in bank_io.FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(bank_io.FORMATS)}")
    return fmt


def _export(names: list[str] | None) -> Response:
    fmt = _format()
    with services().db.session() as session:
        if names:
            banks.get_bank(session, names[0])
        body = "".join(bank_io.export(session, fmt, names, services().settings.instance_name))
    suffix = {"jsonl": "jsonl", "te-lines": "txt", "te-csv": "csv"}[fmt]
    return Response(body, mimetype=MIME[fmt], headers={
        "Content-Disposition": f'attachment; filename="{names[0] if names else "all-banks"}.{suffix}"'})


@bp.get("/api/v1/banks/<name>/export")
@require_role("reader")
def export_bank(name: str):
    return _export([name])


@bp.get("/api/v1/export")
@require_role("reader")
def export_all():
    return _export(None)


@bp.post("/api/v1/banks/<name>/import")
@require_role("reporter")
def import_bank(name: str):
    """Body: the file (raw, or multipart field 'file'). Admins keep the file's statuses; reporters'
    imports arrive pending for review."""
    fmt = _format()
    upload = request.files.get("file")
    data = upload.read(MAX_IMPORT_BYTES + 1) if upload else request.get_data(cache=False)
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, "import file is too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the file is not UTF-8 (byte {exc.start})") from exc
    try:
        records = bank_io.parse(text, fmt)
    except bank_io.ImportRejected as exc:
        raise ApiError(400, str(exc), exc.errors[:200]) from exc
    keep = rank(current_role()) >= rank("admin")
    with services().db.session() as session:
        bank = banks.get_bank(session, name)
        result = bank_io.import_records(session, bank, records, actor=actor(), keep_status=keep)
        confirmed = [e.id for e in session.scalars(select(models.BankEntry).where(
            models.BankEntry.bank_id == bank.id, models.BankEntry.status == "confirmed"))] if result.created and keep else []
    for entry_id in confirmed:
        enqueue(enqueue_rematch, entry_id)
    return jsonify({"created": result.created, "unchanged": result.unchanged, "statuses_kept": keep})


@bp.get("/api/v1/peers")
@require_role("admin")
def list_peers():
    with services().db.session() as session:
        return jsonify({"peers": [_peer(p) for p in session.scalars(select(models.Peer).order_by(models.Peer.name))]})


def _peer(peer: models.Peer) -> dict:
    return {"id": peer.id, "name": peer.name, "url": peer.url, "public_key": peer.public_key, "banks": peer.banks,
            "trust": peer.trust, "cursor": peer.cursor, "last_error": peer.last_error,
            "instance": peer.instance, "head": peer.head,
            "last_pull_at": iso(peer.last_pull_at)}


@bp.post("/api/v1/peers")
@require_role("admin")
def add_peer():
    body = parse_json(PeerCreate)
    if len(_b64len(body.public_key)) != 32:
        raise ApiError(400, "public_key must be a base64 Ed25519 key of 32 bytes")
    with services().db.session() as session:
        if session.scalars(select(models.Peer).where(models.Peer.name == body.name)).first():
            raise ApiError(409, f"a peer named {body.name!r} exists")
        peer = models.Peer(**body.model_dump())
        session.add(peer)
        session.flush()
        banks.audit(session, actor(), "peer.add", peer.id, name=body.name, url=body.url, trust=body.trust)
        return jsonify(_peer(peer)), 201


def _b64len(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _peer_named(session, name: str) -> models.Peer:
    peer = session.scalars(select(models.Peer).where(models.Peer.name == name)).first()
    if peer is None:
        raise ApiError(404, "no such peer")
    return peer


@bp.delete("/api/v1/peers/<name>")
@require_role("admin")
def delete_peer(name: str):
    with services().db.session() as session:
        peer = _peer_named(session, name)
        banks.audit(session, actor(), "peer.delete", peer.id, name=name)
        session.delete(peer)
    return jsonify({"deleted": name})


@bp.post("/api/v1/peers/<name>/pull")
@require_role("admin")
def pull_now(name: str):
    with services().db.session() as session:
        peer_id = _peer_named(session, name).id
    enqueue(enqueue_pull_peer, peer_id)
    return jsonify({"queued": name}), 202
