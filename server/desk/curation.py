"""Curation for reviewers: the pending queue, one entry next to its near matches, decisions, audit log.

Decisions are validated by the API's schemas and go through ``server.banks.service.review``, the API's and
the CLI's path; when what matches changed, the re-match task is queued as the API queues it.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from server.api.deps import enqueue
from server.banks import search as bank_search
from server.banks import service as banks
from server.checks import records
from server.desk.auth import actor, current_user, require, services
from server.schemas import NOTE_MAX, RetractRequest, ReviewRequest, parse

bp = Blueprint("curation", __name__)
QUEUE_LENGTH = 200


@bp.get("/curation")
@require("reviewer")
def queue():
    bank_name = request.args.get("bank", "")
    status = request.args.get("status", "pending")
    svc = services()
    with svc.db.session() as session:
        entries = banks.list_entries(session, bank=bank_name or None, status=status, limit=QUEUE_LENGTH)
        summary = [{"name": b["name"], "kind": b["kind"], "pending": b["entries"].get("pending", 0)}
                   for b in banks.list_banks(session)]
    items = [{"entry": e, "image": bool(e["sha256"] and svc.store.path(e["sha256"]).exists())} for e in entries]
    return render_template("desk/curation.html", items=items, banks=summary, bank=bank_name, status=status,
                           statuses=banks.STATUSES)


@bp.get("/entries/<entry_id>")
@require("reader")
def entry(entry_id: str):
    svc = services()
    with svc.db.session() as session:
        current = banks.entry_detail(session, entry_id)
        near = bank_search.near_entries(session, current)
        seen = []
        if current["pdq"] or current["phash"]:
            seen = records.similar_media(session, services().detectors_stamp(),
                                          [current["pdq"]] if current["pdq"] else [], current["phash"], limit=8)
    store = svc.store
    has = lambda sha: bool(sha and store.path(sha).exists())  # noqa: E731
    return render_template("desk/entry.html", e=current, near=near, seen=seen, history=current["history"],
                           image=has(current["sha256"]), has=has, note_max=NOTE_MAX,
                           can_decide=current_user() is not None and _is_reviewer())


def _is_reviewer() -> bool:
    from server.auth import rank

    return rank(current_user().role) >= rank("reviewer")


@bp.post("/entries/<entry_id>/decide")
@require("reviewer")
def decide(entry_id: str):
    action, note = request.form.get("action", ""), request.form.get("note", "").strip()
    decision = (parse(RetractRequest, {"note": note}) if action == "retract" else
                parse(ReviewRequest, {"action": action, "note": note}))
    svc = services()
    result = banks.review(svc, entry_id, decision, actor=actor(), jobs=banks.Queued(enqueue))
    changed = result["status"] in banks.MATCH_CHANGING
    flash(f"Entry {result['status']}." + (" Stored media are being re-matched." if changed else ""), "info")
    return redirect(url_for("desk.curation.entry", entry_id=entry_id))
