"""Reads and writes of the record (checks, media, verdicts) shared by the API and the workers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Row, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server import models
from server.banks import hash_scan
from server.config import PIPELINE_VERSION
from server.detection.manifest import VERSION_KEY
from server.verdicts import Verdict


# The fresh path's statements are Core statements on the tables, the fixed ones built once with bound parameters:
# an ORM statement built at each call cost about 0.5 ms of Python (its construction, its cache key, the ORM's
# bookkeeping of a bulk UPDATE) against 0.1-0.2 ms, and a fresh image makes about a dozen (issue 17).
CHECKS, MEDIA, VERDICTS, URLS = (m.__table__ for m in (models.Check, models.Media, models.Verdict, models.MediaUrl))
_INSERT_CHECK = insert(CHECKS)


def create_check(session: Session, *, source: str, url: str | None = None, url_hash: str | None = None,
                 sha256: str | None = None, check_id: str | None = None) -> str:
    """A pending check; its id (``check_id`` when the caller chose it)."""
    check_id, now = check_id or models.new_id(), models.utcnow()
    session.execute(_INSERT_CHECK, {"id": check_id, "source": source, "url": url, "url_hash": url_hash,
                                    "sha256": sha256, "status": "pending", "verdict_id": None, "attempts": 0,
                                    "created_at": now, "updated_at": now})
    return check_id


_PENDING_FOR_URL = (select(CHECKS.c.id)
                    .where(CHECKS.c.url_hash == bindparam("key"), CHECKS.c.status == "pending",
                           CHECKS.c.created_at >= bindparam("since"))
                    .order_by(CHECKS.c.created_at.desc()).limit(1))


def pending_check_for_url(session: Session, url_hash: str, max_age_s: int) -> str | None:
    """The id of an unfinished check of the same URL, so concurrent requests share one fetch."""
    since = datetime.now(timezone.utc) - timedelta(seconds=max_age_s)
    return session.scalar(_PENDING_FOR_URL, {"key": url_hash, "since": since})


_IS_PENDING = select(CHECKS.c.id).where(CHECKS.c.id == bindparam("check_id"), CHECKS.c.status == "pending")


def is_pending(session: Session, check_id: str) -> bool:
    return session.scalar(_IS_PENDING, {"check_id": check_id}) is not None


def is_current(detectors: str | BindParameter[str]) -> ColumnElement[bool]:
    """SQL for "still stands": made by this pipeline version and, if it depended on detectors, by the ones
    configured now (``detector_manifest.configured_stamp``). Anything else is recomputed on request."""
    made_with = VERDICTS.c.body["versions"][VERSION_KEY].as_string()
    return and_(VERDICTS.c.pipeline_version == PIPELINE_VERSION, or_(made_with.is_(None), made_with == detectors))


_CURRENT = (select(VERDICTS.c.id, VERDICTS.c.level, VERDICTS.c.body)
            .where(VERDICTS.c.sha256 == bindparam("content"), is_current(bindparam("detectors")))
            .order_by(VERDICTS.c.created_at.desc()).limit(1))


def current_verdict(session: Session, sha256: str, detectors: str) -> Row[Any] | None:
    """Newest verdict that still stands (``is_current``): its ``id``, ``level`` and ``body``; older ones are
    recomputed on request."""
    return session.execute(_CURRENT, {"content": sha256, "detectors": detectors}).first()


_SOURCE_SIZE = select(MEDIA.c.source_size).where(MEDIA.c.sha256 == bindparam("content"))


def source_size(session: Session, sha256: str) -> int | None:
    """The whole file's size when only its start was fetched (``record_media``); None otherwise or unknown."""
    return session.scalar(_SOURCE_SIZE, {"content": sha256})


def _insert(session: Session, table: Any):
    """INSERT that can say ON CONFLICT: concurrent workers record the same content at once."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def record_media(session: Session, *, sha256: str, mime: str, size: int,
                 width: int | None = None, height: int | None = None, hashes: dict[str, Any] | None = None,
                 source_size: int | None = None) -> None:
    """Insert once; later analyses fill in what was not known at fetch time (size, hashes). One statement:
    each one is a round trip and most of a worker's database CPU (issue 17).

    ``hashes`` is the details of the pipeline's evidence: an image's "hashes" (pdq, pdq_quality,
    phash, dihedral) or a video's "video-hashes" (md5, frames [{t, pdq, quality}], partial), kept so
    bank changes re-match stored media without refetching. ``source_size`` is the whole file's size
    when only part of it was fetched (range requests): such a row's sha256 is of the part read."""
    m = MEDIA.c
    row: dict[str, Any] = {"sha256": sha256, "mime": mime, "size": size, "width": width, "height": height,
                           "source_size": source_size, "first_seen": models.utcnow()}
    later: dict[str, Any] = {}  # what a row already there takes from this call
    if width:
        # The first dimensions known win, with the type they were read as.
        unknown = m.width.is_(None)
        later.update(width=case((unknown, width), else_=m.width), height=case((unknown, height), else_=m.height),
                     mime=case((unknown, mime), else_=m.mime))
    if source_size is not None:
        later["source_size"] = source_size
    if hashes and "frames" in hashes:
        frames = [models.StoredFrame(t=float(f["t"]), pdq=f["pdq"], quality=int(f["quality"]))
                  for f in hashes.get("frames") or []]
        # A partial read has no file MD5: exact matching would compare hashes of different bytes.
        later.update(md5=None if hashes.get("partial") else hashes.get("md5"),
                     frame_pdqs=models.encode_frames(frames))
    elif hashes:
        later.update(pdq=hashes["pdq"], pdq_quality=hashes["pdq_quality"], phash=hashes["phash"],
                     pdq_dihedral=",".join(hashes.get("dihedral") or []))
    insert = _insert(session, MEDIA).values(**row, **{k: v for k, v in later.items() if k not in row})
    session.execute(insert.on_conflict_do_update(index_elements=["sha256"], set_=later) if later
                    else insert.on_conflict_do_nothing(index_elements=["sha256"]))


def record_url(session: Session, *, url: str, url_hash: str, sha256: str, final_url: str | None,
               etag: str | None) -> None:
    values = {"sha256": sha256, "final_url": final_url, "etag": etag, "fetched_at": models.utcnow()}
    session.execute(_insert(session, URLS)
                    .values(url_hash=url_hash, url=url, **values)
                    .on_conflict_do_update(index_elements=["url_hash"], set_=values))


_INSERT_VERDICT = insert(VERDICTS)


def record_verdict(session: Session, verdict: Verdict) -> str:
    """The verdict as a new row; its id."""
    verdict_id = models.new_id()
    session.execute(_INSERT_VERDICT, {
        "id": verdict_id, "sha256": verdict.sha256, "level": verdict.level.value,
        "pipeline_version": verdict.versions.get("pipeline", PIPELINE_VERSION),
        "body": verdict.model_dump(mode="json"), "created_at": models.utcnow()})
    return verdict_id


_START_FETCH = (update(CHECKS).where(CHECKS.c.id == bindparam("check_id"), CHECKS.c.status != "done")
                .values(attempts=CHECKS.c.attempts + 1, updated_at=bindparam("now"))
                .returning(CHECKS.c.url, CHECKS.c.url_hash))


def start_fetch_attempt(session: Session, check_id: str) -> tuple[str | None, str | None] | None:
    """Count a fetch attempt of a check not yet done, renewing its lease; its (url, url_hash), or None when there
    is nothing to fetch (unknown or already done). One statement, where a read and a write were two."""
    row = session.execute(_START_FETCH, {"check_id": check_id, "now": models.utcnow()}).first()
    return None if row is None else (row.url, row.url_hash)


_SET_CONTENT = (update(CHECKS).where(CHECKS.c.id == bindparam("check_id"))
                .values(sha256=bindparam("content"), updated_at=bindparam("now")))


def set_check_content(session: Session, check_id: str, sha256: str) -> None:
    """The check's bytes are known: it now waits on that content (its lease renewed with it)."""
    session.execute(_SET_CONTENT, {"check_id": check_id, "content": sha256, "now": models.utcnow()})


def complete_check(session: Session, check_id: str, verdict_id: str, sha256: str | None = None) -> None:
    values: dict[str, Any] = {"status": "done", "verdict_id": verdict_id, "updated_at": models.utcnow()}
    if sha256:
        values["sha256"] = sha256
    session.execute(update(CHECKS).where(CHECKS.c.id == check_id).values(**values))


_COMPLETE_FOR = (update(CHECKS).where(CHECKS.c.sha256 == bindparam("content"), CHECKS.c.status == "pending")
                 .values(status="done", verdict_id=bindparam("verdict"), updated_at=bindparam("now"))
                 .returning(CHECKS.c.id))


def complete_checks_for(session: Session, sha256: str, verdict_id: str) -> list[str]:
    """Every check waiting on this content gets the verdict: one analysis serves many URLs."""
    return list(session.scalars(_COMPLETE_FOR, {"content": sha256, "verdict": verdict_id, "now": models.utcnow()}))


def stale_checks(session: Session, older_than_s: int, limit: int = 500) -> list[models.Check]:
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_s)
    return list(session.scalars(
        select(models.Check)
        .where(models.Check.status == "pending", models.Check.updated_at < cutoff)
        .order_by(models.Check.updated_at)
        .limit(limit)
    ))


SHOWN = 50  # sightings and past verdicts shown per content (API report, desk report, exports)


def sightings(session: Session, sha256: str, limit: int = SHOWN) -> list[models.MediaUrl]:
    """Where these bytes were fetched from, newest first."""
    return list(session.scalars(select(models.MediaUrl).where(models.MediaUrl.sha256 == sha256)
                                .order_by(models.MediaUrl.fetched_at.desc()).limit(limit)))


def verdict_history(session: Session, sha256: str, limit: int = SHOWN) -> list[models.Verdict]:
    """Every verdict these bytes have had (pipeline or detector changes, retractions), newest first."""
    return list(session.scalars(select(models.Verdict).where(models.Verdict.sha256 == sha256)
                                .order_by(models.Verdict.created_at.desc()).limit(limit)))


def was_checked(session: Session, sha256: str) -> bool:
    """Whether anyone asked about these bytes (a check), as opposed to them being only a bank entry's copy."""
    return session.scalar(select(models.Check.id).where(models.Check.sha256 == sha256).limit(1)) is not None


_CHECKS_BY_ID = (select(CHECKS, VERDICTS.c.body.label("verdict_body"))
                 .outerjoin(VERDICTS, VERDICTS.c.id == CHECKS.c.verdict_id)
                 .where(CHECKS.c.id.in_(bindparam("ids", expanding=True))))


def checks_by_id(session: Session, ids: list[str]) -> dict[str, tuple[Row[Any], dict | None]]:
    """Each known check's row (its columns by name) and its verdict's body if it has one."""
    return {row.id: (row, row.verdict_body) for row in session.execute(_CHECKS_BY_ID, {"ids": ids})}


_DONE_BODIES = (select(CHECKS.c.id, VERDICTS.c.body)
                .join(VERDICTS, VERDICTS.c.id == CHECKS.c.verdict_id)
                .where(CHECKS.c.id.in_(bindparam("ids", expanding=True)), CHECKS.c.status == "done"))


def done_bodies(session: Session, ids: list[str]) -> dict[str, dict]:
    """The verdict of each of these checks that is done: what a waiting request looks for, many times a second
    on a busy page, so plain rows of the done ones only (no check objects for those still pending)."""
    return {check_id: body for check_id, body in session.execute(_DONE_BODIES, {"ids": ids}) if body is not None}


def audit(session: Session, *, actor: str, action: str, target: str, details: dict | None = None) -> None:
    session.add(models.AuditLog(actor=actor, action=action, target=target, details=details or {}))


def current_levels(session: Session, shas: set[str], detectors: str) -> dict[str, str]:
    """The level each content has now (a bank change may have moved it since a check was made)."""
    if not shas:
        return {}
    newest = (select(models.Verdict.sha256, func.max(models.Verdict.created_at).label("at"))
              .where(models.Verdict.sha256.in_(shas), is_current(detectors))
              .group_by(models.Verdict.sha256).subquery())
    return dict(session.execute(select(models.Verdict.sha256, models.Verdict.level)
                                .join(newest, (newest.c.sha256 == models.Verdict.sha256)
                                      & (newest.c.at == models.Verdict.created_at))).all())



def similar_media(session: Session, detectors: str, dihedral: list[str], phash: str | None,
                  exclude: str | None = None, limit: int = 24) -> list[dict[str, Any]]:
    """Media this instance has seen that look like the query, nearest first, with their level now: PDQ
    against each of the query's orientations (so a flipped or rotated copy is found), pHash as is, over the
    whole record (hash_scan: exact, in PostgreSQL where it can)."""
    m = models.Media.__table__.c
    hits = [{"sha256": near.row.sha256, "mime": near.row.mime, "first_seen": near.row.first_seen,
             "pdq_distance": near.pdq_distance, "phash_distance": near.phash_distance}
            for near in hash_scan.near_rows(session, models.Media.__table__, [m.sha256, m.mime, m.first_seen],
                                            pdqs=dihedral, pdq_limit=hash_scan.SEARCH_PDQ_DISTANCE,
                                            phash=phash, phash_limit=hash_scan.SEARCH_PHASH_DISTANCE)
            if near.row.sha256 != exclude]
    hits.sort(key=lambda h: (h["pdq_distance"] if h["pdq_distance"] is not None else 999,
                             h["phash_distance"] if h["phash_distance"] is not None else 999))
    hits = hits[:limit]
    levels = current_levels(session, {h["sha256"] for h in hits}, detectors)
    for h in hits:
        h["level"] = levels.get(h["sha256"])
    return hits
