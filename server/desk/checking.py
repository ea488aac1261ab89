"""Check: drop files or paste URLs, then watch each check's stages until its verdict is in.

With JavaScript the page posts to /desk/checks and polls /desk/api/checks (a small JSON view of the
record and of the workers' progress events, server/checks/progress.py); without it, the same form posts
and lands on a page that refreshes itself.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from server.checks import records
from server.desk import service
from server.desk.auth import current_user, may_view_anonymously, require, services
from server.errors import ApiError
from server.checks.quotas import QuotaExceeded, charge_upload
from server.checks.uploads import UploadTooLarge, read_upload

bp = Blueprint("checking", __name__)
MAX_FILES = 20
MAX_IDS = 100


@bp.get("/")
@require("reader")
def home():
    return render_template("desk/check.html", max_urls=services().settings.max_urls_per_request, max_files=MAX_FILES)


@bp.post("/checks")
@require("reader")
def start():
    svc = services()
    user = current_user()
    files = [f for f in request.files.getlist("files") if f and f.filename]
    urls, errors = service.parse_urls(request.form.get("urls", ""))
    if len(files) > MAX_FILES:
        raise ApiError(400, f"at most {MAX_FILES} files at once")
    if len(urls) > svc.settings.max_urls_per_request:
        raise ApiError(400, f"at most {svc.settings.max_urls_per_request} URLs at once")
    if not files and not urls and not errors:
        raise ApiError(400, "choose a file or paste at least one URL")
    started = []
    for upload in files:
        try:  # the cap the file's own bytes call for: a video may be larger than an image
            data = read_upload(upload.stream, svc.settings)
        except UploadTooLarge as exc:
            errors.append({"url": upload.filename, "error": str(exc)})
            continue
        if not data:
            errors.append({"url": upload.filename, "error": "the file is empty"})
            continue
        try:  # a desk user counts as a keyed client (server/checks/quotas.py)
            charge_upload(svc.settings, f"user:{user.id}", True, len(data))
        except QuotaExceeded as exc:
            errors.append({"url": upload.filename, "error": str(exc)})
            continue
        started.append(service.start_upload(svc, data, upload.filename, user.id))
    started.extend(service.start_url(svc, url, user.id) for url in urls)
    if request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With") == "fetch":
        with svc.db.session() as session:
            return jsonify({"checks": service.statuses(session, started, svc.progress), "errors": errors})
    if len(started) == 1 and not errors:
        return redirect(url_for("desk.checking.check_page", check_id=started[0]))
    with svc.db.session() as session:
        rows = service.statuses(session, started, svc.progress)
    return render_template("desk/checks_started.html", checks=rows, errors=errors)


@bp.get("/api/checks")
@require("reader")
def status():
    ids = [part for part in request.args.get("ids", "").split(",") if part][:MAX_IDS]
    if not ids:
        raise ApiError(400, "pass ?ids=<id>,<id>,...")
    svc = services()
    with svc.db.session() as session:
        return jsonify({"checks": service.statuses(session, ids, svc.progress)})


@bp.get("/checks/<check_id>")
def check_page(check_id: str):
    """One check: its report once done (the permalink is the content's), else its progress."""
    if not may_view_anonymously():
        return redirect(url_for("desk.auth.login", next=request.path))
    svc = services()
    with svc.db.session() as session:
        found = records.checks_by_id(session, [check_id])
        if check_id not in found:
            raise ApiError(404, "no such check")
        (row,) = service.statuses(session, [check_id], svc.progress)
    if row["report_url"]:
        return redirect(row["report_url"])
    return render_template("desk/check_status.html", check=row)
