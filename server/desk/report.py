"""The report page of one content (permalink ``/desk/media/<sha256>``), its exports and its images."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for

from server.banks import service as banks
from server.api.deps import enqueue
from server.desk import service
from server.detection import heatmaps
from server.desk.auth import actor, current_user, may_view_anonymously, require, services
from server.errors import ApiError
from server.media_store import is_sha256
from server.media_types import IMAGE_TYPES, sniff
from server.schemas import EntrySubmit, parse

bp = Blueprint("report", __name__)


def _sha(sha256: str) -> str:
    sha256 = sha256.lower()
    if not is_sha256(sha256):
        raise ApiError(404, "a report address ends in the content's SHA-256 (64 hex characters)")
    return sha256


def _report(sha256: str) -> dict:
    svc = services()
    with svc.db.session() as session:
        report = service.build_report(session, svc, sha256, signed_in=current_user() is not None)
    if report is None:
        raise ApiError(404, "this instance has not checked any media with this SHA-256")
    return report


def _permalink(sha256: str) -> str:
    return url_for("desk.report.media", sha256=sha256, _external=True)


@bp.get("/media/<sha256>")
def media(sha256: str):
    sha256 = _sha(sha256)
    if not may_view_anonymously():
        return redirect(url_for("desk.auth.login", next=request.path))
    report = _report(sha256)
    bank_names = []
    if current_user() is not None:
        with services().db.session() as session:
            bank_names = banks.bank_names(session)
        if report["heatmap"]["state"] == heatmaps.PENDING:  # a person is looking: the heat map is worth its cost
            asked = heatmaps.request(services(), sha256)
            if asked not in (heatmaps.READY, heatmaps.PENDING):
                report["heatmap"] = {"state": heatmaps.FAILED, "reason": asked}
    return render_template("desk/report.html", r=report, permalink=_permalink(sha256), bank_names=bank_names)


@bp.get("/media/<sha256>/export.json")
@require("reader")
def export_json(sha256: str):
    sha256 = _sha(sha256)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    response = jsonify(service.export_json(_report(sha256), _permalink(sha256), now))
    response.headers["Content-Disposition"] = f'attachment; filename="credence-{sha256[:16]}.json"'
    return response


@bp.get("/media/<sha256>/export.pdf")
@require("reader")
def export_pdf(sha256: str):
    """A4 unless asked for US Letter (?paper=letter): what a newsroom prints on differs by country."""
    from server.desk.pdf import PAPERS, render_pdf  # fpdf2 only loads when someone asks for a PDF

    sha256 = _sha(sha256)
    paper = request.args.get("paper", "a4").strip().lower()
    if paper not in PAPERS:
        raise ApiError(400, f"paper is one of: {', '.join(PAPERS)}")
    svc = services()
    pdf = render_pdf(_report(sha256), _permalink(sha256), svc.store, svc.settings.max_pixels, paper=paper,
                     instance=svc.settings.instance_name)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="credence-{sha256[:16]}.pdf"'})


@bp.get("/blob/<sha256>")
@require("reader")
def blob(sha256: str):
    """Stored bytes (the media, C2PA thumbnails, bank entry images) as an image, for signed-in users only:
    a hash shared in a bank exchange must never be enough to download the content behind it."""
    sha256 = _sha(sha256)
    data = services().store.get(sha256)
    mime = sniff(data[:512]) if data else None
    if data is None or mime not in IMAGE_TYPES:
        raise ApiError(404, "no stored image with this SHA-256")
    return Response(data, mimetype=mime, headers={
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "private, max-age=86400",
        "Content-Disposition": "inline"})


@bp.post("/media/<sha256>/submit")
@require("reporter")
def submit(sha256: str):
    """Propose this content for a bank: a pending entry from the stored hashes (or the stored file)."""
    sha256 = _sha(sha256)
    body = parse(EntrySubmit, {
        "label": request.form.get("label", "").strip(), "notes": request.form.get("notes", "").strip(),
        "source_links": [line.strip() for line in request.form.get("source_links", "").splitlines() if line.strip()]})
    entry_id = banks.submit_media(services(), request.form.get("bank", ""), sha256, body, actor=actor(),
                                  jobs=banks.Queued(enqueue))["id"]
    flash("Submitted for review. A reviewer confirms or rejects it in Curation.", "info")
    return redirect(url_for("desk.curation.entry", entry_id=entry_id))
