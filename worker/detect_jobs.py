"""What the ``gpu`` queue does: detection over a batch of contents, then each one's final verdict.

The cpu analysis hands over ``(sha256, partial)``: the evidence, versions and timings it found
(provenance, banks, hashes). Here the stored bytes are decoded again, every configured detector runs
over the whole batch at once, and each content gets its verdict: fused, recorded, its waiting checks
completed, cached. Idempotent like every job: a content that already has a verdict is only completed.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from PIL import Image

from server import records
from server.verdicts import Evidence, Verdict, fuse
from worker import detection
from worker.context import Context
from worker.detectors import manifest as mf
from worker.stages.decode import DecodeError, decode

log = logging.getLogger(__name__)


def detecting_key(sha256: str) -> str:
    return f"detecting:{sha256}"


def partial_of(verdict: Verdict) -> dict[str, Any]:
    """What the cpu stage found, as JSON for the gpu task's message."""
    return {"evidence": [e.model_dump(mode="json") for e in verdict.evidence],
            "versions": dict(verdict.versions), "timings": dict(verdict.timings)}


def _finish(partial: dict[str, Any], sha256: str, add: list[Evidence], versions: dict[str, str],
            timings: dict[str, float]) -> Verdict:
    evidence = [Evidence.model_validate(e) for e in partial.get("evidence", [])] + add
    return fuse(evidence, sha256=sha256, versions={**partial.get("versions", {}), **versions},
                timings={**partial.get("timings", {}), **timings})


def run_detection(settings, images: list[Image.Image | None], store) -> tuple[list[list[Evidence]], dict[str, str], float]:
    """Evidence per image, the versions to record, and the batch's wall time in ms."""
    started = time.perf_counter()
    versions: dict[str, str] = {}
    try:
        rt = detection.runtime(settings)
    except mf.ManifestError as exc:
        log.error("DETECTION MISCONFIGURED: %s", exc)
        ev = detection.unavailable_evidence("all", str(exc))
        return [[ev] for _ in images], {detection.STAGE: "misconfigured"}, 0.0
    results = rt.detect(images)
    out: list[list[Evidence]] = []
    for per_image in results:
        evidence: list[Evidence] = []
        detection.apply(rt, per_image, store, len(images), evidence, versions)
        out.append(evidence)
    return out, versions, (time.perf_counter() - started) * 1000


def detect_batch(ctx: Context, items: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """One batch from the gpu queue; returns an outcome per sha256. Problems stay per item."""
    from worker.jobs import _complete_from_record

    outcomes: dict[str, str] = {}
    todo: dict[str, dict[str, Any]] = {}
    for sha256, partial in items:
        if sha256 in todo or sha256 in outcomes:
            continue  # the same content twice in one batch (a redelivery): once is enough
        try:
            if _complete_from_record(ctx, sha256):
                outcomes[sha256] = "cached"
                ctx.cache.release(detecting_key(sha256))
                continue
        except Exception:  # noqa: BLE001 - the sweeper brings it back
            log.exception("detect: cannot read the record for %s", sha256)
            outcomes[sha256] = "error"
            continue
        todo[sha256] = partial or {}
    log.info("detect: batch of %d request(s), %d content(s) to analyse", len(items), len(todo))
    if not todo:
        return outcomes
    images: list[Image.Image | None] = []
    problems: dict[str, str] = {}
    for sha256 in todo:
        data = ctx.store.get(sha256)
        try:
            if data is None:
                raise DecodeError("the stored copy of this file is missing", "missing-bytes")
            images.append(decode(data, ctx.settings.max_pixels).image)
        except DecodeError as exc:
            images.append(None)
            problems[sha256] = exc.reason
    evidence, versions, ms = run_detection(ctx.settings, images, ctx.store)
    per_item_ms = round(ms / len(todo), 3)
    for (sha256, partial), found in zip(todo.items(), evidence):
        try:
            item_versions = dict(versions)
            if sha256 in problems:
                found = [Evidence(stage=detection.STAGE, kind="stage-error",
                                  summary=f"Detection could not read the image again ({problems[sha256]}).",
                                  details={"error": problems[sha256]})]
                item_versions = {detection.STAGE: "error"}
            verdict = _finish(partial, sha256, found, item_versions, {detection.STAGE: per_item_ms})
            with ctx.db.session() as session:
                row = records.record_verdict(session, verdict)
                records.complete_checks_for(session, sha256, row.id)
            ctx.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
            ctx.cache.release(detecting_key(sha256))
            outcomes[sha256] = verdict.level.value
        except Exception:  # noqa: BLE001 - one item's failure is not the batch's; the sweeper retries it
            log.exception("detect: recording the verdict for %s failed", sha256)
            outcomes[sha256] = "error"
    return outcomes


def detect_in_process(data: bytes, verdict: Verdict, settings, store=None) -> Verdict:
    """``credence check``: the gpu stage in this process, for one file whose cpu verdict is pending."""
    try:
        images: list[Image.Image | None] = [decode(data, settings.max_pixels).image]
    except DecodeError:
        images = [None]
    evidence, versions, ms = run_detection(settings, images, store)
    return _finish(partial_of(verdict), verdict.sha256 or "", evidence[0], versions, {detection.STAGE: round(ms, 3)})
