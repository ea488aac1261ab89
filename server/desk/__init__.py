"""The newsroom desk: server-rendered pages under /desk for fact-checkers and reviewers.

One parent blueprint (``desk``) owns what every page shares: the signed-in user, CSRF checks on
every POST, security headers, HTML error pages, templates and static files. One child blueprint
per concern: ``auth`` (sign-in), ``checking`` (run checks, live progress), ``report`` (report page,
exports, images), ``forensics`` (the report's tools: forensic views on demand), ``history`` (past checks,
search by image) and ``curation`` (review queue).

The API under /api/v1 is untouched: it keeps its keys, JSON errors and CORS; the desk's session
cookie is scoped to /desk so API calls never carry it.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, request

from server.config import Settings
from server.desk import auth, checking, curation, forensics, history, report
from server.desk.base import bp, csrf, secret_key

# One child blueprint per concern, nested once at import (apps are made many times in tests).
for _child in (auth.bp, checking.bp, report.bp, forensics.bp, history.bp, curation.bp):
    bp.register_blueprint(_child)


def init_app(app: Flask) -> None:
    """Configure sessions, CSRF and the desk blueprints on the app made by server.app.create_app."""
    settings: Settings = app.extensions["credence"].settings
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="credence_desk",
        SESSION_COOKIE_PATH="/desk",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.desk_secure_cookie,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_CHECK_DEFAULT=False,  # only the desk's forms are checked; the API uses keys, not cookies
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    csrf.init_app(app)
    app.register_blueprint(bp)

    @app.after_request
    def _api_headers(response):
        if not request.path.startswith("/desk"):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
