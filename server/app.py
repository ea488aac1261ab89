"""Flask app factory: configuration, services, security layers and blueprints in one place."""
from __future__ import annotations

import re
import time

from typing import Any

from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from server import desk, errors, json_edge
from server.api import banks, checks, exchange, health, keys, lookup, media, openapi, soft_binding
from server.api.request_body import allow_upload
from server.auth import load_principal
from server.config import Settings, get_settings
from server.limits import limiter
from server.metrics import REQUEST_LATENCY
from server.services import Services

# Views that take an uploaded file: their body may be as large as a video (server/checks/uploads.py), the rest keep
# MAX_CONTENT_LENGTH. The desk's limit must be the API's, or the desk refuses a video the API accepts.
UPLOAD_ENDPOINTS = frozenset({"checks.upload_check", "desk.checking.start"})
EXTENSION_ORIGINS = [re.compile(r"^chrome-extension://[a-p]{32}$"), re.compile(r"^moz-extension://[0-9a-f-]{36}$")]


class EdgeJSONProvider(DefaultJSONProvider):
    """Every JSON body this app parses is checked for unstorable text and depth (server/json_edge.py)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_edge.loads(s)


def check_query() -> None:
    """Query parameters are text from outside too: checked once here, for the API and the desk."""
    for key, value in request.args.items(multi=True):
        json_edge.check_text(key, "a query parameter name")
        json_edge.check_text(value, f"query parameter {key!r}")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask("credence")
    app.config["MAX_CONTENT_LENGTH"] = settings.fetch_max_bytes + 64 * 1024
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # Redis down must not take checks down
    app.json = EdgeJSONProvider(app)
    app.json.sort_keys = False
    app.extensions["credence"] = Services(settings)
    if settings.trusted_proxies:
        # Behind nginx (docker-compose.yml) every socket is the proxy's: the client is its X-Forwarded-For hop.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)

    extra = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    CORS(app, resources={r"/api/*": {"origins": EXTENSION_ORIGINS + extra}},
         allow_headers=["Content-Type", "Authorization", "X-API-Key"], max_age=3600)
    limiter.init_app(app)
    errors.register(app)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        if request.endpoint in UPLOAD_ENDPOINTS:  # before anything reads the form (the desk's CSRF check does)
            allow_upload(settings)
        check_query()
        if request.path.startswith("/api/"):
            load_principal()

    @app.after_request
    def _observe(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_LATENCY.labels(endpoint, request.method, str(response.status_code)).observe(
            time.perf_counter() - g.get("started", time.perf_counter()))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    for blueprint in (checks.bp, lookup.bp, media.bp, banks.bp, exchange.bp, keys.bp, openapi.bp, health.bp,
                      soft_binding.bp):  # the last: C2PA's Soft Binding Resolution API, its own specification's paths
        app.register_blueprint(blueprint)
    desk.init_app(app)  # the newsroom desk pages under /desk (server/desk/)
    return app
