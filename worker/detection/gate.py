"""The detection stage's place in the pipeline, torch-free: when it runs, and the evidence it leaves.

The cpu ruleset ends with the gate: decisive evidence (known fake, broken credentials, declared AI)
means detection is skipped and the evidence says so; detection turned off, or no models directory,
means it cannot run and the evidence says that; otherwise the verdict is marked
``versions["detect"] = "pending"`` and the worker hands the item (an image, or a video whose keyframes
the gpu queue reads again) to the ``gpu`` queue, which adds the detectors' evidence and records the verdict.

``versions["detectors"]`` records which detector configuration a verdict depends on (a digest of the
manifest entries in use, or ``off`` / ``none`` / ``misconfigured``), so a verdict made with other
models can be recognised and recomputed on its next request (``is_current``).

A detector's score earns a badge only when its manifest entry's validation record meets the bar
(``detector_manifest.meets_bar``: leave-source-out ROC-AUC >= 0.80, <= 1% false positives at its
threshold on >= 300 real photos from several sources). Such a detector's scores map to two bands: at or
above its calibrated threshold it argues ``likely-synthetic``; below it the score is reported as a
number in the ``inconclusive`` band, never as a verdict (and never as a sign of authenticity). A
detector below the bar, or without a record, still runs, but every score it gives is in the
``experimental`` band: reported with its measured numbers, arguing no level.

Trusted credentials that record a camera capture (``digitalSourceType`` digitalCapture) skip detection:
a signed, trusted statement of how the picture was made proves more than any detector can, and fusion
would rank it above ``likely-synthetic`` anyway.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from server.detection import manifest as mf
from server.config import Settings
from server.media_types import VIDEO_TYPES
from server.verdicts import BADGES, Evidence, Level, decisive_level, detection_pending
from server.vocabulary import DetectionState, Kind, Stage
from server.wording import source_type_words

if TYPE_CHECKING:
    from server.media_store import MediaStore
    from worker.detection.detectors.runtime import Result, Runtime
    from worker.pipeline.item import Item

log = logging.getLogger(__name__)
STAGE = Stage.DETECT
VERSION_KEY = mf.VERSION_KEY
AGGREGATE = "p90"
AGGREGATE_Q = 0.9
WORST_FRAMES = 3


# Which detectors a verdict depends on: torch-free and stdlib-only in the manifest module, so the API
# process can ask too (it decides whether a stored verdict is still current).
models_path = mf.models_path
stamp_of = mf.stamp_of
configured_stamp = mf.configured_stamp
is_current = mf.is_current


def check_manifest(settings: Settings) -> str | None:
    """None when the configured manifest is usable, else why not (cheap: one small JSON file)."""
    folder = models_path(settings)
    if folder is None:
        return "no models directory is configured"
    try:
        mf.select(mf.read_manifest(folder), settings.detectors)
    except mf.ManifestError as exc:
        return str(exc)
    return None


def has_pixels(item: Item) -> bool:
    """An image that decoded, or a video whose keyframes were read: something detectors can look at."""
    return item.decoded is not None or bool(item.keyframes)


CAPTURE_SOURCE_TYPE = "digitalCapture"  # IPTC digitalSourceType of an original camera capture


def _is_capture(source_type: Any) -> bool:
    """An IPTC term, written as its full URI or as the bare term."""
    text = str(source_type or "").strip().rstrip("/")
    return text == CAPTURE_SOURCE_TYPE or text.endswith(f"/{CAPTURE_SOURCE_TYPE}")


def trusted_capture(evidence: list[Evidence]) -> Evidence | None:
    """The trusted C2PA finding whose active manifest records a camera capture, if any.

    Only the library's Trusted state that our own signer check also passed becomes ``c2pa-trusted``
    (VERIFIED), so an untrusted, expired or purpose-refused signer never skips detection.
    """
    for item in evidence:
        if item.kind != Kind.C2PA_TRUSTED or item.supports != Level.VERIFIED:
            continue
        actions = item.details.get("actions") if isinstance(item.details.get("actions"), list) else []
        if any(isinstance(a, dict) and _is_capture(a.get("digital_source_type")) for a in actions):
            return item
    return None


# configured stamp -> (why, in words; details reason; versions[STAGE])
_NOT_RUN = {"off": ("synthetic-media detection is turned off", "turned-off", DetectionState.OFF),
            "none": ("no synthetic-media detector is configured", "not-configured", DetectionState.NOT_CONFIGURED)}


def gate(item: Item) -> None:
    """The last cpu rule: say why detection will not run, or mark it pending for the gpu queue."""
    settings = item.settings
    noun = "video" if item.mime in VIDEO_TYPES else "image"
    level = decisive_level(item.evidence)
    if level is not None:
        item.evidence.append(Evidence(
            stage=STAGE, kind=Kind.DETECTION_SKIPPED,
            summary=f"Detection was skipped: the {noun} is already \"{BADGES[level][1]}\" on stronger evidence.",
            details={"reason": "decisive", "level": level.value}))
        item.versions[STAGE] = DetectionState.SKIPPED
        return
    capture = trusted_capture(item.evidence)
    if capture is not None:
        signer = capture.details.get("signer") if isinstance(capture.details.get("signer"), dict) else {}
        who = signer.get("organisation") or signer.get("common_name") or "a signer on your trust list"
        item.evidence.append(Evidence(
            stage=STAGE, kind=Kind.DETECTION_SKIPPED,
            summary=f"Detection was skipped: trusted Content Credentials signed by {who} record this {noun} as "
                    f"{source_type_words(CAPTURE_SOURCE_TYPE)}, unchanged since signing. A detector's score "
                    "cannot outweigh a trusted signer's statement.",
            details={"reason": "trusted-capture", "level": Level.VERIFIED.value,
                     "digital_source_type": CAPTURE_SOURCE_TYPE}))
        item.versions[STAGE] = DetectionState.SKIPPED
        return
    if not has_pixels(item):
        item.versions[STAGE] = DetectionState.NOT_RUN  # nothing to look at; the verdict already says why
        return
    stamp = configured_stamp(settings)
    item.versions[VERSION_KEY] = stamp
    if stamp in _NOT_RUN:
        words, reason, state = _NOT_RUN[stamp]
        item.evidence.append(Evidence(stage=STAGE, kind=Kind.DETECTION_NOT_RUN,
                                      summary=f"Detection did not run: {words} on this server.",
                                      details={"reason": reason}))
        item.versions[STAGE] = state
        return
    problem = check_manifest(settings)
    if problem:
        log.error("DETECTION MISCONFIGURED: %s", problem)
        item.evidence.append(Evidence(
            stage=STAGE, kind=Kind.DETECTOR_UNAVAILABLE,
            summary="Detection did not run: the detector configuration is broken (an operator must fix it).",
            details={"reason": problem[:500]}))
        item.versions[STAGE] = DetectionState.MISCONFIGURED
        item.versions[VERSION_KEY] = "misconfigured"
        return
    item.versions[STAGE] = DetectionState.PENDING


is_pending = detection_pending


def _band(score: float, entry: mf.Entry) -> str:
    """``experimental`` for a detector below the validation bar, whatever its score; else by threshold."""
    if not mf.meets_bar(entry):  # the bar includes a calibrated threshold
        return "experimental"
    return "likely-synthetic" if score >= entry.threshold else "inconclusive"


def _measured(entry: mf.Entry) -> str:
    """The numbers of a validation record that falls short, in words ("" when there are none)."""
    record = entry.validation if isinstance(entry.validation, dict) else {}
    parts = []
    auc = mf.number(record, "roc_auc")
    if auc is not None:
        parts.append(f"ROC-AUC {auc:.2f}")
    fpr, reals = mf.number(record, "fpr_at_threshold"), mf.number(record, "reals")
    sources = record.get("real_sources") if isinstance(record.get("real_sources"), list) else []
    if fpr is not None:
        on = f" on {int(reals)} real photos" if reals is not None else ""
        src = f" from {len(sources)} source{'s' if len(sources) != 1 else ''}" if sources and on else ""
        parts.append(f"{fpr:.1%} false positives at its threshold{on}{src}")
    return " and ".join(parts)


def validation_case(entry: mf.Entry) -> dict[str, Any]:
    """Which case applies to a detector's score, for the evidence: validated, or experimental and why."""
    record = entry.validation if isinstance(entry.validation, dict) else {}
    keep = ("method", "roc_auc", "roc_auc_ci95", "threshold", "threshold_supported", "fpr_at_threshold",
            "fpr_held_out_sources", "tpr_at_threshold", "reals", "fakes", "real_sources", "held_out_sources",
            "data_digest", "date")
    out: dict[str, Any] = {"meets_bar": mf.meets_bar(entry), "bar": mf.BAR_WORDS,
                           "record": {k: record[k] for k in keep if k in record} if record else None}
    if not out["meets_bar"]:
        out["shortfalls"] = mf.bar_shortfalls(entry)
    return out


def _wording(name: str, score: float, entry: mf.Entry, band: str, what: str, noun: str = "image",
             how: str = "") -> str:
    t = entry.threshold
    said = f"{what} scores {score:.2f} on the {name} detector{how}"
    if band == "experimental":
        measured = _measured(entry)
        if not entry.validation:
            case = "it has no validation record on images from sources it was not trained on"
        elif measured:
            case = f"its validation on sources it was not trained on measured {measured}, below the bar"
        else:
            case = "its validation record does not meet the bar"
        return (f"{said}. The {name} detector is experimental ({case}; the bar is {mf.BAR_WORDS}), so its score is "
                f"reported as a number only and says nothing either way about the {noun}.")
    if band == "likely-synthetic":
        record = entry.validation
        return (f"{said}, at or above its threshold {t:.2f}, validated on {int(record['reals'])} real photos from "
                f"sources it was not trained on ({float(record['fpr_at_threshold']):.1%} false positives, "
                f"ROC-AUC {float(record['roc_auc']):.2f}): likely synthetic.")
    return (f"{said}, below its threshold {t:.2f}: inconclusive. "
            f"A low score does not show that the {noun} is authentic.")


def _base(entry: mf.Entry, batch_size: int) -> dict[str, Any]:
    return {"detector": entry.name, "architecture": entry.architecture, "version": entry.version_tag(),
            "licence": entry.licence, "batch_size": batch_size, "validation": validation_case(entry)}


def _calibration(entry: mf.Entry) -> dict[str, Any]:
    return {k: entry.calibration[k] for k in ("threshold", "max_fpr", "calibration_reals") if k in entry.calibration}


def heatmap_ref(result: Result | None, store: MediaStore | None) -> dict[str, Any] | None:
    """A heat map as evidence names it: its PNG put in the media store, by sha256, with where it lies."""
    if result is None or not result.heatmap_png or store is None:
        return None
    return {"sha256": store.put(result.heatmap_png), "format": "png", **result.heatmap}


def evidence_for(result: Result, entry: mf.Entry, store: MediaStore | None, batch_size: int) -> Evidence:
    base = _base(entry, batch_size)
    if result.error:
        return Evidence(stage=STAGE, kind=Kind.STAGE_ERROR,
                        summary=f"The {entry.name} detector failed on this image and was skipped.",
                        details={**base, "error": result.error[:500]})
    calibration = _calibration(entry)
    if result.kind == "face":
        if result.score is None:
            return Evidence(stage=STAGE, kind=Kind.NO_FACE,
                            summary=f"No face was found, so the {entry.name} face-manipulation detector did not run.",
                            details={**base, "faces": [], "face_detector": "mtcnn (facenet-pytorch weights)"})
        band = _band(result.score, entry)
        n = len(result.faces)
        what = f"The strongest of {n} faces" if n > 1 else "The face"
        return Evidence(
            stage=STAGE, kind=Kind.FACE_MANIPULATION_SCORE, score=round(result.score, 4),
            supports=Level.LIKELY_SYNTHETIC if band == "likely-synthetic" else None,
            summary=_wording(entry.name, result.score, entry, band, what),
            details={**base, "band": band, "calibration": calibration, "faces": result.faces,
                     "face_detector": "mtcnn (facenet-pytorch weights)"})
    band = _band(result.score, entry)
    details: dict[str, Any] = {**base, "band": band, "calibration": calibration, "crop": list(result.crop_box or [])}
    heatmap = heatmap_ref(result, store)
    if heatmap:
        details["heatmap"] = heatmap
    return Evidence(
        stage=STAGE, kind=Kind.SYNTHETIC_SCORE, score=round(result.score, 4),
        supports=Level.LIKELY_SYNTHETIC if band == "likely-synthetic" else None,
        summary=_wording(entry.name, result.score, entry, band, "The image"),
        details=details)


def aggregate(scores: list[float]) -> float:
    """A video's score from its keyframes': the 90th percentile (linear interpolation).

    A high quantile rather than the mean, so a few manipulated scenes are not averaged away; rather
    than the maximum, so one odd frame (a fade, a title card) does not decide alone.
    """
    return float(np.quantile(np.asarray(scores, dtype=np.float64), AGGREGATE_Q))


def video_evidence(entry: mf.Entry, frames: list[tuple[float, Result]], thumbs: list[str | None],
                   heat: tuple[float, Result] | None, store: MediaStore | None, batch_size: int) -> Evidence:
    """One detector's evidence for a video from its per-keyframe results (same shape as an image's).

    ``frames`` pairs each keyframe's time with this detector's result on it; ``thumbs`` holds each
    keyframe's thumbnail sha256 (or None); ``heat`` is the worst frame's time and its heat-map result,
    if any. Face detectors score a frame by its strongest face; frames without a face are listed apart
    and left out of the aggregate.
    """
    base = {**_base(entry, batch_size), "keyframes": len(frames)}
    face = any(r.kind == "face" for _t, r in frames)
    scored: list[dict[str, Any]] = []
    errors: list[float] = []
    faceless: list[float] = []
    crops: dict[float, list[int]] = {}
    for (t, result), thumb in zip(frames, thumbs):
        t = round(float(t), 3)
        if result.error:
            errors.append(t)
        elif result.score is None:
            faceless.append(t)
        else:
            scored.append({"t": t, "score": round(float(result.score), 4), "thumb": thumb})
            crops[t] = list(result.crop_box or [])
    if errors:
        base["frame_errors"] = errors
    if not scored:
        if errors and not faceless:
            return Evidence(stage=STAGE, kind=Kind.STAGE_ERROR,
                            summary=f"The {entry.name} detector failed on every keyframe of this video "
                                    "and was skipped.",
                            details={**base, "error": next(r.error for _t, r in frames if r.error)[:500]})
        return Evidence(stage=STAGE, kind=Kind.NO_FACE,
                        summary=f"No face was found in any keyframe, so the {entry.name} face-manipulation "
                                "detector did not run.",
                        details={**base, "frames": [], "frames_without_face": faceless,
                                 "face_detector": "mtcnn (facenet-pytorch weights)"})
    score = round(aggregate([f["score"] for f in scored]), 4)
    band = _band(score, entry)
    worst = sorted(scored, key=lambda f: (-f["score"], f["t"]))[:WORST_FRAMES]
    n = len(scored)
    how = (f" (90th percentile of {n} keyframe{'s' if n > 1 else ''}"
           f"{' with a face, by the strongest face in each' if face else ''}; highest {worst[0]['score']:.2f} "
           f"at {worst[0]['t']:.1f} s)")
    details: dict[str, Any] = {**base, "band": band, "calibration": _calibration(entry), "frames": scored,
                               "aggregate": AGGREGATE, "worst": [f["t"] for f in worst]}
    if face:
        details["frames_without_face"] = faceless
        details["face_detector"] = "mtcnn (facenet-pytorch weights)"
    else:
        details["crop"] = crops[worst[0]["t"]]
    heatmap = heatmap_ref(heat[1], store) if heat else None
    if heat and heatmap:
        details["heatmap"] = {**heatmap, "t": round(float(heat[0]), 3)}
    return Evidence(
        stage=STAGE, kind=Kind.FACE_MANIPULATION_SCORE if face else Kind.SYNTHETIC_SCORE, score=score,
        supports=Level.LIKELY_SYNTHETIC if band == "likely-synthetic" else None,
        summary=_wording(entry.name, score, entry, band, "The video", "video", how),
        details=details)


def unavailable_evidence(name: str, reason: str) -> Evidence:
    return Evidence(stage=STAGE, kind=Kind.DETECTOR_UNAVAILABLE,
                    summary=f"The {name} detector could not run on this server ({reason[:200]}).",
                    details={"detector": name, "reason": reason[:500]})


def unreadable_evidence(noun: str, reason: str) -> Evidence:
    """The gpu stage could not read a content's pixels again: detection is unavailable for it alone."""
    return Evidence(stage=STAGE, kind=Kind.STAGE_ERROR,
                    summary=f"Detection could not read the {noun} again ({reason}).",
                    details={"error": reason})


def runtime(settings: Settings) -> Runtime:
    from worker.detection.detectors.runtime import runtime_for

    folder = models_path(settings)
    if folder is None:
        raise mf.ManifestError("no models directory is configured")
    return runtime_for(folder, settings.detectors, settings.detect_device, settings.detect_heatmaps,
                       settings.detect_threads)


def _record_runtime(runtime: Runtime, evidence: list[Evidence], versions: dict[str, str]) -> None:
    for name, reason in runtime.failed.items():
        evidence.append(unavailable_evidence(name, reason))
        versions[f"detector:{name}"] = "unavailable"
    for det in runtime.detectors:
        versions[f"detector:{det.name}"] = det.entry.version_tag()
    versions[STAGE] = DetectionState.RAN if runtime.detectors else DetectionState.UNAVAILABLE
    versions[VERSION_KEY] = stamp_of(runtime.entries)


def apply(runtime: Runtime, results: list[Result], store: MediaStore | None, batch_size: int,
          evidence: list[Evidence], versions: dict[str, str]) -> None:
    """Add one image's detection results (and any unavailable detector) to its evidence and versions."""
    entries = {e.name: e for e in runtime.entries}
    for result in results:
        evidence.append(evidence_for(result, entries[result.detector], store, batch_size))
    _record_runtime(runtime, evidence, versions)


def apply_video(runtime: Runtime, times: list[float], per_frame: list[list[Result]], thumbs: list[str | None],
                heat: tuple[float, Result] | None, store: MediaStore | None, batch_size: int,
                evidence: list[Evidence], versions: dict[str, str]) -> None:
    """Add one video's detection (one aggregated item per detector) to its evidence and versions."""
    for det in runtime.detectors:
        frames = [(t, next(r for r in results if r.detector == det.name)) for t, results in zip(times, per_frame)
                  if any(r.detector == det.name for r in results)]
        frame_thumbs = [thumb for thumb, results in zip(thumbs, per_frame)
                        if any(r.detector == det.name for r in results)]
        if frames:
            worst_heat = heat if heat is not None and heat[1].detector == det.name else None
            evidence.append(video_evidence(det.entry, frames, frame_thumbs, worst_heat, store, batch_size))
    _record_runtime(runtime, evidence, versions)
