"""Sign-in for desk users: a session cookie holding the user id, roles checked on every request."""
from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, session, url_for

from sqlalchemy import update

from server import models
from server.auth import rank
from server.users import authenticate
from server.limits import limiter

bp = Blueprint("auth", __name__)


def services():
    return current_app.extensions["credence"]


def load_user() -> None:
    """before_request of every desk page: the signed-in user, re-read so a deleted user is out at once."""
    g.desk_user = None
    uid = session.get("uid")
    if not uid:
        return
    with services().db.session() as db:
        user = db.get(models.User, uid)
        if user is not None:
            db.expunge(user)
    if user is None or session.get("gen", 0) != (user.session_generation or 0):
        session.clear()  # deleted, or signed out since this cookie was issued (a copy of it is dead too)
        return
    g.desk_user = user


def current_user() -> models.User | None:
    return g.get("desk_user")


def actor() -> str:
    """How desk actions are signed in the audit log, next to API keys' ``key:<name> (<id>)``. It names a
    person, so it stays in this instance: the feed and exports name the instance (feed.public_actor)."""
    user = current_user()
    return f"desk:{user.username}" if user is not None else "desk:anonymous"


def may_view_anonymously() -> bool:
    """Report pages follow the API's rule for its media report: open to anyone when anonymous checks are."""
    return current_user() is not None or services().settings.allow_anonymous


def require(role: str = "reader") -> Callable:
    """Signed in with at least ``role``; otherwise the sign-in page (or 401 JSON), or 403 for a lower role."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if request.path.startswith("/desk/api/"):
                    return {"error": "sign in first"}, 401
                return redirect(url_for("desk.auth.login", next=request.full_path.rstrip("?")))
            if rank(user.role) < rank(role):
                abort(403, f"This page needs the {role} role; you are signed in as a {user.role}.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _safe_next(target: str | None) -> str:
    """Only our own desk pages: no other host, no scheme-relative //evil."""
    default = url_for("desk.checking.home")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/desk") or target.startswith("//"):
        return default
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20/minute", methods=["POST"])
def login():
    if request.method == "GET":
        if current_user() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("desk/login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "")
    with services().db.session() as db:
        user = authenticate(db, username, request.form.get("password", ""))
        uid, generation = (user.id, user.session_generation or 0) if user else (None, 0)
    if uid is None:
        flash("Wrong user name or password.", "error")
        return render_template("desk/login.html", next=request.form.get("next", ""), username=username), 401
    session.clear()  # a fresh session (and CSRF token) at sign-in: no fixation
    session["uid"] = uid
    session["gen"] = generation
    session.permanent = True
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    """Ends the session on the server too: the user's generation moves on, so every cookie issued to
    this user before now (this one, a stolen copy, other browsers) stops working."""
    user = current_user()
    if user is not None:
        with services().db.session() as db:
            db.execute(update(models.User).where(models.User.id == user.id)
                       .values(session_generation=models.User.session_generation + 1))
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("desk.auth.login"))
