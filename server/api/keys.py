"""API key management (admin only); keys are also made with ``credence keys create``."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from server import models
from server.api.deps import services
from server.api.request_body import parse_json
from server.auth import actor, create_key, require_role
from server.errors import ApiError
from server.schemas import KeyCreateRequest
from server.schemas import iso

bp = Blueprint("keys", __name__, url_prefix="/api/v1")


def _info(row: models.ApiKey) -> dict:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "role": row.role,
            "created_at": iso(row.created_at),
            "revoked_at": iso(row.revoked_at)}


@bp.post("/keys")
@require_role("admin")
def create():
    body = parse_json(KeyCreateRequest)
    key, row = create_key(services().db, role=body.role, name=body.name, actor=actor())
    return jsonify({**_info(row), "key": key}), 201


@bp.get("/keys")
@require_role("admin")
def list_keys():
    with services().db.session() as session:
        rows = session.scalars(select(models.ApiKey).order_by(models.ApiKey.created_at)).all()
        return jsonify({"keys": [_info(r) for r in rows]})


@bp.delete("/keys/<key_id>")
@require_role("admin")
def revoke(key_id: str):
    with services().db.session() as session:
        row = session.get(models.ApiKey, key_id)
        if row is None:
            raise ApiError(404, "no such key")
        if row.revoked_at is None:
            row.revoked_at = models.utcnow()
            session.add(models.AuditLog(actor=actor(), action="key.revoke", target=row.id, details={}))
        return jsonify(_info(row))
