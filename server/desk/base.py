"""The desk's parent blueprint: what every page shares (the signed-in user, CSRF checks on every POST,
security headers, HTML error pages, template helpers)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Blueprint, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from server import json_edge
from server.auth import rank
from server.desk.auth import load_user
from server.desk.wording import signed_at
from server.config import Settings
from server.errors import ApiError
from server.checks.uploads import upload_too_large
from server.verdicts import BADGES, Level

csrf = CSRFProtect()
bp = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates", static_folder="static")

# No inline script or style anywhere: every script and stylesheet is a file under /desk/static.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
DESK_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SECRET_FILE = "desk-secret-key"


def secret_key(settings: Settings) -> str:
    """The configured key, else one made once and kept in the data dir (0600), race-free across processes."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.resolved_data_dir / SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first process to get here wins, the others read its key
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path.read_text().strip()


@bp.before_request
def _desk_before() -> None:
    if request.endpoint == "desk.static":
        return
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
        check_form()
    load_user()


def check_form() -> None:
    """Form fields are checked like API bodies (server/json_edge.py): a NUL cannot be stored in
    PostgreSQL, and nothing unstorable may reach a label or a note."""
    for key, value in request.form.items(multi=True):
        json_edge.check_text(key, "a form field name")
        json_edge.check_text(value, f"form field {key!r}")


@bp.after_request
def _desk_headers(response):
    for key, value in DESK_HEADERS.items():
        response.headers.setdefault(key, value)
    if request.endpoint != "desk.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return request.path.startswith("/desk/api/") or best == "application/json"


def _error_page(status: int, title: str, message: str, problems: list[str] | None = None):
    if _wants_json():
        return ({"error": message, "problems": problems} if problems else {"error": message}), status
    return render_template("desk/error.html", status=status, title=title, message=message,
                           problems=problems or []), status


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):
    return _error_page(400, "This form has expired",
                       "The page was open too long or came from elsewhere. Go back, reload it and try again.")


@bp.errorhandler(json_edge.UnsafeText)
def _unsafe_text(exc: json_edge.UnsafeText):
    return _error_page(400, "That did not work", str(exc))


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return _error_page(exc.status, "That did not work", exc.message, exc.problems())


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    titles = {403: "Not allowed", 404: "Not found", 413: "Too large", 429: "Slow down"}
    if exc.code == 413:  # what the limit is, not werkzeug's generic text
        return _error_page(413, titles[413], upload_too_large(current_app.extensions["credence"].settings))
    return _error_page(exc.code or 500, titles.get(exc.code or 0, exc.name), exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    current_app.logger.exception("desk error")
    return _error_page(500, "Something went wrong", "The error was logged. Try again, or tell your administrator.")


@bp.app_template_filter("when")
def _when(value) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        return value.replace("T", " ")[:19] + " UTC"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_global()
def level_badge(level: str | None) -> str:
    try:
        return BADGES[Level(level)][0]
    except ValueError:
        return "none"


@bp.app_template_global()
def level_label(level: str | None) -> str:
    try:
        return BADGES[Level(level)][1]
    except ValueError:
        return level or "pending"


bp.add_app_template_global(signed_at)


@bp.app_context_processor
def _context() -> dict:
    user = g.get("desk_user")
    return {"desk_user": user, "can": lambda role: user is not None and rank(user.role) >= rank(role)}
