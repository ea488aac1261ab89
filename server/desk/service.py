"""What the desk pages do with the record: start checks, follow them, and build a report.

Checks go through the same record and queues as the API (``server.checks.records``, ``server.queue``):
a URL check joins an in-flight one exactly as POST /api/v1/checks does, an upload is stored by
hash and analysed once. The desk always starts a check for a URL (never only the cache) because a
fact-checker wants what the address serves now, and so that the check is in their history.
"""
from __future__ import annotations

import copy
import hashlib
import io
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from server import models
from server.banks import service as banks
from server.checks import progress, records
from server.checks import service as checks
from server.desk.video import frame_scores, video_view
from server.detection import heatmaps
from server.media_store import is_sha256
from server.media_types import IMAGE_TYPES
from server.services import Services
from server.verdicts import DECISIVE
from server.vocabulary import DetectionState, Kind, Stage, is_ai_declaration, is_c2pa
from server.checks.urls import normalise
from server import wording

# Stages as a fact-checker names them, and the pipeline rules (verdict timing keys) behind each.
STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("fetch", "Fetch", (Stage.FETCH,)),
    ("provenance", "Provenance", (Stage.C2PA, Stage.AI_METADATA, Stage.WATERMARK)),
    ("hashes", "Hashes", (Stage.HASHES, Stage.KEYFRAMES, Stage.VIDEO_HASHES)),
    ("banks", "Banks", (Stage.BANK_MATCH, Stage.VIDEO_BANK_MATCH)),
    ("recovery", "Credentials recovery", (Stage.RECOVERY,)),  # after the hashes it looks up
    ("detection", "Detection", (Stage.DETECT,)),
)
NOT_NEEDED = "not needed: provenance or a bank already answered"
# versions["detect"] -> (state, note) on the desk: every state has its words (tests/test_vocabulary.py).
DETECTION_STATES: dict[DetectionState, tuple[str, str | None]] = {
    DetectionState.RAN: ("done", None),
    DetectionState.SKIPPED: ("skipped", NOT_NEEDED),
    DetectionState.OFF: ("skipped", "detection is turned off on this server"),
    DetectionState.NOT_CONFIGURED: ("skipped", "no detector is configured on this server"),
    DetectionState.NOT_RUN: ("skipped", "nothing to look at"),
    DetectionState.MISCONFIGURED: ("failed", "the detector configuration is broken"),
    DetectionState.PENDING: ("running",
                             "running again: the known-fake match that had made it unnecessary was retracted"),
    DetectionState.UNAVAILABLE: ("failed", "the detectors could not run"),
    DetectionState.ERROR: ("failed", "the file could not be read again for detection"),
}


# ---------------------------------------------------------------------------- starting checks

def start_url(svc: Services, raw: str, user_id: str | None) -> str:
    """A check of ``raw`` (raises BadUrl) that fetches it now, joining an in-flight one (server/checks/service.py)."""
    url = normalise(raw)
    check_id = checks.fetch_url(svc, url)
    _remember(svc, check_id, user_id, url)
    return check_id


def start_upload(svc: Services, data: bytes, name: str, user_id: str | None) -> str:
    """As POST /api/v1/checks/upload: store by hash, reuse a current verdict, else analyse once."""
    check_id, _ = checks.check_upload(svc, data)
    _remember(svc, check_id, user_id, name or "upload")
    return check_id


def _remember(svc: Services, check_id: str, user_id: str | None, name: str) -> None:
    with svc.db.session() as session:
        session.add(models.DeskCheck(check_id=check_id, user_id=user_id, name=name[:2000]))


def parse_urls(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    """URLs separated by lines or spaces (URLs hold no white space; commas are legal in them): the ones
    that can be checked, normalised, and why the others cannot."""
    return checks.normalise_all(dict.fromkeys(text.split()))


# ---------------------------------------------------------------------------- following checks

def _times(live: dict[str, Any] | None) -> dict[str, Any]:
    return {k: live[k] for k in ("started_at", "ended_at") if live and live.get(k)}


def _stage_state(key: str, rules: tuple[str, ...], check: models.Check, body: dict[str, Any] | None,
                 events: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A stage's state: from the workers' progress events while the check runs (nothing is "running" before a
    worker said so), from the verdict once it is done, with each stage's start and end when they were seen."""
    live = None
    if events is not None:
        live = progress.stage_progress(rules, events["check"] if key == "fetch" else events["media"])
    if key == "fetch":
        if check.source == "upload":
            return {"state": "done", "note": "uploaded"}
        if body is not None and check.sha256 is None:
            return {"state": "failed", "note": "could not fetch", **_times(live)}
        if check.sha256:
            return {"state": "done", **({"ms": live["ms"]} if live and "ms" in live else {}), **_times(live)}
        if live:
            return live
        if events is not None:  # the check is in the fetch queue and no worker has taken it yet
            return {"state": "running", "queued": True, "note": "in the queue: no worker has taken it yet"}
        return {"state": "running"}
    if body is None:
        if not check.sha256 or events is None:
            return {"state": "waiting"}
        if key == "detection" and not (live and live["state"] in ("running", "done")):
            queued = progress.queued_for(Stage.DETECT, events["media"])
            if queued is not None:
                return {"state": "queued", "note": "waiting for a detection worker", "queued_at": progress.iso(queued)}
            return {"state": "waiting"}
        return live or {"state": "waiting"}
    timings = body.get("timings") or {}
    ran = [k for k in timings if progress.matches(k, rules)]
    errors = [e for e in body.get("evidence", []) if e.get("kind") == Kind.STAGE_ERROR
              and any(e.get("stage", "").startswith(r) for r in rules)]
    if errors:
        return {"state": "failed", "note": errors[0]["summary"], **_times(live)}
    if key == "detection" and (body.get("versions") or {}).get(Stage.DETECT) in DETECTION_STATES:
        state, note = DETECTION_STATES[body["versions"][Stage.DETECT]]
        out = {"state": state, **({"note": note} if note else {})}
        if ran and state == "done":
            out["ms"] = round(sum(timings[k] for k in ran), 1)
            out.update(_times(live))
        return out
    if ran:
        return {"state": "done", "ms": round(sum(timings[k] for k in ran), 1), **_times(live)}
    if key == "detection":
        if body.get("level") in DECISIVE:
            return {"state": "skipped", "note": NOT_NEEDED}
        return {"state": "skipped", "note": "no detector ran"}
    return {"state": "skipped", "note": "not applicable"}


def _phase(check: models.Check, stages: list[dict[str, Any]], events: dict[str, list[dict[str, Any]]] | None) -> str:
    """Where the check is now, in a few words (the desk's line above the stages)."""
    if check.status == "done":
        return "done"
    running = [s["label"].lower() for s in stages if s["state"] == "running" and not s.get("queued")]
    if running:
        return f"working: {', '.join(running)}"
    if any(s.get("queued") or s["state"] == "queued" for s in stages):
        return "in the queue"
    if events is not None and check.sha256 and progress.queued_for("analysis", events["media"]) is not None:
        return "in the queue"
    return "waiting"


def check_status(check: models.Check, body: dict[str, Any] | None, name: str | None,
                 events: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """One check as the desk follows it; ``events`` are the workers' progress (server/checks/progress.py)."""
    sha256 = (body or {}).get("sha256") or check.sha256
    if events is not None:  # a content's earlier run that answered before this check was made is not its own
        events = {"check": events.get("check", []),
                  "media": progress.relevant_run(events.get("media", []), progress.epoch(check.created_at))}
    stages = [{"key": key, "label": label,
               **_stage_state(key, rules, check, body if check.status == "done" else None, events)}
              for key, label, rules in STAGES]
    out: dict[str, Any] = {
        "check_id": check.id, "name": name or check.url or "upload", "status": check.status,
        "sha256": sha256,
        "stages": stages,
        "queued_at": progress.iso(progress.epoch(check.created_at)),
        "done_at": progress.iso(progress.done_at(events["media"])) if events else None,
        "phase": _phase(check, stages, events),
        "verdict": None, "report_url": None,
    }
    if check.status == "done" and body is not None:
        out["verdict"] = {k: body.get(k) for k in ("level", "label", "badge", "summary")}
        if body.get("sha256"):
            out["report_url"] = f"/desk/media/{body['sha256']}"
    return out


def statuses(session: Session, ids: list[str], log: progress.ProgressLog | None = None) -> list[dict[str, Any]]:
    """The checks' states; with ``log``, live from the workers' progress events."""
    found = records.checks_by_id(session, ids)
    names = dict(session.execute(select(models.DeskCheck.check_id, models.DeskCheck.name)
                                 .where(models.DeskCheck.check_id.in_(ids))).all())
    read: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if log is not None:
        pairs = [("check", c.id) for c, _ in found.values()] + [("media", c.sha256) for c, _ in found.values()
                                                                 if c.sha256]
        read = log.read_many(pairs)
    out = []
    for check_id in ids:
        if check_id in found:
            check, body = found[check_id]
            events = None if log is None else {"check": read.get(("check", check.id), []),
                                               "media": read.get(("media", check.sha256 or ""), [])}
            out.append(check_status(check, body, names.get(check_id), events))
        else:
            out.append({"check_id": check_id, "status": "unknown"})
    return out


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check_history(session: Session, detectors: str, *, level: str = "", bank: str = "", scope: str = "desk",
                  since: datetime | None = None, until: datetime | None = None, offset: int = 0,
                  limit: int = 50) -> list[dict[str, Any]]:
    """Past checks, newest first: the desk's own (``scope`` "desk", by when the person asked, with who asked)
    or all of them (by when the check was made), each with its level then and now."""
    query = (select(models.Check, models.Verdict.level, models.Verdict.body, models.DeskCheck.name,
                    models.User.username)
             .outerjoin(models.Verdict, models.Verdict.id == models.Check.verdict_id)
             .outerjoin(models.DeskCheck, models.DeskCheck.check_id == models.Check.id)
             .outerjoin(models.User, models.User.id == models.DeskCheck.user_id))
    when = models.DeskCheck.created_at if scope == "desk" else models.Check.created_at  # both indexed
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
    rows = session.execute(query.add_columns(when).order_by(when.desc(), models.DeskCheck.id.desc())
                           .offset(offset).limit(limit)).all()
    now = records.current_levels(session, {row[0].sha256 for row in rows if row[0].sha256}, detectors)
    return [{"check": c, "level": lv, "summary": (body or {}).get("summary"), "name": name or c.url or "upload",
             "user": user, "now": now.get(c.sha256), "at": at} for c, lv, body, name, user, at in rows]


# ---------------------------------------------------------------------------- the report

def _exif(data: bytes, max_pixels: int) -> dict[str, Any]:
    """EXIF highlights a fact-checker looks at first; the file is parsed, never decoded."""
    from PIL import ExifTags, Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                return {}
            exif = img.getexif()
            info = {ExifTags.TAGS.get(k, str(k)): v for k, v in exif.items()}
            info.update({ExifTags.TAGS.get(k, str(k)): v for k, v in exif.get_ifd(ExifTags.IFD.Exif).items()})
            gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001 - a file Pillow cannot parse simply has no highlights
        return {}
    out: dict[str, Any] = {}
    for key, label in (("Make", "camera make"), ("Model", "camera model"), ("LensModel", "lens"),
                       ("DateTimeOriginal", "taken"), ("DateTime", "modified"), ("Software", "software"),
                       ("Artist", "artist"), ("Copyright", "copyright"), ("ImageDescription", "description")):
        value = info.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if value not in (None, ""):
            out[label] = str(value).strip("\x00 ")[:200]
    try:
        def deg(values: Any, ref: str) -> float:
            d, m, s = (float(v) for v in values)
            return round((d + m / 60 + s / 3600) * (-1 if ref in ("S", "W") else 1), 5)

        if 2 in gps and 4 in gps:
            out["GPS position"] = f"{deg(gps[2], gps.get(1, 'N'))}, {deg(gps[4], gps.get(3, 'E'))}"
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return out


def _worded_ingredients(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ingredient tree with each relationship and validation in words beside its raw value."""
    return [{**node, "relationship_words": wording.relationship_words(node.get("relationship")),
             "validation_words": wording.ingredient_state_words(node.get("validation")),
             "ingredients": _worded_ingredients(node.get("ingredients") or [])}
            for node in nodes or [] if isinstance(node, dict)]


def _worded_provenance(item: dict[str, Any]) -> None:
    """What the report shows of one C2PA finding in words (the raw codes stay in ``details`` for the toggles).

    c2pa-rs reports an untrusted signer as a failure code while the store's state stays "Valid" (intact,
    signer unknown to you): such codes are listed as what could not be confirmed, never as failed checks."""
    details = item["details"]
    failures = [f for f in details.get("failures") or [] if isinstance(f, dict)]
    item["state_words"] = wording.state_words(
        details.get("state"), refused=any(f.get("by") == "credence" for f in failures),
        unchecked=details.get("content_signer", True) is None) if details.get("state") else None
    item["actions"] = [{**a, "words": wording.action_words(a.get("action")),
                        "source_words": wording.source_type_words(a["digital_source_type"])
                        if a.get("digital_source_type") else None}
                       for a in details.get("actions") or [] if isinstance(a, dict)]
    item["failed"] = [f for f in failures if f.get("category") not in wording.UNCONFIRMED]
    item["unconfirmed"] = [f for f in failures if f.get("category") in wording.UNCONFIRMED]
    item["ingredients"] = _worded_ingredients(details.get("ingredients") or [])
    item["tree"] = _flatten_ingredients(item["ingredients"])


def _worded_declaration(item: dict[str, Any]) -> None:
    details = item.setdefault("details", {}) or {}
    item["source_words"] = wording.declaration_source_words(details.get("source"))
    item["rows"] = [{**d, "where": wording.field_words(d.get("field"))}
                    for d in details.get("declarations") or [] if isinstance(d, dict)]


def _flatten_ingredients(nodes: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    out = []
    for node in nodes or []:
        out.append({**{k: v for k, v in node.items() if k != "ingredients"}, "depth": depth})
        out.extend(_flatten_ingredients(node.get("ingredients") or [], depth + 1))
    return out


def _sha_ref(value: Any) -> str | None:
    """A stored image named by its sha256, as a string or as {"sha256": ...}."""
    if isinstance(value, dict):
        value = value.get("sha256")
    return value if isinstance(value, str) and is_sha256(value) else None


def _boxes(value: Any) -> list[dict[str, float]]:
    """Face boxes in image pixels from the shapes a detector may write: [x0, y0, x1, y1],
    {"box": [x0, y0, x1, y1]} or {"x", "y", "w", "h"} (a "score" or "confidence" is kept)."""
    out = []
    for raw in value if isinstance(value, list) else []:
        score = raw.get("score", raw.get("confidence")) if isinstance(raw, dict) else None
        box = raw.get("box") if isinstance(raw, dict) else raw
        try:
            if isinstance(raw, dict) and box is None:
                x, y, w, h = (float(raw[k]) for k in ("x", "y", "w", "h"))
            else:
                x0, y0, x1, y1 = (float(v) for v in box)
                x, y, w, h = x0, y0, x1 - x0, y1 - y0
        except (KeyError, TypeError, ValueError):
            continue
        if w > 0 and h > 0:
            out.append({"x": round(x, 1), "y": round(y, 1), "w": round(w, 1), "h": round(h, 1), "score": score})
    return out[:50]


def build_report(session: Session, svc: Services, sha256: str, *, signed_in: bool) -> dict[str, Any] | None:
    """Everything the report page, the JSON export and the PDF show, in one structure."""
    media = session.get(models.Media, sha256)
    if media is None:
        return None
    settings = svc.settings
    current = records.current_verdict(session, sha256, svc.detectors_stamp())
    body: dict[str, Any] | None = copy.deepcopy(current.body) if current else None
    evidence = list((body or {}).get("evidence") or [])
    history = records.verdict_history(session, sha256)

    provenance = [e for e in evidence if e["stage"] == Stage.C2PA and is_c2pa(e["kind"])]
    for item in provenance:
        item.setdefault("details", {})
        _worded_provenance(item)
    declarations = [e for e in evidence if is_ai_declaration(e["kind"])]
    for item in declarations:
        _worded_declaration(item)
    detection = [e for e in evidence if e["stage"].startswith(Stage.DETECT)]

    def exists(sha: str) -> bool:  # a thumbnail is shown only if it is stored
        return svc.store.path(sha).exists()

    video = video_view(evidence, exists)
    if video is not None:
        video["container_words"] = wording.container_words(video["facts"].get("container"))
        video["codec_words"] = wording.codec_words(video["facts"].get("codec"))
    if not any(e.get("score") is not None for e in detection):
        detection = []  # only notes (skipped, not configured): they go with the other findings
    # An image's heat map is made on demand (server/detection/heatmaps.py); pictures are for the signed-in only.
    heat_state = heatmaps.attach(svc, sha256, media.mime, detection) if signed_in else {"state": heatmaps.NONE}
    for item in detection:
        details = item.setdefault("details", {}) or {}
        heatmap = details.get("heatmap") or details.get("heat_map")
        item["heatmap_sha"] = _sha_ref(heatmap)
        crop = _boxes([heatmap.get("box")]) if isinstance(heatmap, dict) and heatmap.get("box") else []
        item["heatmap_box"] = crop[0] if crop else None
        item["boxes"] = _boxes(details.get("faces") or details.get("boxes"))
        threshold = (details.get("calibration") or {}).get("threshold")
        item["curve"] = frame_scores(details, (video or {}).get("facts", {}).get("duration_s"),
                                     threshold if isinstance(threshold, (int, float)) else None, exists)
    matches = []
    cited = banks.cited(session, evidence)
    disputes = banks.disputes_of(session, [e.id for _, e in cited if e is not None])
    for item, entry in cited:
        matched: dict[str, Any] | None = None
        if entry is not None:
            matched = banks.entry_dict(entry, session.get(models.Bank, entry.bank_id))
            # Who disputes it and why is what the peer published on its feed: shown to everyone.
            matched["disputes"] = disputes.get(entry.id, [])
            matched["image"] = bool(entry.sha256 and svc.store.path(entry.sha256).exists())
            if not signed_in:  # who reviewed, and with what note, is for the newsroom
                for key in ("submitted_by", "reviewed_by", "review_note", "sha256", "pdq", "phash", "source_url"):
                    matched[key] = None
                matched["image"] = False
        matches.append({"evidence": item, "entry": matched})
    recovered = [e for e in evidence if e["kind"] == Kind.CREDENTIALS_RECOVERED]
    for item in recovered:  # the original's signed thumbnail beside the copy, when it is stored here
        thumb = _sha_ref((item.get("details") or {}).get("thumbnail"))
        item["original_thumb"] = thumb if signed_in and thumb and exists(thumb) else None
    shown = {id(e) for e in provenance + declarations + detection + recovered} | {id(m["evidence"]) for m in matches}
    decoded = next((e["details"] for e in evidence if e["kind"] == Kind.DECODED), {})
    data = svc.store.get(sha256) if signed_in else None
    facts = {
        "sha256": sha256, "mime": media.mime, "format": decoded.get("format"), "size": media.size,
        "width": media.width or decoded.get("width"), "height": media.height or decoded.get("height"),
        "frames": decoded.get("frames"),
        "pdq": media.pdq, "pdq_quality": media.pdq_quality, "phash": media.phash,
        "exif": _exif(data, settings.max_pixels) if data else {},
    }
    sightings = None
    if settings.desk_sightings and signed_in:
        urls = records.sightings(session, sha256)
        sightings = {"first_seen": media.first_seen.isoformat(),
                     "urls": [{"url": u.url, "final_url": u.final_url, "fetched_at": u.fetched_at.isoformat()}
                              for u in urls]}
    strongest = [e for e in evidence if body and e.get("supports") == body.get("level")]
    return {
        "sha256": sha256,
        "viewable": bool(data) and media.mime in IMAGE_TYPES,
        "heatmap": heat_state,
        "verdict": body,
        "why": strongest,
        "panels": {
            "provenance": provenance, "declarations": declarations, "recovered": recovered, "matches": matches,
            "detection": detection,
            "other": [{**e, "stage_words": wording.stage_words(e["stage"])} for e in evidence
                      if id(e) not in shown and e["kind"] not in (Kind.DECODED, Kind.HASHES, Kind.KEYFRAMES)],
        },
        "video": video,
        "facts": facts,
        "sightings": sightings,
        "history": [{"id": v.id, "level": v.level, "pipeline_version": v.pipeline_version,
                     "created_at": v.created_at.isoformat()} for v in history],
        "checks": records.was_checked(session, sha256),
    }


# What the page needs beside the evidence (worded copies, layouts): the export keeps the evidence as recorded,
# its summaries in words and its raw codes in ``details``.
_PAGE_ONLY = frozenset({"tree", "state_words", "actions", "failed", "unconfirmed", "ingredients", "source_words",
                        "rows", "original_thumb"})


def export_json(report: dict[str, Any], permalink: str, generated_at: str) -> dict[str, Any]:
    """The report as a newsroom keeps it: no UI helpers, with where it came from and when."""
    panels = report["panels"]
    return {
        "format": "credence-report/1",
        "generated_at": generated_at,
        "permalink": permalink,
        "sha256": report["sha256"],
        "verdict": report["verdict"],
        "provenance": [{k: v for k, v in e.items() if k not in _PAGE_ONLY} for e in panels["provenance"]],
        "ai_declarations": [{k: v for k, v in e.items() if k not in _PAGE_ONLY} for e in panels["declarations"]],
        "recovered_credentials": [{k: v for k, v in e.items() if k not in _PAGE_ONLY} for e in panels["recovered"]],
        "bank_matches": [{"evidence": m["evidence"], "entry": {k: v for k, v in (m["entry"] or {}).items()
                                                                if k != "image"} or None}
                         for m in panels["matches"]],
        "detection": panels["detection"],
        "file": report["facts"],
        "video": report.get("video"),
        "sightings": report["sightings"],
        "verdict_history": report["history"],
    }


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
