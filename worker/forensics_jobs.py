"""The forensic views of one stored image, on demand (the desk's report page asks; server/checks/forensics.py).

Bounded like the analysis: the same pixel cap and decode budget before any pixel is decoded, and the
analysis's time limits on the task (worker/tasks.py). A failure is written as the result, so the page says
why instead of waiting.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from server.checks.forensics import read_result, write_result
from worker.context import Context
from worker.stages import forensics
from worker.stages.budget import Limits
from worker.stages.decode import DecodeError, decode

log = logging.getLogger(__name__)


def _jpeg(data: bytes, image: Any) -> dict[str, Any] | None:
    tables = forensics.quant_tables(data)
    if not tables:
        return None
    estimate = forensics.estimate_quality(tables)
    quality = estimate.quality if estimate else None
    return {
        "tables": tables,
        "quality": quality,
        "standard": bool(estimate and estimate.standard),
        "mean_error": estimate.mean_error if estimate else None,
        "double_compression": forensics.double_compression_hint(forensics.compression_ghosts(image), quality),
    }


def compute_forensics(ctx: Context, sha256: str) -> str:
    """Compute and store the views of ``sha256``; idempotent (a current result is kept)."""
    try:
        if read_result(ctx.store, sha256) is not None:
            return "cached"
        data = ctx.store.get(sha256)
        if data is None:
            write_result(ctx.store, sha256, {"error": "the stored copy of this image is gone"})
            return "missing"
        started = time.perf_counter()
        try:
            decoded = decode(data, ctx.settings.max_pixels, Limits.from_settings(ctx.settings))
        except DecodeError as exc:
            write_result(ctx.store, sha256, {"error": f"the image could not be decoded: {exc.reason}"})
            return "refused"
        image = decoded.image
        jpeg = _jpeg(data, image)
        # Error levels speak when re-saved at the file's own quality (a fixed 90 hides a splice in a q70 file).
        ela_quality = min(max(jpeg["quality"], 50), 95) if jpeg and jpeg["quality"] else forensics.ELA_QUALITY
        ela = ctx.store.put(forensics.png_bytes(forensics.ela_image(image, ela_quality)))
        noise = ctx.store.put(forensics.png_bytes(forensics.noise_residual(image)))
        write_result(ctx.store, sha256, {
            "width": decoded.width, "height": decoded.height, "format": decoded.format,
            "views": {"ela": {"sha256": ela, "quality": ela_quality}, "noise": {"sha256": noise}},
            "jpeg": jpeg,
            "metadata": forensics.metadata_rows(data),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        })
        return "done"
    except SoftTimeLimitExceeded:
        limit = ctx.settings.analysis_soft_limit_s
        write_result(ctx.store, sha256, {"error": f"the views took longer than {limit} s and were stopped"})
        return "timeout"
    finally:
        ctx.cache.release(f"forensics:{sha256}")
