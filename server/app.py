"""Flask app factory: configuration, services, security layers and blueprints in one place."""
from __future__ import annotations

import re
import time

from flask import Flask, g, request
from flask_cors import CORS

from server import desk, errors
from server.api import banks, checks, exchange, health, keys, lookup, media, openapi
from server.auth import load_principal
from server.config import Settings, get_settings
from server.limits import limiter
from server.metrics import REQUEST_LATENCY
from server.services import Services

EXTENSION_ORIGINS = [re.compile(r"^chrome-extension://[a-p]{32}$"), re.compile(r"^moz-extension://[0-9a-f-]{36}$")]


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask("credence")
    app.config["MAX_CONTENT_LENGTH"] = settings.fetch_max_bytes + 64 * 1024
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # Redis down must not take checks down
    app.json.sort_keys = False
    app.extensions["credence"] = Services(settings)

    extra = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    CORS(app, resources={r"/api/*": {"origins": EXTENSION_ORIGINS + extra}},
         allow_headers=["Content-Type", "Authorization", "X-API-Key"], max_age=3600)
    limiter.init_app(app)
    errors.register(app)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        if request.path.startswith("/api/"):
            load_principal()

    @app.after_request
    def _observe(response):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_LATENCY.labels(endpoint, request.method, str(response.status_code)).observe(
            time.perf_counter() - g.get("started", time.perf_counter()))
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    for blueprint in (checks.bp, lookup.bp, media.bp, banks.bp, exchange.bp, keys.bp, openapi.bp, health.bp):
        app.register_blueprint(blueprint)
    desk.init_app(app)  # the newsroom desk pages under /desk (server/desk/)
    return app
