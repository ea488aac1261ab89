"""History of checks (filter by level, date, bank) and search by image across banks and media seen."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import Text, cast, func, select

from server import models
from server.banks import hash_scan
from server.banks import search as bank_search
from server.banks import service as banks
from server.checks import records
from server.desk.auth import require, services
from server.errors import ApiError
from server.verdicts import Level

bp = Blueprint("history", __name__)
PAGE = 50
MEDIA_PDQ_DISTANCE = bank_search.SEARCH_PDQ_DISTANCE
MEDIA_PHASH_DISTANCE = bank_search.SEARCH_PHASH_DISTANCE


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise ApiError(400, "dates are YYYY-MM-DD") from exc
    moment = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return moment + timedelta(days=1) if end else moment


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@bp.get("/history")
@require("reader")
def history():
    args = request.args
    level, bank, scope = args.get("level", ""), args.get("bank", ""), args.get("scope", "desk")
    since, until = _day(args.get("from")), _day(args.get("to"), end=True)
    page = max(args.get("page", 1, type=int) or 1, 1)
    if level and level not in {lv.value for lv in Level}:
        raise ApiError(400, "unknown level")
    query = (select(models.Check, models.Verdict.level, models.Verdict.body, models.DeskCheck.name,
                    models.User.username)
             .outerjoin(models.Verdict, models.Verdict.id == models.Check.verdict_id)
             .outerjoin(models.DeskCheck, models.DeskCheck.check_id == models.Check.id)
             .outerjoin(models.User, models.User.id == models.DeskCheck.user_id))
    # Desk checks by when the person asked (indexed); all checks by when the check was made.
    when = models.DeskCheck.created_at if scope == "desk" else models.Check.created_at
    if scope == "desk":
        query = query.where(models.DeskCheck.id.is_not(None))
    if level:
        query = query.where(models.Verdict.level == level)
    if since:
        query = query.where(when >= since)
    if until:
        query = query.where(when < until)
    if bank:
        # Bank-match evidence names its bank; both SQLite and PostgreSQL keep the JSON text as written.
        query = query.where(cast(models.Verdict.body, Text).like(f'%"bank": "{_like_escape(bank)}"%', escape="\\"))
    rows = (query.add_columns(when).order_by(when.desc(), models.DeskCheck.id.desc())
            .offset((page - 1) * PAGE).limit(PAGE + 1))
    with services().db.session() as session:
        found = session.execute(rows).all()
        shas = {row[0].sha256 for row in found if row[0].sha256}
        now = _current_levels(session, shas)
        bank_names = banks.bank_names(session)
    items = [{"check": c, "level": lv, "summary": (body or {}).get("summary"), "name": name or c.url or "upload",
              "user": user, "now": now.get(c.sha256), "at": at} for c, lv, body, name, user, at in found[:PAGE]]
    return render_template("desk/history.html", items=items, levels=[lv.value for lv in Level], banks=bank_names,
                           f={"level": level, "bank": bank, "scope": scope, "from": args.get("from", ""),
                              "to": args.get("to", "")},
                           page=page, more=len(found) > PAGE)


def _current_levels(session, shas: set[str]) -> dict[str, str]:
    """The level each content has now (a bank change may have moved it since the check)."""
    if not shas:
        return {}
    newest = (select(models.Verdict.sha256, func.max(models.Verdict.created_at).label("at"))
              .where(models.Verdict.sha256.in_(shas), records.is_current(services().detectors_stamp()))
              .group_by(models.Verdict.sha256).subquery())
    return dict(session.execute(select(models.Verdict.sha256, models.Verdict.level)
                                .join(newest, (newest.c.sha256 == models.Verdict.sha256)
                                      & (newest.c.at == models.Verdict.created_at))).all())


def similar_media(session, dihedral: list[str], phash: str | None, exclude: str | None = None,
                  limit: int = 24) -> list[dict[str, Any]]:
    """Media this instance has seen that look like the query: PDQ against each of the query's 8
    orientations (so a flipped or rotated copy is found), pHash as is, over the whole record."""
    m = models.Media.__table__.c
    hits = [{"sha256": near.row.sha256, "mime": near.row.mime, "first_seen": near.row.first_seen,
             "pdq_distance": near.pdq_distance, "phash_distance": near.phash_distance}
            for near in hash_scan.near_rows(session, models.Media.__table__, [m.sha256, m.mime, m.first_seen],
                                            pdqs=dihedral, pdq_limit=MEDIA_PDQ_DISTANCE,
                                            phash=phash, phash_limit=MEDIA_PHASH_DISTANCE)
            if near.row.sha256 != exclude]
    hits.sort(key=lambda h: (h["pdq_distance"] if h["pdq_distance"] is not None else 999,
                             h["phash_distance"] if h["phash_distance"] is not None else 999))
    hits = hits[:limit]
    levels = _current_levels(session, {h["sha256"] for h in hits})
    for h in hits:
        h["level"] = levels.get(h["sha256"])
    return hits


@bp.route("/search", methods=["GET", "POST"])
@require("reader")
def search():
    if request.method == "GET":
        return render_template("desk/search.html", query=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ApiError(400, "choose an image to search with")
    settings = services().settings
    data = upload.stream.read(settings.fetch_max_bytes + 1)
    if len(data) > settings.fetch_max_bytes:
        raise ApiError(413, "the file is too large")
    fp = banks.fingerprint_upload(data, settings)
    if fp.kind != "image":
        raise ApiError(400, "the desk's search takes an image; search a video with the API or the CLI")
    query = fp.query()  # PDQ in all 8 orientations: a mirrored or rotated copy is found as the matcher finds it
    with services().db.session() as session:
        bank_hits = bank_search.find(session, query, settings)
        media_hits = similar_media(session, query["orientations"], query["phash"])
        stored = {h["entry"]["sha256"] for h in bank_hits if h["entry"]["sha256"]}
    have = {s for s in stored if services().store.path(s).exists()}
    return render_template("desk/search.html", query=query, name=upload.filename, bank_hits=bank_hits,
                           media_hits=media_hits, have=have)
