"""Lookup by SHA-256 for privacy mode: the browser hashes the bytes, no URL ever leaves it."""
from __future__ import annotations

from flask import Blueprint

from server.api.checks import render_results
from server.api.deps import services
from server.api.request_body import parse_json
from server.auth import require_role
from server.limits import limit_anonymous
from server.errors import ApiError
from server.media_store import is_sha256
from server.schemas import LookupRequest

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")


@bp.post("/lookup")
@limit_anonymous
@require_role(None)
def lookup():
    body = parse_json(LookupRequest)
    digests = [d.lower() for d in body.sha256]
    bad = [d for d in digests if not is_sha256(d)]
    if bad:
        raise ApiError(400, "expected SHA-256 digests as 64 hex characters", bad[:10])
    known = services().cache.by_shas(list(dict.fromkeys(digests)))
    results = []
    for digest in digests:
        verdict = known.get(digest)
        results.append({"url": None, "status": "done" if verdict else "unknown", "check_id": None,
                        "verdict": verdict, "sha256": digest})
    return render_results(results)
