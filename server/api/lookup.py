"""Lookup by SHA-256 for privacy mode: the browser hashes the bytes, no URL ever leaves it."""
from __future__ import annotations

from flask import Blueprint

from server.api.checks import render_results
from server.api.deps import services
from server.api.request_body import parse_json
from server.auth import require_role
from server.checks import service
from server.limits import limit_anonymous
from server.errors import ApiError
from server.schemas import LookupRequest

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")


@bp.post("/lookup")
@limit_anonymous
@require_role(None)
def lookup():
    body = parse_json(LookupRequest)
    try:
        return render_results(service.lookup(services(), body.sha256))
    except service.BadDigests as exc:
        raise ApiError(400, str(exc), exc.digests) from exc
