"""Checks: batch of URLs from the extension, file uploads, status polling (rules: server/checks/service.py)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_limiter.util import get_remote_address

from server.api.deps import services
from server.api.request_body import allow_upload, form_float, parse_json, query_float, read_file
from server.auth import require_role
from server.checks import service
from server.checks.quotas import QuotaExceeded, charge_upload
from server.errors import ApiError
from server.limits import limit_anonymous
from server.schemas import ChecksRequest

bp = Blueprint("checks", __name__, url_prefix="/api/v1")
MAX_IDS = 100
CHECK_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # ours are 32 hex characters; anything else is a typo or an attack


def render_result(r: dict[str, Any]) -> str:
    """One result as JSON text, with cached verdict text spliced in as is, not re-parsed."""
    verdict = r["verdict"] if isinstance(r["verdict"], str) else json.dumps(r["verdict"])
    extra = f',"sha256":"{r["sha256"]}"' if "sha256" in r else ""
    return (f'{{"url":{json.dumps(r["url"])},"status":"{r["status"]}",'
            f'"check_id":{json.dumps(r["check_id"])},"verdict":{verdict}{extra}}}')


def render_results(results: list[dict[str, Any]]) -> Response:
    """``{"results": [...]}``, each as ``render_result`` writes it."""
    return Response('{"results":[' + ",".join(render_result(r) for r in results) + "]}", mimetype="application/json")


def sse(event: str, data: str) -> str:
    """One server-sent event; a line break in the data becomes another ``data:`` line, as the format asks."""
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


@bp.post("/checks")
@limit_anonymous
@require_role(None)
def create_checks():
    svc = services()
    body = parse_json(ChecksRequest)
    if len(body.urls) > svc.settings.max_urls_per_request:
        raise ApiError(400, f"at most {svc.settings.max_urls_per_request} URLs per request, got {len(body.urls)}")
    normalised, errors = service.normalise_all(body.urls)
    if errors:
        raise ApiError(400, "some URLs cannot be checked", errors)
    results = service.check_urls(svc, normalised)
    if body.wait > 0:
        service.wait(svc, results, body.wait)
    return render_results(results)


@bp.post("/checks/upload")
@limit_anonymous
@require_role(None)
def upload_check():
    svc = services()
    allow_upload(svc.settings)
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "send the file as multipart/form-data in a field named 'file'")
    data = read_file(upload.stream, svc.settings)
    if not data:
        raise ApiError(400, "the uploaded file is empty")
    key = g.get("api_key")
    try:  # bytes, not requests: charged before anything is stored
        charge_upload(svc.settings, f"key:{key.id}" if key is not None else f"addr:{get_remote_address()}",
                      key is not None, len(data))
    except QuotaExceeded as exc:
        raise ApiError(429, str(exc)) from exc
    check_id, verdict = service.check_upload(svc, data)
    if verdict is not None:
        return render_results([service.result(None, "done", check_id, verdict)])
    results = [service.result(None, "pending", check_id, None)]
    wait = form_float("wait", 0.0, 0.0, 3600.0)
    if wait > 0:
        service.wait(svc, results, wait)
    return render_results(results)


@bp.get("/checks/events")
@require_role(None)
def check_events():
    """The checks' verdicts pushed as each is done (text/event-stream): one request for a page's pending
    checks instead of a long poll per finished one. Rules: server/checks/service.py ``events``."""
    ids = list(dict.fromkeys(part for part in request.args.get("ids", "").split(",") if part))
    if not ids:
        raise ApiError(400, "pass ?ids=<id>,<id>,...")
    if len(ids) > service.MAX_STREAM_IDS:
        raise ApiError(400, f"at most {service.MAX_STREAM_IDS} ids per stream")
    bad = [check_id[:80] for check_id in ids if not CHECK_ID.fullmatch(check_id)]
    if bad:
        raise ApiError(400, "check ids are 1 to 64 letters, digits, '-' or '_'", bad[:10])
    stream = service.events(services(), ids)

    def render() -> Iterator[str]:
        yield ": stream open\n\n"  # headers and a first byte now: the client knows the server streams
        for kind, value in stream:
            if kind == "result":
                yield sse("result", render_result(value))
            elif kind == "heartbeat":
                yield ": heartbeat\n\n"
            else:  # done, or timeout with the ids still pending (the client opens a new stream for those)
                yield sse(kind, json.dumps({"pending": value}))

    return Response(render(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/checks/<check_id>")
@require_role(None)
def get_check(check_id: str):
    result = service.statuses(services(), [check_id])[0]
    if result["status"] == "unknown":
        raise ApiError(404, "no such check")
    return jsonify(result)


@bp.get("/checks")
@require_role(None)
def get_checks():
    ids = [part for part in request.args.get("ids", "").split(",") if part]
    if not ids:
        raise ApiError(400, "pass ?ids=<id>,<id>,...")
    if len(ids) > MAX_IDS:
        raise ApiError(400, f"at most {MAX_IDS} ids per request")
    wait = query_float("wait", 0.0, 0.0, 3600.0)
    results = service.statuses(services(), ids)
    if wait > 0 and not any(r["status"] == "done" for r in results):  # a long poll: answers once any is done
        service.wait(services(), results, wait, until_any=True)
    return render_results(results)
