"""Keyframe thumbnails for the desk, made in one place.

The cpu stage's filmstrip and the gpu stage's worst-frames strip store thumbnails of the same keyframes;
made by this one function their bytes, and so their media-store sha256, are the same: one stored copy, and
the desk can match a scored frame to its filmstrip frame.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from server.media_store import MediaStore

log = logging.getLogger(__name__)
THUMB_SIDE = 240  # long side in pixels: the desk's filmstrip


def keyframe_jpeg(image: Image.Image) -> bytes:
    """A small JPEG of a keyframe (the image itself is left as it is)."""
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def store_keyframes(images: Sequence[Image.Image], store: MediaStore | None) -> list[str | None]:
    """Each keyframe's thumbnail sha256 in the media store (verdicts hold only that), in order.

    None for every frame when no store is given (thumbnails are not kept), and for a frame whose
    thumbnail failed: a thumbnail is a convenience, and must never cost the hashes or scores beside it.
    """
    if store is None:
        return [None] * len(images)
    out: list[str | None] = []
    for image in images:
        try:
            out.append(store.put(keyframe_jpeg(image)))
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("keyframe thumbnail failed", exc_info=True)
            out.append(None)
    return out
