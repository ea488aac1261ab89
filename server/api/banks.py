"""Banks of known fakes and originals: curation (submit, review, retract), listing and search."""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import ValidationError
from sqlalchemy import select

from server import models
from server.banks import search as bank_search
from server.banks import service as banks
from server.banks import removal as entry_removal
from server.api.deps import enqueue, services
from server.api.request_body import allow_upload, parse_json, query_int, read_file
from server.auth import actor, require_role
from server.errors import ApiError, validation_details
from server.queue import enqueue_hash_entry, enqueue_rematch, enqueue_rematch_removed
from server.schemas import (BankCreate, BankUpdate, EntryDelete, EntrySubmit, ReportRequest, RetractRequest, ReviewRequest,
                            SearchRequest, iso)
from server.checks.urls import BadUrl, normalise

bp = Blueprint("banks", __name__, url_prefix="/api/v1")
MAX_PAGE = 200
MAX_OFFSET = 2**31 - 1
MAX_QUERY_INT = 2**31 - 1


@bp.get("/banks")
@require_role("reader")
def list_banks():
    with services().db.session() as session:
        counts = banks.entry_counts(session)
        rows = session.scalars(select(models.Bank).order_by(models.Bank.name)).all()
        return jsonify({"banks": [banks.bank_dict(b, counts.get(b.id)) for b in rows]})


@bp.post("/banks")
@require_role("admin")
def create_bank():
    body = parse_json(BankCreate)
    with services().db.session() as session:
        bank = banks.create_bank(session, name=body.name, kind=body.kind, actor=actor(), owner=body.owner,
                                 description=body.description)
        bank.shared = body.shared
        return jsonify(banks.bank_dict(bank)), 201


@bp.get("/banks/<name>")
@require_role("reader")
def get_bank(name: str):
    with services().db.session() as session:
        bank = banks.get_bank(session, name)
        return jsonify(banks.bank_dict(bank, banks.entry_counts(session).get(bank.id)))


@bp.patch("/banks/<name>")
@require_role("admin")
def update_bank(name: str):
    body = parse_json(BankUpdate)
    with services().db.session() as session:
        bank = banks.update_bank(session, banks.get_bank(session, name), actor=actor(), **body.model_dump())
        return jsonify(banks.bank_dict(bank))


@bp.delete("/banks/<name>")
@require_role("admin")
def delete_bank(name: str):
    with services().db.session() as session:
        banks.delete_bank(session, banks.get_bank(session, name), actor=actor())
    return jsonify({"deleted": name})


@bp.get("/banks/<name>/entries")
@require_role("reader")
def list_entries(name: str):
    status = request.args.get("status")
    if status and status not in banks.STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(banks.STATUSES)}")
    limit = min(query_int("limit", 50, 1, MAX_QUERY_INT), MAX_PAGE)  # under 1: 400; over the cap: capped
    offset = query_int("offset", 0, 0, MAX_OFFSET)
    with services().db.session() as session:
        bank = banks.get_bank(session, name)
        query = select(models.BankEntry).where(models.BankEntry.bank_id == bank.id)
        if status:
            query = query.where(models.BankEntry.status == status)
        rows = session.scalars(query.order_by(models.BankEntry.submitted_at.desc()).offset(offset).limit(limit)).all()
        return jsonify({"entries": [banks.entry_dict(e, bank) for e in rows], "offset": offset, "limit": limit})


def _submission() -> tuple[EntrySubmit, bytes | None]:
    """JSON body, or multipart with a 'file' and the same fields as form values."""
    if request.mimetype == "multipart/form-data":
        allow_upload(services().settings)
        upload = request.files.get("file")
        fields = {k: v for k, v in request.form.items() if v != ""}
        for key in ("source_links", "tags"):
            if key in request.form:
                fields[key] = [v for v in request.form.getlist(key) if v]
        try:
            body = EntrySubmit.model_validate(fields)
        except ValidationError as exc:
            raise ApiError(400, "request body is invalid", validation_details(exc)) from exc
        data = read_file(upload.stream, services().settings) if upload else None
        return body, data or None
    return parse_json(EntrySubmit), None


def _frames(frames: list | None) -> list | None:
    """Frame objects as plain dicts for banks.check_frames (strings pass as they are)."""
    return None if frames is None else [f if isinstance(f, str) else f.model_dump() for f in frames]


@bp.post("/banks/<name>/entries")
@require_role("reporter")
def submit_entry(name: str):
    body, data = _submission()
    banks.check_links(body.source_links)  # before any bytes are stored
    svc = services()
    sha256, hash_state, source_url = body.sha256, "ready", None
    if data is not None:
        sha256, hash_state = svc.store.put(data), "pending"
    elif body.url:
        try:
            source_url = normalise(body.url)
        except BadUrl as exc:
            raise ApiError(400, str(exc)) from exc
        hash_state = "pending"
    with svc.db.session() as session:
        bank = banks.get_bank(session, name)
        entry = banks.submit_entry(
            session, bank, actor=actor(), label=body.label, notes=body.notes, source_links=body.source_links,
            tags=body.tags, sha256=sha256, pdq=body.pdq, pdq_quality=body.pdq_quality, phash=body.phash,
            source_url=source_url, hash_state=hash_state, media_kind=body.media_kind, md5=body.md5,
            frames=_frames(body.frames))
        result = banks.entry_dict(entry, bank)
    if hash_state == "pending":
        enqueue(enqueue_hash_entry, result["id"])
    return jsonify(result), 201


@bp.post("/reports")
@require_role("reporter")
def report_fake():
    """The extension's "Report as fake": a pending entry in the readers' reports bank."""
    body = parse_json(ReportRequest)
    try:
        url = normalise(body.url)
    except BadUrl as exc:
        raise ApiError(400, str(exc)) from exc
    with services().db.session() as session:
        bank = banks.ensure_reports_bank(session)
        entry = banks.submit_entry(session, bank, actor=actor(), label=body.label or "Reported by a reader",
                                   notes=body.note, source_url=url, hash_state="pending")
        result = banks.entry_dict(entry, bank)
    enqueue(enqueue_hash_entry, result["id"])
    return jsonify(result), 201


@bp.get("/entries/<entry_id>")
@require_role("reader")
def get_entry(entry_id: str):
    with services().db.session() as session:
        entry = banks.get_entry(session, entry_id)
        history = session.scalars(select(models.AuditLog).where(models.AuditLog.target == entry_id)
                                  .order_by(models.AuditLog.id)).all()
        return jsonify({**banks.entry_dict(entry, session.get(models.Bank, entry.bank_id)),
                        "history": [{"at": iso(h.at), "actor": h.actor, "action": h.action,
                                     "details": h.details} for h in history]})


def _decide(entry_id: str, action: str, note: str):
    with services().db.session() as session:
        entry = banks.get_entry(session, entry_id)
        changed = banks.decide(session, entry, action=action, actor=actor(), note=note)
        result = banks.entry_dict(entry, session.get(models.Bank, entry.bank_id))
    if changed:
        enqueue(enqueue_rematch, entry_id)
    return jsonify(result)


@bp.post("/entries/<entry_id>/review")
@require_role("reviewer")
def review_entry(entry_id: str):
    body = parse_json(ReviewRequest)
    return _decide(entry_id, body.action, body.note)


@bp.post("/entries/<entry_id>/retract")
@require_role("reviewer")
def retract_entry(entry_id: str):
    return _decide(entry_id, "retract", parse_json(RetractRequest).note)


@bp.delete("/entries/<entry_id>")
@require_role("admin")
def delete_entry(entry_id: str):
    """Admins remove one entry for good (audited); an optional JSON body ``{"note": ...}`` says why."""
    note = parse_json(EntryDelete).note if request.get_data(cache=True) else ""
    with services().db.session() as session:
        hashes = entry_removal.remove_entry(session, banks.get_entry(session, entry_id), actor=actor(), note=note)
    if hashes["status"] in ("confirmed", "retracted"):  # what it matched is re-derived without it
        enqueue(enqueue_rematch_removed, hashes)
    return jsonify({"deleted": entry_id})


def _upload_query(data: bytes) -> dict:
    """Hash an uploaded file as every front end does (worker.stages.fingerprint: all 8 PDQ orientations)."""
    from worker.stages.fingerprint import FingerprintError, fingerprint  # pure functions; the API stays light

    try:
        return fingerprint(data, services().settings).query()
    except FingerprintError as exc:
        raise ApiError(400, str(exc)) from exc


@bp.post("/search")
@require_role("reader")
def search():
    """By hash values (JSON) or by an uploaded file (multipart 'file'), image or video."""
    if request.mimetype == "multipart/form-data":
        allow_upload(services().settings)
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "send the file in a field named 'file'")
        data = read_file(upload.stream, services().settings)
        query = _upload_query(data)
    else:
        body = parse_json(SearchRequest)
        query = {k: banks.check_hex(k, getattr(body, k)) for k in ("sha256", "pdq", "phash", "md5")}
        frames = banks.check_frames(_frames(body.frames))
        if frames:
            query["frames"] = [f._asdict() for f in frames]
        if not any(query.values()):
            raise ApiError(400, "give at least one of sha256, pdq, phash, md5, frames (or upload a file)")
    with services().db.session() as session:
        results = bank_search.search(
            session, sha256=query.get("sha256"), pdq=query.get("orientations") or query.get("pdq"),
            phash=query.get("phash"),
            md5=query.get("md5"), frames=banks.check_frames(query.get("frames")),
            frame_threshold=services().settings.vpdq_frame_threshold,
            match_share=services().settings.vpdq_match_share)
        return jsonify({"query": query, "results": results})
