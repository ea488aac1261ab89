"""Forensic views of a stored image, computed on demand by a worker (``credence.forensics``) and kept beside
the media store: what may be asked for, where the result lives, and how each view is read.

The views' pictures (error levels, noise residual) are stored in the media store like any other bytes (by
their own sha256, evictable: they are made again on request); the result that names them is a small JSON
file per content under ``<media>/forensics/``, which the store's own walk (two-letter folders) never sees.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server import models
from server.errors import ApiError
from server.media_store import MediaStore, is_sha256
from server.media_types import IMAGE_TYPES
from server.queue import enqueue_forensics

if TYPE_CHECKING:
    from server.services import Services

VERSION = "1"  # results of another version are made again
FOLDER = "forensics"

# How to read each view: shown beside it, always, because none of them is a verdict.
HOW_TO_READ = {
    "ela": "Error level analysis re-saves the image as a JPEG and shows how much each pixel changed (brighter: more). "
           "Areas edited or pasted in after the last save often stand out from similar areas around them; edges, "
           "text and fine texture are always brighter, and a file re-saved many times is dark everywhere.",
    "noise": "The noise residual is the image minus a smoothed copy of itself: a camera leaves fine grain evenly "
             "over the picture, so a patch whose grain is smoother, coarser or differently patterned than similar "
             "areas nearby may come from elsewhere; flat skies and heavy compression are naturally quiet.",
    "jpeg": "A JPEG's quantisation tables record how strongly it was last compressed: tables exactly like the "
            "libjpeg standard give the quality setting; others are a camera's or an application's own. A dip in "
            "the re-save curve below the last quality hints that the file was saved at that lower quality before "
            "(edited and saved again): a hint to look closer, not proof.",
    "metadata": "Every metadata field in the file as written. Any of it can be edited or removed by anyone: "
                "fields that agree with each other and with the picture support its story, missing fields prove "
                "nothing (most platforms strip them), and contradictions are worth a question.",
}


def result_path(store: MediaStore, sha256: str) -> Path:
    if not is_sha256(sha256):
        raise ValueError("not a sha256 hex digest")
    return store.root / FOLDER / f"{sha256}.json"


def write_result(store: MediaStore, sha256: str, result: dict[str, Any]) -> None:
    """Replace the result whole (written beside it, then renamed in): a reader never sees half of one."""
    path = result_path(store, sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**result, "version": VERSION, "sha256": sha256}, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_result(store: MediaStore, sha256: str) -> dict[str, Any] | None:
    """The current result, if its pictures are still stored (else it is as good as missing)."""
    try:
        result = json.loads(result_path(store, sha256).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("version") != VERSION:
        return None
    for view in (result.get("views") or {}).values():
        if isinstance(view, dict) and view.get("sha256") and not store.path(view["sha256"]).exists():
            return None
    return result


def examinable(svc: Services, sha256: str) -> None:
    """Refuse what the views cannot or must not be computed for: an unknown content, one that is not an image,
    one whose bytes are gone, or one over the pixel cap (raises ApiError)."""
    if not is_sha256(sha256):
        raise ApiError(404, "a report address ends in the content's SHA-256 (64 hex characters)")
    with svc.db.session() as session:
        media = session.get(models.Media, sha256)
        mime, width, height = (media.mime, media.width, media.height) if media is not None else (None, None, None)
    if media is None:
        raise ApiError(404, "this instance has not checked any media with this SHA-256")
    if mime not in IMAGE_TYPES:
        raise ApiError(400, "forensic views are made for still images only")
    if width and height and width * height > svc.settings.max_pixels:
        raise ApiError(400, f"the image is {width} x {height} pixels, over the {svc.settings.max_pixels:,} pixel cap")
    if not svc.store.path(sha256).exists():
        raise ApiError(404, "the stored copy of this image is gone: check it again to see its forensic views")


def request_views(svc: Services, sha256: str) -> str:
    """Ask a worker for the views unless they are ready or already asked for: "ready" or "pending"."""
    examinable(svc, sha256)
    if read_result(svc.store, sha256) is not None:
        return "ready"
    # One request at a time per image (with Redis; without it a second click only computes the same again).
    if svc.cache.claim(f"forensics:{sha256}", "desk", ttl_s=svc.settings.analysis_hard_limit_s + 30) is None:
        svc.enqueue(enqueue_forensics, sha256)
    return "pending"


def views_of(svc: Services, sha256: str) -> dict[str, Any]:
    """What the report shows: {"state": "ready", ...result, "how": HOW_TO_READ} or {"state": "none"}."""
    examinable(svc, sha256)
    result = read_result(svc.store, sha256)
    if result is None:
        return {"state": "none"}
    return {**result, "state": "failed" if result.get("error") else "ready", "how": HOW_TO_READ}
