"""The full report for one content: every stage's evidence, versions, timings, where it was seen."""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from server import models, records
from server.api.deps import services
from server.auth import require_role
from server.errors import ApiError
from server.media_store import is_sha256

bp = Blueprint("media", __name__, url_prefix="/api/v1")


@bp.get("/media/<sha256>")
@require_role(None)
def media_report(sha256: str):
    sha256 = sha256.lower()
    if not is_sha256(sha256):
        raise ApiError(400, "expected a SHA-256 as 64 hex characters")
    with services().db.session() as session:
        media = session.get(models.Media, sha256)
        if media is None:
            raise ApiError(404, "no media with this SHA-256 has been checked")
        urls = session.scalars(
            select(models.MediaUrl).where(models.MediaUrl.sha256 == sha256)
            .order_by(models.MediaUrl.fetched_at.desc()).limit(50)
        ).all()
        history = session.scalars(
            select(models.Verdict).where(models.Verdict.sha256 == sha256).order_by(models.Verdict.created_at.desc())
        ).all()
        current = records.current_verdict(session, sha256, services().detectors_stamp())
        report = {
            "sha256": sha256, "mime": media.mime, "size": media.size, "width": media.width,
            "height": media.height, "first_seen": media.first_seen.isoformat(),
            "hashes": {"sha256": sha256, "pdq": media.pdq, "pdq_quality": media.pdq_quality, "phash": media.phash},
            "urls": [{"url": u.url, "final_url": u.final_url, "fetched_at": u.fetched_at.isoformat()} for u in urls],
            "verdict": current.body if current else None,
            "history": [{"id": v.id, "level": v.level, "pipeline_version": v.pipeline_version,
                         "created_at": v.created_at.isoformat()} for v in history],
        }
    return jsonify(report)
