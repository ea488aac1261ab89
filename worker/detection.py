"""The detection stage's place in the pipeline, torch-free: when it runs, and the evidence it leaves.

The cpu ruleset ends with the gate: decisive evidence (known fake, broken credentials, declared AI)
means detection is skipped and the evidence says so; no models directory means it cannot run and the
evidence says that; otherwise the verdict is marked ``versions["detect"] = "pending"`` and the worker
hands the item to the ``gpu`` queue, which adds the detectors' evidence and records the verdict.

Scores map to two bands only: at or above a detector's calibrated threshold it argues
``likely-synthetic``; below it the score is reported as a number in the ``inconclusive`` band, never
as a verdict (and never as a sign of authenticity).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.config import Settings
from server.verdicts import BADGES, Evidence, Level
from worker.detectors import manifest as mf

if TYPE_CHECKING:
    from server.media_store import MediaStore
    from worker.detectors.runtime import Result, Runtime
    from worker.pipeline import Item

log = logging.getLogger(__name__)
STAGE = "detect"
PENDING = "pending"


def models_path(settings: Settings) -> Path | None:
    return Path(settings.models_dir).expanduser().resolve() if settings.models_dir else None


def check_manifest(settings: Settings) -> str | None:
    """None when the configured manifest is usable, else why not (cheap: one small JSON file)."""
    try:
        mf.select(mf.read_manifest(models_path(settings)), settings.detectors)
    except mf.ManifestError as exc:
        return str(exc)
    return None


def gate(item: Item) -> None:
    """The last cpu rule: say why detection will not run, or mark it pending for the gpu queue."""
    settings = item.settings
    if item.decisive:
        level = next(lv for lv in (Level.KNOWN_FAKE, Level.TAMPERED, Level.AI_DECLARED)
                     if any(e.supports == lv for e in item.evidence))
        item.evidence.append(Evidence(
            stage=STAGE, kind="detection-skipped",
            summary=f"Detection was skipped: the image is already \"{BADGES[level][1]}\" on stronger evidence.",
            details={"reason": "decisive", "level": level.value}))
        item.versions[STAGE] = "skipped"
        return
    if item.decoded is None:
        item.versions[STAGE] = "not-run"  # nothing to look at; the verdict already says why
        return
    if not settings.models_dir:
        item.evidence.append(Evidence(
            stage=STAGE, kind="detection-not-run",
            summary="Detection did not run: no synthetic-media detector is configured on this server.",
            details={"reason": "not-configured"}))
        item.versions[STAGE] = "not-configured"
        return
    problem = check_manifest(settings)
    if problem:
        log.error("DETECTION MISCONFIGURED: %s", problem)
        item.evidence.append(Evidence(
            stage=STAGE, kind="detector-unavailable",
            summary="Detection did not run: the detector configuration is broken (an operator must fix it).",
            details={"reason": problem[:500]}))
        item.versions[STAGE] = "misconfigured"
        return
    item.versions[STAGE] = PENDING


def is_pending(versions: dict[str, str]) -> bool:
    return versions.get(STAGE) == PENDING


def _band(score: float, threshold: float | None) -> str:
    if threshold is None:
        return "uncalibrated"
    return "likely-synthetic" if score >= threshold else "inconclusive"


def _wording(name: str, score: float, entry: mf.Entry, band: str, what: str) -> str:
    t = entry.threshold
    if band == "likely-synthetic":
        fpr = entry.calibration.get("max_fpr", 0.01)
        return (f"{what} scores {score:.2f} on the {name} detector, at or above its threshold {t:.2f} "
                f"(set for at most {fpr:.0%} false positives on real images in its tests): likely synthetic.")
    if band == "inconclusive":
        return (f"{what} scores {score:.2f} on the {name} detector, below its threshold {t:.2f}: inconclusive. "
                "A low score does not show that the image is authentic.")
    return (f"{what} scores {score:.2f} on the {name} detector, which has no calibrated threshold here: "
            "reported as a number only, inconclusive.")


def evidence_for(result: Result, entry: mf.Entry, store: MediaStore | None, batch_size: int) -> Evidence:
    base = {"detector": entry.name, "architecture": entry.architecture, "version": entry.version_tag(),
            "licence": entry.licence, "batch_size": batch_size}
    if result.error:
        return Evidence(stage=STAGE, kind="stage-error",
                        summary=f"The {entry.name} detector failed on this image and was skipped.",
                        details={**base, "error": result.error[:500]})
    threshold = entry.threshold
    calibration = {k: entry.calibration[k] for k in ("threshold", "max_fpr", "calibration_reals") if k in entry.calibration}
    if result.kind == "face":
        if result.score is None:
            return Evidence(stage=STAGE, kind="no-face",
                            summary=f"No face was found, so the {entry.name} face-manipulation detector did not run.",
                            details={**base, "faces": [], "face_detector": "mtcnn (facenet-pytorch weights)"})
        band = _band(result.score, threshold)
        n = len(result.faces)
        what = f"The strongest of {n} faces" if n > 1 else "The face"
        return Evidence(
            stage=STAGE, kind="face-manipulation-score", score=round(result.score, 4),
            supports=Level.LIKELY_SYNTHETIC if band == "likely-synthetic" else None,
            summary=_wording(entry.name, result.score, entry, band, what),
            details={**base, "band": band, "calibration": calibration, "faces": result.faces,
                     "face_detector": "mtcnn (facenet-pytorch weights)"})
    band = _band(result.score, threshold)
    details: dict[str, Any] = {**base, "band": band, "calibration": calibration, "crop": list(result.crop_box or [])}
    if result.heatmap_png and store is not None:
        details["heatmap"] = {"sha256": store.put(result.heatmap_png), "format": "png", **result.heatmap}
    return Evidence(
        stage=STAGE, kind="synthetic-score", score=round(result.score, 4),
        supports=Level.LIKELY_SYNTHETIC if band == "likely-synthetic" else None,
        summary=_wording(entry.name, result.score, entry, band, "The image"),
        details=details)


def unavailable_evidence(name: str, reason: str) -> Evidence:
    return Evidence(stage=STAGE, kind="detector-unavailable",
                    summary=f"The {name} detector could not run on this server ({reason[:200]}).",
                    details={"detector": name, "reason": reason[:500]})


def runtime(settings: Settings) -> Runtime:
    from worker.detectors.runtime import runtime_for

    return runtime_for(models_path(settings), settings.detectors, settings.detect_device, settings.detect_heatmaps)


def apply(runtime: Runtime, results: list[Result], store: MediaStore | None, batch_size: int,
          evidence: list[Evidence], versions: dict[str, str]) -> None:
    """Add one image's detection results (and any unavailable detector) to its evidence and versions."""
    entries = {e.name: e for e in runtime.entries}
    for result in results:
        evidence.append(evidence_for(result, entries[result.detector], store, batch_size))
    for name, reason in runtime.failed.items():
        evidence.append(unavailable_evidence(name, reason))
        versions[f"detector:{name}"] = "unavailable"
    for det in runtime.detectors:
        versions[f"detector:{det.name}"] = det.entry.version_tag()
    versions[STAGE] = "ran" if runtime.detectors else "unavailable"
