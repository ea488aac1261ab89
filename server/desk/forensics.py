"""The report page's tools: ask a worker for an image's forensic views and follow them until they are made.

POST /desk/media/<sha256>/forensics asks (once at a time per image); GET /desk/api/forensics/<sha256> answers
the views' state and, once made, their panel as HTML rendered here (the page's script only inserts it).
Without JavaScript the form posts and the report shows the views once they are made.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from server.checks import forensics
from server.desk import tools
from server.desk.auth import current_user, require, services
from server.errors import ApiError

bp = Blueprint("forensics", __name__)


@bp.app_template_global()
def report_tools(report: dict[str, Any]) -> dict[str, Any] | None:
    """The Tools section's content for desk/tools.html (search links, keyframes, whether views can be asked)."""
    return tools.report_tools(report, signed_in=current_user() is not None)


@bp.app_template_global()
def forensic_views(sha256: str) -> dict[str, Any]:
    """The views already made for the report page (rendered without JavaScript too); an image they cannot be
    made for says why instead of failing the page."""
    try:
        return forensics.views_of(services(), sha256)
    except ApiError as exc:
        return {"state": "refused", "reason": exc.message}


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch" or request.accept_mimetypes.best == "application/json"


@bp.post("/media/<sha256>/forensics")
@require("reader")
def ask(sha256: str):
    state = forensics.request_views(services(), sha256.lower())
    if _wants_json():
        return jsonify({"state": state}), 202 if state == "pending" else 200
    if state == "pending":
        flash("The forensic views are being made; they appear here in a few seconds (reload the page).", "info")
    return redirect(url_for("desk.report.media", sha256=sha256.lower(), _anchor="forensics"))


@bp.get("/api/forensics/<sha256>")
@require("reader")
def state(sha256: str):
    views = forensics.views_of(services(), sha256.lower())
    out: dict[str, Any] = {"state": views["state"]}
    if views["state"] != "none":
        out["html"] = render_template("desk/forensics_views.html", views=views)
    return jsonify(out)
