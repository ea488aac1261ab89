"""Sharing: export/import of banks, the signed exchange feed, this instance's identity, and peers.
Rules and queries are server/exchange/service.py's; here requests are read and answers written."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import enqueue, services
from server.api.request_body import parse_json, query_int
from server.auth import actor, current_role, rank, require_role
from server.banks import service as banks
from server.errors import ApiError
from server.exchange import bank_io
from server.exchange import service as exchange
from server.queue import enqueue_pull_peer

bp = Blueprint("exchange", __name__)
MAX_CURSOR = 2**63 - 1  # the largest id either database stores


class PeerCreate(BaseModel):
    """The document's shape of a new peer; server/exchange/service.py checks it in full (for the CLI too)."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=f"^{exchange.PEER_NAME}$")
    url: str = Field(min_length=1, max_length=exchange.MAX_URL, description="Base URL of the peer's Credence API.")
    public_key: str = Field(min_length=40, max_length=100, description="The peer's Ed25519 key (base64, 32 bytes).")
    banks: list[str] = Field(default_factory=list, description="Bank names to pull; empty pulls every shared bank.")
    trust: str = Field("review", pattern=f"^({'|'.join(exchange.TRUST_LEVELS)})$")
    manifests: bool = Field(True, strict=True,
                            description="Pull the peer's shared manifest records into the manifest repository.")


class PeerUpdate(BaseModel):
    """What an admin changes of a peer; both apply to what it sends next (server/exchange/service.py)."""
    model_config = ConfigDict(extra="forbid")
    trust: str | None = Field(None, pattern=f"^({'|'.join(exchange.TRUST_LEVELS)})$")
    manifests: bool | None = Field(None, strict=True, description="Pull the peer's shared manifest records from now on.")


def _identity_card():
    with services().db.session() as session:
        return jsonify(exchange.identity_card(session, services().settings.instance_name))


@bp.get("/.well-known/credence-instance")
def well_known():
    return _identity_card()


@bp.get("/api/v1/exchange/identity")
def exchange_identity():
    return _identity_card()


@bp.get(exchange.FEED_PATH)
def exchange_feed():
    """Public on purpose: it carries only banks an admin chose to share (and, with ``manifests=1``, the manifest
    repository's own records when CREDENCE_SHARE_MANIFESTS publishes them)."""
    since = query_int("since", 0, 0, MAX_CURSOR)
    limit = query_int("limit", 200, 1, 2**31 - 1)  # over feed.MAX_PAGE: capped, as peers expect
    version = query_int("v", exchange.UNASKED_PAGE_VERSION, 1, 2**31 - 1)
    manifests = query_int("manifests", 0, 0, 1)
    with services().db.session() as session:
        return jsonify(exchange.feed_page(session, since=since, limit=limit, banks_param=request.args.get("banks"),
                                          version=version, manifests=bool(manifests)))


def _export(names: list[str] | None) -> Response:
    fmt = request.args.get("format", "jsonl")
    with services().db.session() as session:
        body = "".join(exchange.export_lines(session, fmt, names, services().settings.instance_name))
    return Response(body, mimetype=bank_io.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="{names[0] if names else "all-banks"}.{bank_io.SUFFIXES[fmt]}"'})


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
    if exchange.import_body_is_multipart(request.mimetype):  # before request.files reads the body
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "a multipart import needs the file in the field 'file'")
        data = upload.read(exchange.MAX_IMPORT_BYTES + 1)
    else:
        data = request.get_data(cache=False)
    keep = rank(current_role()) >= rank("admin")
    try:
        return jsonify(exchange.import_bank(services(), name, data, request.args.get("format", "jsonl"),
                                            actor=actor(), keep_status=keep, jobs=banks.Queued(enqueue)))
    except bank_io.ImportRejected as exc:
        raise ApiError(400, str(exc), exc.errors[:200]) from exc


@bp.get("/api/v1/peers")
@require_role("admin")
def list_peers():
    with services().db.session() as session:
        return jsonify({"peers": [exchange.peer_dict(p) for p in exchange.list_peers(session)]})


@bp.post("/api/v1/peers")
@require_role("admin")
def add_peer():
    body = parse_json(PeerCreate)
    with services().db.session() as session:
        peer = exchange.add_peer(session, name=body.name, url=body.url, public_key=body.public_key,
                                 bank_names=body.banks, trust=body.trust, actor=actor(), manifests=body.manifests)
        return jsonify(exchange.peer_dict(peer)), 201


@bp.patch("/api/v1/peers/<name>")
@require_role("admin")
def update_peer(name: str):
    body = parse_json(PeerUpdate)
    with services().db.session() as session:
        peer = exchange.update_peer(session, name, trust=body.trust, manifests=body.manifests, actor=actor())
        return jsonify(exchange.peer_dict(peer))


@bp.delete("/api/v1/peers/<name>")
@require_role("admin")
def delete_peer(name: str):
    with services().db.session() as session:
        exchange.remove_peer(session, name, actor=actor())
    return jsonify({"deleted": name})


@bp.post("/api/v1/peers/<name>/pull")
@require_role("admin")
def pull_now(name: str):
    with services().db.session() as session:
        peer_id = exchange.get_peer(session, name).id
    enqueue(enqueue_pull_peer, peer_id)
    return jsonify({"queued": name}), 202
