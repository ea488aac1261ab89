"""Running detectors over an operator's labelled folder: scores for validation, frozen features for a probe.

The same runtime and preprocessing as the gpu worker (``Runtime.detect``), so the figures describe the scores
verdicts will carry; images are read and scored in batches, with progress reported after each batch.
An image that cannot be read or scored is left out of the figures and counted, never scored as anything.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from server.detection import manifest as mf
from server.detection import validation
from server.detection.validation import Sample
from worker.detection.detectors.registry import PROBE_SUFFIX, last_linear
from worker.detection.detectors.runtime import LoadedDetector, Runtime

Progress = Callable[[int, int], None]


@dataclass
class Scored:
    """One detector's scores over the samples (None: left out) and why each left-out image was."""

    name: str
    scores: list[float | None]
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason

    def kept(self, samples: Sequence[Sample]) -> tuple[list[float], list[Sample]]:
        pairs = [(s, x) for s, x in zip(self.scores, samples) if s is not None]
        return [s for s, _ in pairs], [x for _, x in pairs]


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def _batches(samples: Sequence[Sample], batch: int):
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        images: list[Image.Image | None] = []
        errors: dict[int, str] = {}
        for i, s in enumerate(chunk):
            try:
                images.append(_open(s.path))
            except Exception as exc:  # noqa: BLE001 - one unreadable file is that file's problem
                images.append(None)
                errors[i] = f"unreadable: {type(exc).__name__}: {str(exc)[:200]}"
        yield start, chunk, images, errors


def score_samples(runtime: Runtime, samples: Sequence[Sample], batch: int = 32,
                  progress: Progress | None = None) -> dict[str, Scored]:
    """Every loaded detector's score on every sample (face detectors: the strongest face; no face: left out)."""
    out = {d.name: Scored(d.name, [None] * len(samples)) for d in runtime.detectors}
    for start, chunk, images, errors in _batches(samples, batch):
        results = runtime.detect(images, cams=[False] * len(images))
        for i, found in enumerate(results):
            path = str(chunk[i].path)
            for name, scored in out.items():
                res = next((r for r in found if r.detector == name), None)
                if i in errors or res is None:
                    scored.skipped[path] = errors.get(i, "no result")
                elif res.error:
                    scored.skipped[path] = res.error[:300]
                elif res.score is None:
                    scored.skipped[path] = "no face found"
                else:
                    scored.scores[start + i] = float(res.score)
        if progress:
            progress(min(start + batch, len(samples)), len(samples))
    return out


def features(det: LoadedDetector, samples: Sequence[Sample], batch: int = 32,
             progress: Progress | None = None) -> tuple[np.ndarray, list[int], dict[str, str]]:
    """The input of the detector's last linear layer for each readable sample (the frozen features).

    Returns the feature matrix, the indices of the samples it covers, and the skipped paths with reasons.
    """
    if det.arch.kind != "image":
        raise ValueError(f"{det.name} is a face detector; a probe needs a whole-image detector")
    head = det.model.get_submodule(last_linear(det.model))
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().float().cpu()))
    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped: dict[str, str] = {}
    try:
        for start, chunk, images, errors in _batches(samples, batch):
            tensors, idx = [], []
            for i, image in enumerate(images):
                if image is None:
                    skipped[str(chunk[i].path)] = errors[i]
                    continue
                try:
                    tensors.append(det.prepare(image)[0])
                    idx.append(start + i)
                except Exception as exc:  # noqa: BLE001
                    skipped[str(chunk[i].path)] = f"preprocessing failed: {type(exc).__name__}: {exc}"
            if tensors:
                seen.clear()
                det.scores(torch.stack(tensors))
                rows.append(seen[-1].numpy().reshape(len(tensors), -1))
                kept += idx
            if progress:
                progress(min(start + batch, len(samples)), len(samples))
    finally:
        hook.remove()
    return (np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, 0))), kept, skipped


def load_runtime(models_dir: Path, names: str, device: str = "") -> Runtime:
    """A runtime without heat maps; a detector that cannot load is an error here, not a skipped one."""
    rt = Runtime(models_dir, names, device, heatmaps=False)
    if rt.failed:
        raise mf.DetectorUnavailable(*next(iter(rt.failed.items())))
    return rt


# ---------------------------------------------------------------- the two commands' services


def _verdict_on(entry: mf.Entry, rec: dict[str, Any], cal: dict[str, Any]) -> dict[str, Any]:
    """Whether the entry would meet the bar with this record and threshold, and why not."""
    shortfalls = mf.bar_shortfalls(dataclasses.replace(entry, validation=rec, calibration=cal))
    return {"meets_bar": not shortfalls, "shortfalls": shortfalls, "bar": mf.BAR_WORDS}


def _score_rows(samples: Sequence[Sample], scores: Sequence[float | None], root: Path) -> list[dict[str, Any]]:
    return [{"path": s.path.relative_to(root).as_posix(), "source": s.key, "label": s.label,
             "score": None if x is None else round(float(x), 6)} for s, x in zip(samples, scores)]


def validate_folder(models_dir: Path, data_dir: Path, names: str = "", batch: int = 32, reps: int = 2000,
                    device: str = "", save: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """``credence detectors validate``: each detector's figures on the folder, and its record if ``save``."""
    data_dir = Path(data_dir).resolve()
    samples = validation.scan(data_dir)
    digest = validation.data_digest(samples, data_dir)
    rt = load_runtime(models_dir, names, device)
    scored = score_samples(rt, samples, batch, progress)
    report: dict[str, Any] = {"data": str(data_dir), "data_digest": digest, "images": len(samples), "detectors": []}
    for det in rt.detectors:
        s = scored[det.name]
        kept_scores, kept = s.kept(samples)
        fig = validation.figures(kept_scores, kept, reps, calibrated=det.entry.threshold)
        rec = validation.record(fig, digest, data_dir, det.entry.trained_on)
        cal = validation.calibration(fig, digest)
        block = {"detector": det.name, "architecture": det.entry.architecture, "figures": fig, "record": rec,
                 "skipped": s.skipped, **_verdict_on(det.entry, rec, cal),
                 "scores": _score_rows(samples, s.scores, data_dir), "saved": False}
        if save:
            mf.save_validation(models_dir, det.name, rec, cal)
            block["saved"] = True
        report["detectors"].append(block)
    return report


def fit_probe(models_dir: Path, data_dir: Path, base_name: str, name: str = "", batch: int = 32,
              reps: int = 2000, device: str = "", how: str = "credence detectors fit-probe",
              progress: Progress | None = None) -> dict[str, Any]:
    """``credence detectors fit-probe``: a probe on ``base_name``'s frozen features, written and validated.

    The probe's file sits in ``<models>/<name>/probe.pt``; its entry names the base checkpoint as its
    backbone, so the runtime loads base + probe as one network (``<architecture>+probe``) and the worker
    scores exactly as here. The record describes the nested out-of-source scores (worker/detection/probe.py).
    """
    from worker.detection import probe as pr

    models_dir, data_dir = Path(models_dir).resolve(), Path(data_dir).resolve()
    samples = validation.scan(data_dir)
    digest = validation.data_digest(samples, data_dir)
    rt = load_runtime(models_dir, base_name, device)
    base = rt.detectors[0]
    if base.entry.backbone_file:
        raise ValueError(f"{base_name} has a backbone file already; a probe sits on a one-file detector")
    x, idx, skipped = features(base, samples, batch, progress)
    kept = [samples[i] for i in idx]
    y = np.array([s.label for s in kept])
    keys = [s.key for s in kept]
    pr.check_sources(y, keys)
    oos, chosen = pr.nested_scores(x, y, keys)
    strength, aucs = pr.select(x, y, keys)
    head = pr.fit(x, y, strength)
    name = name or f"{base_name}-probe"
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "probe.pt"
    torch.save({"weight": torch.tensor(head.weight, dtype=torch.float32).reshape(1, -1),
                "bias": torch.tensor([head.bias], dtype=torch.float32)}, weights)
    fig = validation.figures(oos.tolist(), kept, reps)
    rec = validation.record(fig, digest, data_dir, base.entry.trained_on, how=f"{how} (nested leave-one-source-out: each source scored by "
                                                       "a probe fitted and selected without it)")
    cal = validation.calibration(fig, digest)
    entry = {
        "name": name, "architecture": f"{base.entry.architecture}{PROBE_SUFFIX}", "version": "1",
        "file": weights.relative_to(models_dir).as_posix(), "sha256": mf.file_sha256(weights),
        "backbone_file": base.entry.file, "backbone_sha256": base.entry.sha256,
        "preprocessing": dict(base.entry.preprocessing),
        "licence": f"probe weights fitted on {data_dir} (data digest {digest[:12]}): they inherit that data's "
                   f"licence; frozen base: {base.entry.licence}",
        "source": f"{how} --detector {base_name} (L2 strength {strength:g}, {len(kept)} images)",
        "calibration": cal, "validation": rec, "trained_on": sorted({s.source for s in kept}),
        "notes": f"a linear probe on {base_name}'s frozen features; figures are leave-one-source-out",
    }
    mf.write_entry(models_dir, entry)
    fitted = head.scores(x)
    return {"detector": name, "base": base_name, "weights": str(weights), "entry": entry, "figures": fig,
            "strength": strength, "strength_aucs": {f"{k:g}": v for k, v in aucs.items()},
            "nested_strengths": {k: v for k, v in chosen.items()},
            "in_sample_auc": validation.roc_auc(fitted[y == 0], fitted[y == 1]),
            "skipped": skipped, **_verdict_on(mf.Entry(**{k: v for k, v in entry.items()}), rec, cal),
            "scores": [{"path": s.path.relative_to(data_dir).as_posix(), "source": s.key, "label": s.label,
                        "score": round(float(v), 6), "fitted": round(float(f), 6)}
                       for s, v, f in zip(kept, oos, fitted)]}
