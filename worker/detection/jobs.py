"""What the ``gpu`` queue does: detection over a batch of contents, then each one's final verdict.

The cpu analysis hands over ``(sha256, partial)``: the evidence, versions and timings it found
(provenance, banks, hashes). Here the stored bytes are read again (an image decoded, a video's keyframes
extracted), every configured detector runs over all their pixels at once (the frames of several videos
and the images of the batch in one forward pass per detector), and each content gets its verdict:
fused, recorded, its waiting checks completed, cached. A video's score per detector is the 90th
percentile of its keyframes' scores; only its worst frame gets a heat map. An image gets none here: its
heat map is made on demand when a person opens its report (``explain_stored``, server/detection/heatmaps.py),
as on CPU it costs several times the score. One unreadable content gets a detection error of its own and
never fails the batch. Idempotent like every job: a content that already has a verdict is only completed.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from server.checks import records
from server.checks.progress import DONE, END, START
from server.detection import heatmaps
from server.detection import manifest as mf
from server.config import Settings
from server.media_store import MediaStore
from server.media_types import VIDEO_TYPES, sniff
from server.verdicts import Evidence, Verdict, fuse
from server.vocabulary import DetectionState, Kind
from worker.detection import gate as detection
from worker.context import Context
from worker.settle import complete_from_record, detecting_key, interim, partial_of, record_final
from worker.stages.budget import Limits
from worker.stages.decode import DecodeError, decode
from worker.stages.thumbnails import store_keyframes

if TYPE_CHECKING:
    from worker.detection.detectors.runtime import Result, Runtime

log = logging.getLogger(__name__)


def rerun_note() -> Evidence:
    """The interim verdict's note while detection runs again after a retraction (dropped when it answers)."""
    return Evidence(stage=detection.STAGE, kind=Kind.DETECTION_RERUN_PENDING,
                    summary="Detection is running again: the known-fake match that had made it unnecessary is gone.",
                    details={"reason": "bank-entry-retracted"})


def interim_partial(body: dict[str, Any]) -> dict[str, Any]:
    """An interim verdict (detection pending) as the gpu task's partial: its evidence without the note."""
    return {"evidence": [e for e in body.get("evidence", []) if e.get("kind") != Kind.DETECTION_RERUN_PENDING],
            "versions": dict(body.get("versions") or {}), "timings": dict(body.get("timings") or {})}


def _finish(partial: dict[str, Any], sha256: str, add: list[Evidence], versions: dict[str, str],
            timings: dict[str, float]) -> Verdict:
    evidence = [Evidence.model_validate(e) for e in partial.get("evidence", [])] + add
    return fuse(evidence, sha256=sha256, versions={**partial.get("versions", {}), **versions},
                timings={**partial.get("timings", {}), **timings})


@dataclass
class Pixels:
    """One content's pixels for a batch: one decoded image, or a video's keyframes with their times."""

    video: bool
    images: list[Image.Image] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    problem: str | None = None  # why the pixels could not be read again; detection is unavailable for it

    @property
    def noun(self) -> str:
        return "video" if self.video else "image"


def read_pixels(data: bytes | None, settings: Settings) -> Pixels:
    """Decode an image or extract a video's keyframes, within the configured limits; never raises."""
    if data is None:
        return Pixels(video=False, problem="the stored copy of this file is missing")
    video = sniff(data[:512]) in VIDEO_TYPES
    try:
        if video:
            from worker.stages.keyframes import VideoLimits, extract

            _info, frames = extract(data, VideoLimits.from_settings(settings), vpdq=False)  # keyframes only
            return Pixels(video=True, images=[k.image for k in frames], times=[k.t for k in frames])
        return Pixels(video=False, images=[decode(data, settings.max_pixels).image])
    except Exception as exc:  # noqa: BLE001 - VideoError, DecodeError or a decoder's own: this item only
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {str(exc)[:200]}"
        return Pixels(video=video, problem=reason)


def _stored_pixels(ctx: Context, sha256: str) -> Pixels:
    try:
        data = ctx.store.get(sha256)
    except OSError as exc:
        return Pixels(video=False, problem=f"the stored copy of this file could not be read ({exc.strerror})")
    return read_pixels(data, ctx.settings)


def _worst_frame(rt: Runtime, per_frame: list[list[Result]]) -> int | None:
    """Index of the keyframe the heat-map detector scored highest (None: no such detector or score)."""
    best: tuple[float, int] | None = None
    for i, results in enumerate(per_frame):
        for r in results:
            if r.detector == rt.cam_detector and r.score is not None and (best is None or r.score > best[0]):
                best = (r.score, i)
    return None if best is None else best[1]


def run_detection(settings: Settings, contents: list[Pixels],
                  store: MediaStore | None) -> tuple[list[list[Evidence]], list[dict[str, str]], float]:
    """Evidence and versions per content, and the batch's wall time in ms.

    Every content's pixels go through each detector together; a content with a ``problem`` gets a
    detection error of its own, and if the detectors cannot be set up at all every content says why.
    """
    started = time.perf_counter()
    problems = {i: c for i, c in enumerate(contents) if c.problem}
    try:
        rt = detection.runtime(settings)
    except (mf.ManifestError, ImportError) as exc:  # ImportError: a worker without torch
        log.error("DETECTION MISCONFIGURED: %s", exc)
        ev = detection.unavailable_evidence("all", str(exc))
        state = {detection.STAGE: DetectionState.MISCONFIGURED, detection.VERSION_KEY: "misconfigured"}
        return [[ev] for _ in contents], [dict(state) for _ in contents], 0.0
    flat: list[Image.Image] = []
    spans: list[tuple[int, int]] = []
    for content in contents:
        spans.append((len(flat), len(flat) + len(content.images)))
        flat.extend(content.images)
    # Scores only: an image's heat map is made when a person opens its report (explain_stored), a video's
    # for its worst keyframe just below, while the keyframes are at hand.
    results = rt.detect(flat, [False] * len(flat)) if flat else []
    worst: dict[int, int] = {}  # video index -> its worst keyframe, for the one heat map
    for i, content in enumerate(contents):
        if content.video and i not in problems:
            at = _worst_frame(rt, results[spans[i][0]:spans[i][1]])
            if at is not None:
                worst[i] = at
    heats: dict[int, tuple[float, Result]] = {}
    if worst:
        try:
            explained = rt.explain([contents[i].images[at] for i, at in worst.items()])
            heats = {i: (contents[i].times[at], r) for (i, at), r in zip(worst.items(), explained) if r is not None}
        except Exception:  # noqa: BLE001 - an explanation is optional, the scores are not
            log.warning("heat maps of the worst video frames failed", exc_info=True)
    out: list[list[Evidence]] = []
    versions: list[dict[str, str]] = []
    for i, content in enumerate(contents):
        evidence: list[Evidence] = []
        item_versions: dict[str, str] = {}
        if i in problems:
            evidence.append(detection.unreadable_evidence(content.noun, content.problem or ""))
            item_versions = {detection.STAGE: DetectionState.ERROR,
                             detection.VERSION_KEY: detection.stamp_of(rt.entries)}
        elif content.video:
            per_frame = results[spans[i][0]:spans[i][1]]
            thumbs = store_keyframes(content.images, store if settings.keep_thumbnails else None)
            detection.apply_video(rt, content.times, per_frame, thumbs, heats.get(i), store, len(flat), evidence,
                                  item_versions)
        else:
            detection.apply(rt, results[spans[i][0]], store, len(flat), evidence, item_versions)
        out.append(evidence)
        versions.append(item_versions)
    return out, versions, (time.perf_counter() - started) * 1000


def preload(settings: Settings) -> bool:
    """Load the detectors and run them once, in a pool process that will run detection, before its first task.

    Otherwise the first batch each process runs after a start waits for torch and the models: measured on a
    page of 50 fresh photos through `credence serve` (two pool processes, 2026-12-07), the process that had
    not yet detected took 1.4 s over its first batch, and all verdicts came after 2.93 s instead of 2.19."""
    if not settings.detect:
        return False
    started = time.perf_counter()
    try:
        detection.runtime(settings).detect([Image.new("RGB", (64, 64), (128, 128, 128))], cams=[False])
    except Exception as exc:  # noqa: BLE001 - a task reports a broken setup; a worker must still start
        log.warning("detectors not preloaded (%s: %s); the first batch will load them", type(exc).__name__, exc)
        return False
    log.info("detectors loaded in %.2f s", time.perf_counter() - started)
    return True


def detect_batch(ctx: Context, items: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """One batch from the gpu queue; returns an outcome per sha256. Problems stay per item."""
    outcomes: dict[str, str] = {}
    todo: dict[str, dict[str, Any]] = {}
    for sha256, partial in items:
        if sha256 in todo or sha256 in outcomes:
            continue  # the same content twice in one batch (a redelivery): once is enough
        try:
            # One look, outside a transaction (a fresh content has no verdict yet); only a final one writes.
            with ctx.db.reading() as session:
                row = records.current_verdict(session, sha256, ctx.detectors_stamp())
            pending = row is not None and interim(row)
            if row is not None and not pending and complete_from_record(ctx, sha256):
                outcomes[sha256] = "cached"
                ctx.cache.release(detecting_key(sha256))
                continue
        except Exception:  # noqa: BLE001 - the sweeper brings it back
            log.exception("detect: cannot read the record for %s", sha256)
            outcomes[sha256] = "error"
            continue
        # An interim verdict (a re-match after a retraction) is newer than any message's partial.
        todo[sha256] = interim_partial(row.body) if pending else (partial or {})
    log.info("detect: batch of %d request(s), %d content(s) to analyse", len(items), len(todo))
    if not todo:
        return outcomes
    plog = ctx.progress
    for sha256 in todo:
        plog.add("media", sha256, detection.STAGE, START, batch=len(todo))
    contents = [_stored_pixels(ctx, sha256) for sha256 in todo]
    evidence, versions, ms = run_detection(ctx.settings, contents, ctx.store)
    per_item_ms = round(ms / len(todo), 3)
    for (sha256, partial), found, item_versions in zip(todo.items(), evidence, versions):
        plog.add("media", sha256, detection.STAGE, END, ms=per_item_ms)
        try:
            verdict = _finish(partial, sha256, found, item_versions, {detection.STAGE: per_item_ms})
            record_final(ctx, sha256, verdict)
            plog.add("media", sha256, "analysis", DONE, level=verdict.level.value)
            ctx.cache.release(detecting_key(sha256))
            outcomes[sha256] = verdict.level.value
        except Exception:  # noqa: BLE001 - one item's failure is not the batch's; the sweeper retries it
            log.exception("detect: recording the verdict for %s failed", sha256)
            outcomes[sha256] = "error"
    return outcomes


def detect_in_process(data: bytes, verdict: Verdict, settings: Settings, store: MediaStore | None = None) -> Verdict:
    """``credence check``: the gpu stage in this process, for one file whose cpu verdict is pending."""
    evidence, versions, ms = run_detection(settings, [read_pixels(data, settings)], store)
    return _finish(partial_of(verdict), verdict.sha256 or "", evidence[0], versions[0],
                   {detection.STAGE: round(ms, 3)})


def explain_stored(ctx: Context, sha256: str) -> str:
    """The ``credence.heatmap`` task: the heat map of a stored image, on demand (the desk's report page asks).

    Bounded like the forensic views: the pixel cap and decode budget before any pixel is decoded, the
    analysis's time limits on the task (worker/tasks.py). Any failure is written as the result, so the page
    says why instead of asking again; idempotent (a current result is kept)."""
    stamp = detection.configured_stamp(ctx.settings)

    def failed(why: str, outcome: str) -> str:
        heatmaps.write_result(ctx.store, sha256, stamp, {"error": why})
        return outcome

    try:
        if heatmaps.read_result(ctx.store, sha256, stamp) is not None:
            return "cached"
        data = ctx.store.get(sha256)
        if data is None:
            return failed("the stored copy of this image is gone", "missing")
        try:
            image = decode(data, ctx.settings.max_pixels, Limits.from_settings(ctx.settings)).image
        except DecodeError as exc:
            return failed(f"the image could not be decoded: {exc.reason}", "refused")
        try:
            rt = detection.runtime(ctx.settings)
        except (mf.ManifestError, ImportError) as exc:  # ImportError: a worker without torch
            return failed(f"the detectors could not be loaded: {str(exc)[:300]}", "unavailable")
        if not ctx.settings.detect_heatmaps or rt.cam_detector is None:
            return failed("no detector on this server makes heat maps", "unavailable")
        (result,) = rt.explain([image])
        if result is None or result.error or not result.heatmap_png:
            why = (result.error if result is not None else None) or "the detector gave no heat map"
            return failed(f"the heat map could not be made: {why[:300]}", "error")
        heatmap = detection.heatmap_ref(result, ctx.store)
        heatmaps.write_result(ctx.store, sha256, stamp, {"detector": result.detector, "heatmap": heatmap})
        return "done"
    except SoftTimeLimitExceeded:
        return failed(f"the heat map took longer than {ctx.settings.analysis_soft_limit_s} s and was stopped",
                      "timeout")
    finally:
        ctx.cache.release(f"heatmap:{sha256}")
