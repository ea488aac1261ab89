"""Liveness, readiness (database and broker reachable) and Prometheus metrics."""
from __future__ import annotations

import os

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from server.api.deps import services
from server.media_store import NEAR_BUDGET
from server.metrics import summed

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    svc = services()
    checks: dict[str, str] = {}
    try:
        with svc.db.session() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        with svc.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"error: {type(exc).__name__}"
    if svc.settings.redis_url:
        checks["cache"] = "ok" if svc.cache.ping() else "error: unreachable (serving from the database)"
    store = _media_store_check(svc)
    if store is not None:
        checks["media_store"] = store
    ready = checks["database"] == "ok" and checks["broker"] == "ok"
    return jsonify({"status": "ready" if ready else "not-ready", "checks": checks}), 200 if ready else 503


def _media_store_check(svc) -> str | None:
    """How full the media store is against its budget, from the beat task's last measurement (walking
    the store here would cost a probe seconds). Near the budget it warns; readiness stays as it is, since
    checks are still answered, but an operator must add room or lower the quotas."""
    budget = int(svc.settings.media_store_max_bytes)
    if not budget:
        return None
    usage = svc.store.usage()
    if usage is None:  # before the beat task's first pass there is nothing to say
        return None
    share = int(usage["bytes"]) / budget
    text = f"{share:.0%} of its {budget:,}-byte budget ({int(usage['bytes']):,} bytes)"
    return f"warning: near its budget, {text}" if share >= NEAR_BUDGET else f"ok: {text}"


@bp.get("/metrics")
def metrics():
    own_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # gunicorn's processes (server/gunicorn_conf.py)
    body = summed(own_dir) if own_dir else generate_latest()
    worker_dir = current_app.config.get("CREDENCE_WORKER_METRICS_DIR")
    if worker_dir:  # `credence serve`: the bundled worker's metrics too
        body += summed(worker_dir)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
