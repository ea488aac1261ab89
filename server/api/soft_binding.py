"""The C2PA Soft Binding Resolution API (server/provenance/resolution.py; docs/repository.md): parse, call, render.

Reads are public where the deployment allows anonymous use (``CREDENCE_ALLOW_ANONYMOUS``), else they need a key;
nothing here writes: manifests enter the repository only through the pipeline.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request

from server.api.deps import services
from server.auth import require_role
from server.errors import ApiError
from server.limits import limit_anonymous
from server.provenance import resolution
from server.provenance.resolution import API_PATH, ResolutionError

bp = Blueprint("soft_binding", __name__)
T = TypeVar("T")


def _answer(call: Callable[..., T], *args: Any) -> T:
    """The service's answer in a session of its own; its refusals as the specification's status codes."""
    try:
        with services().db.session() as session:
            return call(session, *args)
    except ResolutionError as exc:
        raise ApiError(exc.status, exc.message) from exc


def _count() -> int:
    try:
        return resolution.results(request.args.get("maxResults"))
    except ResolutionError as exc:
        raise ApiError(exc.status, exc.message) from exc


@bp.get("/.well-known/c2pa-soft-binding-resolution")
def well_known() -> Response:
    return jsonify(resolution.well_known(request.host_url))


@bp.get(f"{API_PATH}/services/supportedAlgorithms")
@limit_anonymous
@require_role(None)
def supported_algorithms() -> Response:
    return jsonify(_answer(resolution.supported_algorithms))


@bp.get(f"{API_PATH}/services/capabilities")
def capabilities() -> Response:
    return jsonify(resolution.capabilities())


@bp.get(f"{API_PATH}/services/status")
def status() -> Response:
    return jsonify({"status": "ok", "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})


@bp.get(f"{API_PATH}/matches/byBinding")
@limit_anonymous
@require_role(None)
def by_binding() -> Response:
    value = request.args.get("value", "")
    if len(value) > resolution.MAX_VALUE_CHARS:
        raise ApiError(414, "query too long, use POST")
    count = _count()
    return jsonify(_answer(resolution.matches_by_binding, request.args.get("alg", ""), value, count,
                           services().settings))


@bp.post(f"{API_PATH}/matches/byBinding")
@limit_anonymous
@require_role(None)
def by_large_binding() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("alg"), str) or not isinstance(body.get("value"), str):
        raise ApiError(400, "the body must be a JSON object with alg and value strings")
    count = _count()
    return jsonify(_answer(resolution.matches_by_binding, body["alg"], body["value"], count, services().settings))


@bp.post(f"{API_PATH}/matches/byContent")
@limit_anonymous
@require_role(None)
def by_content() -> Response:
    if not (request.mimetype or "").startswith(("image/", "video/")):
        raise ApiError(415, "send an image (image/*) or a video (video/*) as the request body")
    _count()
    return jsonify(_answer(resolution.matches_by_content, request.get_data(cache=False), services().settings))


@bp.post(f"{API_PATH}/matches/byReference")
@limit_anonymous
@require_role(None)
def by_reference() -> Response:
    count = _count()
    try:
        ref = resolution.reference(request.get_json(silent=True))
        return jsonify(resolution.matches_by_reference(services(), ref, count, services().settings.max_wait_s))
    except ResolutionError as exc:
        if exc.retry_after is None:
            raise ApiError(exc.status, exc.message) from exc
        response = jsonify({"error": exc.message})
        response.status_code, response.headers["Retry-After"] = exc.status, str(exc.retry_after)
        return response


@bp.get(f"{API_PATH}/manifests/<path:manifest_id>")
@limit_anonymous
@require_role(None)
def manifest(manifest_id: str) -> Response:
    store = _answer(resolution.manifest, manifest_id)
    return Response(store.data, mimetype="application/c2pa")
