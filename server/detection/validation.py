"""Validating a detector on an operator's own labelled images: the figures, and the record that earns a badge.

A detector is only as good as the sources it was measured on, so the operator brings a folder of their own
real photos and known fakes, grouped by where they came from (docs/detection.md, "Validate a detector")::

    DIR/real/<source>/...      e.g. real/newsroom-archive/2019/a.jpg, real/flickr-cc/b.png
    DIR/ai/<generator>/...     e.g. ai/sdxl/x.png, ai/debunked-2026/y.jpg

Everything here is the arithmetic on scores (ROC-AUC with bootstrap intervals, overall and per source, rates at
candidate thresholds, the threshold for <= 1% false positives and whether enough reals support it) and the
validation record it produces; running detectors over the folder is the worker's (worker/detection/validate.py).
Numpy only: no torch, no scikit-learn (the tests check these figures against scikit-learn).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.detection.manifest import BAR_MAX_FPR, BAR_METHOD, BAR_MIN_REALS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".avif"}
CLASSES = (("real", 0), ("ai", 1))
SEED = 20261207
THRESHOLD_FLOOR = 0.5  # a score below one half never argues likely-synthetic, whatever the data says
CANDIDATE_FPRS = (0.01, 0.05, 0.10)


class DataError(Exception):
    """The folder cannot be used for validation (layout, too few images of a class)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = AI-generated
    source: str  # the folder under real/ or ai/

    @property
    def key(self) -> str:
        """The source with its class: a real source and a generator may share a folder name."""
        return f"{'ai' if self.label else 'real'}/{self.source}"


def scan(data_dir: Path) -> list[Sample]:
    """Every image under ``real/<source>/`` and ``ai/<generator>/`` (recursively), in a stable order."""
    root = Path(data_dir)
    out: list[Sample] = []
    for folder, label in CLASSES:
        base = root / folder
        if not base.is_dir():
            raise DataError(f"{root} has no {folder}/ folder (expected real/<source>/... and ai/<generator>/...)")
        for source in sorted(p for p in base.iterdir() if p.is_dir()):
            for path in sorted(source.rglob("*")):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    out.append(Sample(path, label, source.name))
        if not any(s.label == label for s in out):
            raise DataError(f"no images under {base}/<source>/ (images directly in {folder}/ have no source)")
    return out


def data_digest(samples: Sequence[Sample], root: Path) -> str:
    """SHA-256 over every image's class, source, relative path and content: names the exact data measured."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: (s.label, s.source, str(s.path))):
        content = hashlib.sha256(s.path.read_bytes()).hexdigest()
        digest.update(f"{s.key}\t{s.path.relative_to(root).as_posix()}\t{content}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- figures


def roc_auc(real: Sequence[float], fake: Sequence[float]) -> float:
    """P(a fake outscores a real), ties counting half, from ranks (Mann-Whitney U); NaN if a class is empty."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    nr, nf = len(real), len(fake)
    if nr == 0 or nf == 0:
        return float("nan")
    _uniq, inverse, counts = np.unique(np.concatenate([real, fake]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based, ties get their average rank
    return float((ranks[nr:].sum() - nf * (nf + 1) / 2.0) / (nr * nf))


def bootstrap_ci(real: Sequence[float], fake: Sequence[float], reps: int, seed: int = SEED) -> list[float] | None:
    """95% percentile interval of the AUC, resampling reals and fakes separately (None without resamples)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if reps <= 0 or len(real) == 0 or len(fake) == 0:
        return None
    rng = np.random.default_rng(seed)
    stats = [roc_auc(rng.choice(real, len(real)), rng.choice(fake, len(fake))) for _ in range(reps)]
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def threshold_for(real: Sequence[float], max_fpr: float = BAR_MAX_FPR) -> float:
    """The lowest score leaving at most ``floor(max_fpr * reals)`` of these reals at or above it (>= 0.5)."""
    ordered = np.sort(np.asarray(real, dtype=np.float64))[::-1]
    allowed = int(math.floor(max_fpr * len(ordered) + 1e-9))
    edge = float(ordered[allowed]) if allowed < len(ordered) else 0.0
    above = math.floor(edge * 1e6 + 1) / 1e6  # six decimals, strictly above the edge: it survives the JSON
    return float(min(max(above, THRESHOLD_FLOOR), 1.0))


def _at(real: np.ndarray, fake: np.ndarray, threshold: float) -> dict[str, Any]:
    fp, tp = int((real >= threshold).sum()), int((fake >= threshold).sum())
    return {"threshold": threshold, "fpr": fp / len(real) if len(real) else None,
            "tpr": tp / len(fake) if len(fake) else None, "false_positives": fp, "reals": int(len(real)),
            "true_positives": tp, "fakes": int(len(fake))}


def _r(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def figures(scores: Sequence[float], samples: Sequence[Sample], reps: int = 2000,
            calibrated: float | None = None, max_fpr: float = BAR_MAX_FPR, seed: int = SEED) -> dict[str, Any]:
    """Everything ``credence detectors validate`` reports for one detector's scores on ``samples``.

    Leave-one-source-out, two ways: each source alone against the whole other class (which sources it
    misses), and the AUC with that source left out (whether one source carries the result). The threshold
    for ``max_fpr`` is chosen on all the reals; its false-positive rate on sources it was not chosen on is
    measured by choosing it again without each real source and counting that source's reals above it: a
    threshold that only holds on the photos it was fitted to is no threshold.
    """
    s = np.asarray(scores, dtype=np.float64)
    labels = np.array([x.label for x in samples])
    keys = np.array([x.key for x in samples])
    if len(s) != len(samples):
        raise ValueError("one score per sample")
    real, fake = s[labels == 0], s[labels == 1]
    if len(real) == 0 or len(fake) == 0:
        raise DataError("validation needs scored real and AI-generated images")
    per_source = []
    for key in sorted(set(keys.tolist())):
        mask = keys == key
        label = int(labels[mask][0])
        mine = s[mask]
        alone = roc_auc(real, mine) if label else roc_auc(mine, fake)
        rest = ~mask
        without = roc_auc(s[rest & (labels == 0)], s[rest & (labels == 1)])
        per_source.append({"source": key, "n": int(mask.sum()), "auc_alone": _r(alone),
                           "ci95_alone": bootstrap_ci(real, mine, reps, seed) if label else bootstrap_ci(mine, fake, reps, seed),
                           "auc_without": _r(without)})
    chosen = threshold_for(real, max_fpr)
    held = _held_out_fpr(s, labels, keys, max_fpr)
    reals = int(len(real))
    supported = reals >= BAR_MIN_REALS
    fit = _at(real, fake, chosen)
    words = (f"{fit['false_positives']} of {reals} reals at or above it"
             + ("" if supported else f"; {reals} reals cannot show a {max_fpr:.0%} false-positive rate "
                                     f"(at least {BAR_MIN_REALS} are needed), so it is not called a {max_fpr:.0%} threshold"))
    candidates = {"0.5": THRESHOLD_FLOOR}
    if calibrated is not None:
        candidates["calibrated"] = calibrated
    for rate in CANDIDATE_FPRS:
        candidates[f"fpr<={rate:.0%}"] = threshold_for(real, rate)
    return {
        "reals": reals, "fakes": int(len(fake)),
        "real_sources": sorted({x.source for x in samples if x.label == 0}),
        "ai_sources": sorted({x.source for x in samples if x.label == 1}),
        "roc_auc": _r(roc_auc(real, fake)), "ci95": bootstrap_ci(real, fake, reps, seed), "bootstrap": reps,
        "per_source": per_source,
        "at_thresholds": [{"name": name, **_at(real, fake, t)} for name, t in candidates.items()],
        "max_fpr": {"max_fpr": max_fpr, **fit, "supported": supported,
                    "held_out_fpr": held["fpr"], "held_out_false_positives": held["false_positives"],
                    "held_out_sources": held["sources"], "words": words},
    }


def _held_out_fpr(s: np.ndarray, labels: np.ndarray, keys: np.ndarray, max_fpr: float) -> dict[str, Any]:
    """Each real source's reals against the threshold chosen without them, pooled (None with one source)."""
    sources = sorted({k for k, lab in zip(keys.tolist(), labels.tolist()) if lab == 0})
    if len(sources) < 2:
        return {"fpr": None, "false_positives": None, "sources": len(sources)}
    fp = n = 0
    for key in sources:
        mine = (keys == key)
        t = threshold_for(s[(labels == 0) & ~mine], max_fpr)
        fp += int((s[mine] >= t).sum())
        n += int(mine.sum())
    return {"fpr": fp / n, "false_positives": fp, "sources": len(sources)}


def record(fig: dict[str, Any], digest: str, data_dir: Path, trained_on: Sequence[str] = (),
           how: str = "credence detectors validate", today: dt.date | None = None) -> dict[str, Any]:
    """The manifest's validation record for these figures, measured at the threshold they chose.

    ``fpr_at_threshold`` is the rate on the reals the threshold was chosen on (at most ``max_fpr`` by
    construction: the bar's question is then how many reals, from how many sources, back it). Beside it,
    ``fpr_held_out_sources`` is the pooled rate on each real source under the threshold chosen without it:
    how well the threshold carries to photos from elsewhere (None with a single real source).
    A source the detector was trained on (the entry's ``trained_on``) is not held out.
    """
    m = fig["max_fpr"]
    trained = set(trained_on)
    sources = fig["real_sources"] + fig["ai_sources"]
    return {
        "method": BAR_METHOD, "roc_auc": fig["roc_auc"], "roc_auc_ci95": fig["ci95"],
        "threshold": m["threshold"], "fpr_at_threshold": round(float(m["fpr"]), 6),
        "fpr_held_out_sources": None if m["held_out_fpr"] is None else round(float(m["held_out_fpr"]), 6),
        "tpr_at_threshold": round(float(m["tpr"]), 6),
        "reals": fig["reals"], "fakes": fig["fakes"], "threshold_supported": m["supported"],
        "real_sources": fig["real_sources"], "ai_sources": fig["ai_sources"],
        "held_out_sources": sorted(x for x in set(sources) if x not in trained),
        "per_source": {p["source"]: p["auc_alone"] for p in fig["per_source"]},
        "data": str(data_dir), "data_digest": digest,
        "date": (today or dt.date.today()).isoformat(), "how": how,
    }


def calibration(fig: dict[str, Any], digest: str) -> dict[str, Any]:
    """The entry's calibration after a saved validation: the threshold chosen on the operator's reals."""
    m = fig["max_fpr"]
    return {"threshold": m["threshold"], "max_fpr": m["max_fpr"], "calibration_reals": fig["reals"],
            "calibration_fpr": m["fpr"], "calibration_tpr": m["tpr"], "data_digest": digest,
            "rule": f"lowest score leaving at most {m['max_fpr']:.0%} of the validation reals at or above it, "
                    f"never below {THRESHOLD_FLOOR}"}
