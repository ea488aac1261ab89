"""Detector heat maps, made on demand (issue 17): when a person opens a report, not for every image of every page.

A Grad-CAM heat map costs a backward pass and a PNG per image, several times the detector's own forward pass
on CPU, and only the desk (the report page, its PDF) ever shows one. So the fresh path scores images without
one, and the desk asks a worker for it (``credence.heatmap`` on the ``gpu`` queue, where the detectors are
loaded: worker/detection/jobs.py ``explain_stored``) the first time a signed-in person opens the report of an
image that a heat-map detector scored. The pattern and the bounds are the forensic views'
(server/checks/forensics.py): the same pixel cap and decode budget in the job, the analysis's time limits on
the task, one request at a time per image, a failure written as the result.

The heat map PNG is stored in the media store like any other bytes (by its own sha256, evictable: it is made
again on request); the result that names it is a small JSON file per content under ``<media>/heatmaps/``,
which the store's own walk (two-letter folders) never sees. A result made with other detectors (another
detectors stamp) is as good as missing. A video's one heat map (its worst keyframe) is still made with its
verdict, as the keyframes are at hand only then.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server import models
from server.media_store import MediaStore, is_sha256
from server.media_types import IMAGE_TYPES
from server.queue import enqueue_heatmap
from server.vocabulary import Kind

if TYPE_CHECKING:
    from server.services import Services

VERSION = "1"  # results of another version are made again
FOLDER = "heatmaps"
# What the report says about the heat map of an image a heat-map detector may explain.
READY, PENDING, FAILED, NONE = "ready", "pending", "failed", "none"


def result_path(store: MediaStore, sha256: str) -> Path:
    if not is_sha256(sha256):
        raise ValueError("not a sha256 hex digest")
    return store.root / FOLDER / f"{sha256}.json"


def write_result(store: MediaStore, sha256: str, stamp: str, result: dict[str, Any]) -> None:
    """Replace the result whole (written beside it, then renamed in): a reader never sees half of one.

    ``stamp`` is the detectors stamp the heat map was made with; ``result`` is ``{"detector", "heatmap"}``
    or ``{"error"}``."""
    path = result_path(store, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**result, "version": VERSION, "sha256": sha256, "stamp": stamp}, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(store: MediaStore, sha256: str, stamp: str) -> dict[str, Any] | None:
    """The current result for these detectors, if its picture is still stored (else it is as good as missing)."""
    try:
        result = json.loads(result_path(store, sha256).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("version") != VERSION or result.get("stamp") != stamp:
        return None
    heatmap = result.get("heatmap")
    if isinstance(heatmap, dict) and not (is_sha256(str(heatmap.get("sha256", "")))
                                          and store.path(heatmap["sha256"]).exists()):
        return None
    return result


def _explainable(item: dict[str, Any]) -> bool:
    """A whole-image detector's score on a still image, without a heat map of its own."""
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    return (item.get("kind") == Kind.SYNTHETIC_SCORE and item.get("score") is not None
            and not details.get("heatmap") and "keyframes" not in details)


def attach(svc: Services, sha256: str, mime: str | None, detection: list[dict[str, Any]]) -> dict[str, str]:
    """Put an on-demand heat map into its detector's evidence (``details.heatmap``, as the fresh path once
    did), so the report, its JSON export and its PDF show it; returns the heat map's state for the report:
    ``{"state": "ready" | "pending" | "failed" | "none", "reason": why it failed}``; ``pending`` means wanted
    and not made yet (``request`` asks for it)."""
    wanting = [item for item in detection if _explainable(item)]
    if not wanting or not svc.settings.detect_heatmaps or mime not in IMAGE_TYPES:
        return {"state": NONE}
    result = read_result(svc.store, sha256, svc.detectors_stamp())
    if result is None:
        return {"state": PENDING}
    if result.get("error"):
        return {"state": FAILED, "reason": str(result["error"])}
    for item in wanting:
        details = item.get("details")
        if isinstance(details, dict) and details.get("detector") == result.get("detector"):
            details["heatmap"] = result["heatmap"]
            return {"state": READY}
    return {"state": NONE}  # the heat-map detector gave no score here (another one did)


def refusal(svc: Services, sha256: str) -> str | None:
    """Why no heat map can be made for this content (None: it can): not an image, over the pixel cap, gone."""
    with svc.db.session() as session:
        media = session.get(models.Media, sha256)
        mime, width, height = (media.mime, media.width, media.height) if media is not None else (None, None, None)
    if media is None or mime not in IMAGE_TYPES:
        return "heat maps are made for still images only"
    if width and height and width * height > svc.settings.max_pixels:
        return f"the image is {width} x {height} pixels, over the {svc.settings.max_pixels:,} pixel cap"
    if not svc.store.path(sha256).exists():
        return "the stored copy of this image is gone"
    return None


def request(svc: Services, sha256: str) -> str:
    """Ask a worker for the heat map unless it is ready or already asked for: ``ready``, ``pending`` or why not.

    One request at a time per image (with Redis; without it a second visit only makes the same again, and
    the job keeps a current result)."""
    why = refusal(svc, sha256)
    if why is not None:
        return why
    if read_result(svc.store, sha256, svc.detectors_stamp()) is not None:
        return READY
    if svc.cache.claim(f"heatmap:{sha256}", "desk", ttl_s=svc.settings.analysis_hard_limit_s + 30) is None:
        svc.enqueue(enqueue_heatmap, sha256)
    return PENDING
