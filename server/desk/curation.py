"""Curation for reviewers: the pending queue, one entry next to its near matches, decisions, audit log.

Decisions go through ``server.banks.service.decide`` (the API's and the CLI's path) and, when what matches
changed, the re-match task is enqueued exactly as the API does.
"""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from server import models
from server.banks import search as bank_search
from server.banks import service as banks
from server.api.deps import enqueue
from server.desk.auth import actor, current_user, require, services
from server.desk.history import similar_media
from server.errors import ApiError
from server.queue import enqueue_rematch

bp = Blueprint("curation", __name__)


@bp.get("/curation")
@require("reviewer")
def queue():
    bank_name = request.args.get("bank", "")
    status = request.args.get("status", "pending")
    if status not in banks.STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(banks.STATUSES)}")
    svc = services()
    with svc.db.session() as session:
        query = (select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
                 .where(models.BankEntry.status == status))
        if bank_name:
            query = query.where(models.Bank.name == bank_name)
        order = models.BankEntry.submitted_at if status == "pending" else models.BankEntry.updated_at.desc()
        rows = session.execute(query.order_by(order).limit(200)).all()
        counts = banks.entry_counts(session)
        all_banks = session.scalars(select(models.Bank).order_by(models.Bank.name)).all()
        items = [{"entry": banks.entry_dict(e, b),
                  "image": bool(e.sha256 and svc.store.path(e.sha256).exists())} for e, b in rows]
        summary = [{"name": b.name, "kind": b.kind, "pending": counts.get(b.id, {}).get("pending", 0)}
                   for b in all_banks]
    return render_template("desk/curation.html", items=items, banks=summary, bank=bank_name, status=status,
                           statuses=banks.STATUSES)


@bp.get("/entries/<entry_id>")
@require("reader")
def entry(entry_id: str):
    svc = services()
    with svc.db.session() as session:
        row = banks.get_entry(session, entry_id)
        bank = session.get(models.Bank, row.bank_id)
        current = banks.entry_dict(row, bank)
        near = [h for h in bank_search.search(session, sha256=row.sha256, pdq=row.pdq, phash=row.phash, limit=13)
                if h["entry"]["id"] != entry_id][:12] if (row.sha256 or row.pdq or row.phash) else []
        seen = []
        if row.pdq or row.phash:
            seen = similar_media(session, [row.pdq] if row.pdq else [], row.phash, limit=8)
        log = session.scalars(select(models.AuditLog).where(models.AuditLog.target == entry_id)
                              .order_by(models.AuditLog.id)).all()
        history = [{"at": h.at, "actor": h.actor, "action": h.action, "details": h.details} for h in log]
    store = svc.store
    has = lambda sha: bool(sha and store.path(sha).exists())  # noqa: E731
    return render_template("desk/entry.html", e=current, near=near, seen=seen, history=history,
                           image=has(current["sha256"]), has=has,
                           can_decide=current_user() is not None and _is_reviewer())


def _is_reviewer() -> bool:
    from server.auth import rank

    return rank(current_user().role) >= rank("reviewer")


@bp.post("/entries/<entry_id>/decide")
@require("reviewer")
def decide(entry_id: str):
    action = request.form.get("action", "")
    note = request.form.get("note", "").strip()
    if action not in ("confirm", "reject", "retract"):
        raise ApiError(400, "action must be confirm, reject or retract")
    if not note:
        raise ApiError(400, "a decision needs a note: it goes into the audit log")
    with services().db.session() as session:
        row = banks.get_entry(session, entry_id)
        changed = banks.decide(session, row, action=action, actor=actor(), note=note[:2000])
        status = row.status
    if changed:
        enqueue(enqueue_rematch, entry_id)
    flash(f"Entry {status}." + (" Stored media are being re-matched." if changed else ""), "info")
    return redirect(url_for("desk.curation.entry", entry_id=entry_id))
