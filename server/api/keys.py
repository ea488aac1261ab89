"""API key management (admin only); the same service (server/auth.py) backs ``credence keys``."""
from __future__ import annotations

from flask import Blueprint, jsonify

from server.api.deps import services
from server.api.request_body import parse_json
from server.auth import actor, create_key, key_info, list_keys, require_role, revoke_key
from server.errors import ApiError
from server.schemas import KeyCreateRequest

bp = Blueprint("keys", __name__, url_prefix="/api/v1")


@bp.post("/keys")
@require_role("admin")
def create():
    body = parse_json(KeyCreateRequest)
    key, row = create_key(services().db, role=body.role, name=body.name, actor=actor())
    return jsonify({**key_info(row), "key": key}), 201


@bp.get("/keys")
@require_role("admin")
def list_all():
    return jsonify({"keys": list_keys(services().db)})


@bp.delete("/keys/<key_id>")
@require_role("admin")
def revoke(key_id: str):
    info = revoke_key(services().db, key_id, actor=actor())
    if info is None:
        raise ApiError(404, "no such key")
    return jsonify(info)
