"""The full report for one content: every stage's evidence, versions, timings, where it was seen."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy.orm import Session

from server import models
from server.banks import service as banks
from server.checks import records
from server.api.deps import services
from server.auth import current_role, require_role
from server.errors import ApiError
from server.media_store import is_sha256
from server.schemas import iso

bp = Blueprint("media", __name__, url_prefix="/api/v1")


def may_see_sightings() -> bool:
    """Where and when an image was seen says what people read: only keyed clients (any role) see it (its
    URLs, first seen), and only where the instance shows sightings at all (desk_sightings), as on the desk."""
    return current_role() is not None and services().settings.desk_sightings


def bank_entries(session: Session, body: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The bank entries the verdict cites, once each, as they stand now: status, who disputes them and why."""
    entries = {e.id: e for _, e in banks.cited(session, (body or {}).get("evidence", [])) if e is not None}
    disputes = banks.disputes_of(session, list(entries))
    out = []
    for entry in entries.values():
        bank = session.get(models.Bank, entry.bank_id)
        out.append({"id": entry.id, "bank": bank.name if bank else None, "label": entry.label,
                    "status": entry.status, "disputed": bool(entry.disputed), "disputes": disputes.get(entry.id, [])})
    return out


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
        shown = may_see_sightings()
        urls = records.sightings(session, sha256) if shown else []
        history = records.verdict_history(session, sha256)
        current = records.current_verdict(session, sha256, services().detectors_stamp())
        report = {
            "sha256": sha256, "mime": media.mime, "size": media.size, "width": media.width,
            "height": media.height, "first_seen": iso(media.first_seen) if shown else None,
            "hashes": {"sha256": sha256, "pdq": media.pdq, "pdq_quality": media.pdq_quality, "phash": media.phash},
            "urls": [{"url": u.url, "final_url": u.final_url, "fetched_at": iso(u.fetched_at)} for u in urls],
            "verdict": current.body if current else None,
            "bank_entries": bank_entries(session, current.body if current else None),
            "history": [{"id": v.id, "level": v.level, "pipeline_version": v.pipeline_version,
                         "created_at": iso(v.created_at)} for v in history],
        }
    return jsonify(report)
