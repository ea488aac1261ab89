"""Checks: batch of URLs from the extension, file uploads from the desk, status polling."""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_limiter.util import get_remote_address

from server.checks import records
from server.api.deps import enqueue, services
from server.api.request_body import allow_upload, form_float, parse_json, read_file
from server.auth import require_role
from server.errors import ApiError
from server.limits import limit_anonymous
from server.metrics import CACHE_HITS, CACHE_MISSES, CHECKS_CREATED
from server.models import new_id
from server.queue import enqueue_fetch
from server.checks.quotas import QuotaExceeded, charge_upload
from server.schemas import ChecksRequest
from server.checks.uploads import start_upload_check
from server.checks.urls import BadUrl, normalise, url_key

bp = Blueprint("checks", __name__, url_prefix="/api/v1")
POLL_INTERVAL_S = 0.1
MAX_IDS = 100


def _result(url: str | None, status: str, check_id: str | None, verdict: dict[str, Any] | str | None) -> dict[str, Any]:
    """``verdict`` may be JSON text straight from the cache: it is spliced in, not re-parsed."""
    return {"url": url, "status": status, "check_id": check_id, "verdict": verdict}


def render_results(results: list[dict[str, Any]]) -> Response:
    """``{"results": [...]}`` with cached verdict text spliced in as is."""
    parts = []
    for r in results:
        verdict = r["verdict"] if isinstance(r["verdict"], str) else json.dumps(r["verdict"])
        extra = f',"sha256":"{r["sha256"]}"' if "sha256" in r else ""
        parts.append(f'{{"url":{json.dumps(r["url"])},"status":"{r["status"]}",'
                     f'"check_id":{json.dumps(r["check_id"])},"verdict":{verdict}{extra}}}')
    return Response('{"results":[' + ",".join(parts) + "]}", mimetype="application/json")


def _pending_check_for(url: str, key: str) -> tuple[str, bool]:
    """The check id fetching this URL: an in-flight one if any, else a new one. Returns (id, created)."""
    svc = services()
    candidate = new_id()
    holder = svc.cache.claim(f"inflight:{key}", candidate, ttl_s=svc.settings.stale_check_s)
    with svc.db.session() as session:
        if holder is not None:
            existing = session.get(records.models.Check, holder)
            if existing is not None and existing.status == "pending":
                return existing.id, False
        existing = records.pending_check_for_url(session, key, svc.settings.stale_check_s)
        if existing is not None:
            return existing.id, False
        session.add(records.models.Check(id=candidate, source="url", url=url, url_hash=key, status="pending"))
    if holder is not None:  # the old holder finished; take the lock over for this check
        svc.cache.release(f"inflight:{key}")
        svc.cache.claim(f"inflight:{key}", candidate, ttl_s=svc.settings.stale_check_s)
    return candidate, True


def _long_poll(results: list[dict[str, Any]], wait_s: float) -> None:
    """Fill in verdicts that finish within ``wait_s``; the database is the source of truth."""
    deadline = time.monotonic() + wait_s
    while True:
        waiting = {r["check_id"]: r for r in results if r["status"] == "pending"}
        if not waiting:
            return
        with services().db.session() as session:
            found = records.checks_by_id(session, list(waiting))
        for check_id, (check, body) in found.items():
            if check.status == "done" and body is not None:
                waiting[check_id].update(status="done", verdict=body)
        if time.monotonic() + POLL_INTERVAL_S > deadline:
            return
        time.sleep(POLL_INTERVAL_S)


@bp.post("/checks")
@limit_anonymous
@require_role(None)
def create_checks():
    svc = services()
    body = parse_json(ChecksRequest)
    if len(body.urls) > svc.settings.max_urls_per_request:
        raise ApiError(400, f"at most {svc.settings.max_urls_per_request} URLs per request, got {len(body.urls)}")
    normalised, errors = [], []
    for index, raw in enumerate(body.urls):
        try:
            normalised.append(normalise(raw))
        except BadUrl as exc:
            errors.append({"index": index, "url": str(raw)[:200], "error": str(exc)})
    if errors:
        raise ApiError(400, "some URLs cannot be checked", errors)

    results: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    keys = {url: url_key(url) for url in normalised}
    cached = svc.cache.by_urls(list(dict.fromkeys(keys.values())))
    for url in normalised:
        if url in seen:
            results.append(seen[url])
            continue
        key = keys[url]
        verdict = cached.get(key)
        if verdict is not None:
            result = _result(url, "done", None, verdict)
        else:
            check_id, created = _pending_check_for(url, key)
            if created:
                CHECKS_CREATED.labels("url").inc()
                enqueue(enqueue_fetch, check_id)
            result = _result(url, "pending", check_id, None)
        seen[url] = result
        results.append(result)
    hits = sum(1 for r in seen.values() if r["status"] == "done")
    CACHE_HITS.inc(hits)
    CACHE_MISSES.inc(len(seen) - hits)
    if body.wait > 0:
        _long_poll(results, min(body.wait, svc.settings.max_wait_s))
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
    check_id, verdict = start_upload_check(svc, data)
    if verdict is not None:
        return render_results([_result(None, "done", check_id, verdict)])
    results = [_result(None, "pending", check_id, None)]
    wait = form_float("wait", 0.0, 0.0, 3600.0)
    if wait > 0:
        _long_poll(results, min(wait, svc.settings.max_wait_s))
    return render_results(results)


def _status(ids: list[str]) -> list[dict[str, Any]]:
    with services().db.session() as session:
        found = records.checks_by_id(session, ids)
    out = []
    for check_id in ids:
        if check_id not in found:
            out.append({"check_id": check_id, "status": "unknown", "url": None, "verdict": None})
            continue
        check, body = found[check_id]
        out.append(_result(check.url, check.status, check_id, body))
    return out


@bp.get("/checks/<check_id>")
@require_role(None)
def get_check(check_id: str):
    result = _status([check_id])[0]
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
    return render_results(_status(ids))
