"""Banks of known fakes and originals: curation (submit, review, retract), listing and search.

Each view parses its request, calls one function of server/banks/service.py (or search.py) and renders it.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from server.api.deps import enqueue, services
from server.api.request_body import allow_upload, parse_json, query_int, read_file
from server.auth import actor, require_role
from server.banks import search as bank_search
from server.banks import service as banks
from server.errors import ApiError
from server.schemas import (BankCreate, BankUpdate, EntryDelete, EntrySubmit, ReportRequest, RetractRequest,
                            ReviewRequest, SearchRequest, parse)

bp = Blueprint("banks", __name__, url_prefix="/api/v1")
MAX_PAGE = 200
MAX_OFFSET = 2**31 - 1
MAX_QUERY_INT = 2**31 - 1


@bp.get("/banks")
@require_role("reader")
def list_banks():
    with services().db.session() as session:
        return jsonify({"banks": banks.list_banks(session)})


@bp.post("/banks")
@require_role("admin")
def create_bank():
    body = parse_json(BankCreate)
    with services().db.session() as session:
        return jsonify(banks.bank_dict(banks.create_bank(session, **body.model_dump(), actor=actor()))), 201


@bp.get("/banks/<name>")
@require_role("reader")
def get_bank(name: str):
    with services().db.session() as session:
        return jsonify(banks.bank_info(session, name))


@bp.patch("/banks/<name>")
@require_role("admin")
def update_bank(name: str):
    body = parse_json(BankUpdate)
    with services().db.session() as session:
        return jsonify(banks.bank_dict(banks.update_bank(session, name, actor=actor(), **body.model_dump())))


@bp.delete("/banks/<name>")
@require_role("admin")
def delete_bank(name: str):
    with services().db.session() as session:
        banks.delete_bank(session, name, actor=actor())
    return jsonify({"deleted": name})


@bp.get("/banks/<name>/entries")
@require_role("reader")
def list_entries(name: str):
    limit = min(query_int("limit", 50, 1, MAX_QUERY_INT), MAX_PAGE)  # under 1: 400; over the cap: capped
    offset = query_int("offset", 0, 0, MAX_OFFSET)
    with services().db.session() as session:
        entries = banks.list_entries(session, bank=name, status=request.args.get("status"), offset=offset,
                                     limit=limit)
    return jsonify({"entries": entries, "offset": offset, "limit": limit})


def _submission() -> tuple[EntrySubmit, bytes | None]:
    """JSON body, or multipart with a 'file' and the same fields as form values."""
    if request.mimetype == "multipart/form-data":
        allow_upload(services().settings)
        upload = request.files.get("file")
        fields = {k: v for k, v in request.form.items() if v != ""}
        for key in ("source_links", "tags"):
            if key in request.form:
                fields[key] = [v for v in request.form.getlist(key) if v]
        body = parse(EntrySubmit, fields)
        data = read_file(upload.stream, services().settings) if upload else None
        return body, data or None
    return parse_json(EntrySubmit), None


@bp.post("/banks/<name>/entries")
@require_role("reporter")
def submit_entry(name: str):
    body, data = _submission()
    return jsonify(banks.submit(services(), name, body, actor=actor(), jobs=banks.Queued(enqueue), upload=data)), 201


@bp.post("/reports")
@require_role("reporter")
def report_fake():
    """The extension's "Report as fake": a pending entry in the readers' reports bank."""
    body = parse_json(ReportRequest)
    return jsonify(banks.report(services(), body, actor=actor(), jobs=banks.Queued(enqueue))), 201


@bp.get("/entries/<entry_id>")
@require_role("reader")
def get_entry(entry_id: str):
    with services().db.session() as session:
        return jsonify(banks.entry_detail(session, entry_id))


@bp.post("/entries/<entry_id>/review")
@require_role("reviewer")
def review_entry(entry_id: str):
    body = parse_json(ReviewRequest)
    return jsonify(banks.review(services(), entry_id, body, actor=actor(), jobs=banks.Queued(enqueue)))


@bp.post("/entries/<entry_id>/retract")
@require_role("reviewer")
def retract_entry(entry_id: str):
    body = parse_json(RetractRequest)
    return jsonify(banks.review(services(), entry_id, body, actor=actor(), jobs=banks.Queued(enqueue)))


@bp.delete("/entries/<entry_id>")
@require_role("admin")
def delete_entry(entry_id: str):
    """Admins remove one entry for good (audited); an optional JSON body ``{"note": ...}`` says why."""
    body = parse_json(EntryDelete) if request.get_data(cache=True) else EntryDelete()
    return jsonify(banks.delete_entry(services(), entry_id, body, actor=actor(), jobs=banks.Queued(enqueue)))


@bp.post("/search")
@require_role("reader")
def search():
    """By hash values (JSON) or by an uploaded file (multipart 'file'), image or video."""
    settings = services().settings
    if request.mimetype == "multipart/form-data":
        allow_upload(settings)
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "send the file in a field named 'file'")
        query = bank_search.upload_query(read_file(upload.stream, settings), settings)
    else:
        query = bank_search.hash_query(parse_json(SearchRequest))
    with services().db.session() as session:
        return jsonify({"query": query, "results": bank_search.find(session, query, settings)})
