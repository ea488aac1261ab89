"""History of checks (filter by level, date, bank) and search by image across banks and media seen."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from flask import Blueprint, render_template, request

from server.banks import search as bank_search
from server.banks import service as banks
from server.checks import records
from server.desk import service
from server.desk.auth import require, services
from server.errors import ApiError
from server.verdicts import Level

bp = Blueprint("history", __name__)
PAGE = 50


def _day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise ApiError(400, "dates are YYYY-MM-DD") from exc
    moment = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return moment + timedelta(days=1) if end else moment


@bp.get("/history")
@require("reader")
def history():
    args = request.args
    level, bank, scope = args.get("level", ""), args.get("bank", ""), args.get("scope", "desk")
    since, until = _day(args.get("from")), _day(args.get("to"), end=True)
    page = max(args.get("page", 1, type=int) or 1, 1)
    if level and level not in {lv.value for lv in Level}:
        raise ApiError(400, "unknown level")
    with services().db.session() as session:
        found = service.check_history(session, services().detectors_stamp(), level=level, bank=bank, scope=scope,
                                      since=since, until=until, offset=(page - 1) * PAGE, limit=PAGE + 1)
        bank_names = banks.bank_names(session)
    items = found[:PAGE]
    return render_template("desk/history.html", items=items, levels=[lv.value for lv in Level], banks=bank_names,
                           f={"level": level, "bank": bank, "scope": scope, "from": args.get("from", ""),
                              "to": args.get("to", "")},
                           page=page, more=len(found) > PAGE)


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
        media_hits = records.similar_media(session, services().detectors_stamp(), query["orientations"], query["phash"])
        stored = {h["entry"]["sha256"] for h in bank_hits if h["entry"]["sha256"]}
    have = {s for s in stored if services().store.path(s).exists()}
    return render_template("desk/search.html", query=query, name=upload.filename, bank_hits=bank_hits,
                           media_hits=media_hits, have=have)
