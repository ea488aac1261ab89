"""The models directory's manifest: which checkpoints exist, what they are, how to check them.

Torch-free on purpose: the cpu workers read it to decide whether detection is configured, and
``credence detectors list`` checks files and hashes without loading a model.

``<CREDENCE_MODELS_DIR>/manifest.json``::

    {"detectors": [
      {"name": "baseline", "architecture": "credence-baseline", "version": "1",
       "file": "baseline/baseline.pt", "sha256": "...",
       "preprocessing": {"crop": 224, "mean": [...], "std": [...]},
       "licence": "...", "source": "...",
       "calibration": {"threshold": 0.93, "max_fpr": 0.01, ...},
       "validation": {"method": "leave-source-out", "roc_auc": 0.86, "threshold": 0.93,
                      "fpr_at_threshold": 0.007, "tpr_at_threshold": 0.41, "reals": 412, "fakes": 400,
                      "real_sources": ["flickr-cc", "raise", "own-newsroom"],
                      "held_out_sources": ["flickr-cc", "raise", "own-newsroom", "sdxl", "midjourney-v6"],
                      "date": "2026-12-01", "data_digest": "...", "roc_auc_ci95": [0.82, 0.89],
                      "per_source": {...}, "how": "credence detectors validate", "notes": "..."},
       "trained_on": ["biggan", "crn", ...]},
      {"name": "ufd", "architecture": "universalfakedetect-clip-vit-l14", "file": "ufd/fc_weights.pth",
       "sha256": "...", "backbone_file": "clip/vit-l14-visual.pt", "backbone_sha256": "...", ...}
    ]}

The validation record is what lets a detector's score become a badge (``meets_bar``): measured on
images from sources the detector was never trained on (leave-source-out), ROC-AUC >= 0.80 and, at the
calibrated threshold, at most 1% false positives on at least 300 real photos from at least 3 sources.
A detector without a record, or below the bar, still runs: its score is reported as "experimental"
with its measured numbers and never argues a level. docs/verdicts.md explains the bar.

A file that is missing or whose SHA-256 differs is a loud error for that detector (logged, and
reported in the evidence of every verdict while it lasts), never a silent fallback.

Without ``CREDENCE_MODELS_DIR`` the repository's own ``models/`` (the committed baseline) is used when
it is there. Verdicts record a digest of the entries they were made with (``versions["detectors"]``);
``is_current`` compares it with the configuration now, so a verdict made with other models is recomputed
on its next request. This module imports only the standard library, so the API process may use it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
REQUIRED = ("name", "architecture", "file", "sha256", "licence")
VERSION_KEY = "detectors"  # versions[VERSION_KEY]: a digest of the entries used, or off / none / misconfigured
# The committed baseline: ``models/`` beside ``server/`` and ``worker/`` in the checkout (editable installs
# and the Docker image's /app alike). A wheel installed elsewhere has none, and detection is not configured.
DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "models"


# The bar a detector's validation record must meet before its score may argue ``likely-synthetic``.
# Why these numbers: below AUC 0.80 a score ranks real and synthetic images barely better than chance
# on sources it never saw; at a 1% false-positive rate on a few hundred real photos, a badge on the open
# web is still wrong for about 1 real photo in 100, which is as much as a headline may risk.
BAR_METHOD = "leave-source-out"
BAR_MIN_ROC_AUC = 0.80
BAR_MAX_FPR = 0.01
BAR_MIN_REALS = 300
BAR_MIN_REAL_SOURCES = 3
BAR_WORDS = (f"ROC-AUC >= {BAR_MIN_ROC_AUC:.2f} and at most {BAR_MAX_FPR:.0%} false positives at its threshold "
             f"on >= {BAR_MIN_REALS} real photos from >= {BAR_MIN_REAL_SOURCES} sources it was not trained on")
_THRESHOLD_TOLERANCE = 1e-6


class ManifestError(Exception):
    """The manifest itself cannot be used (missing, not JSON, an entry without a required field)."""


class DetectorUnavailable(Exception):
    """One detector cannot run: its file is missing, its hash differs, or it failed to load."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"detector {name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    name: str
    architecture: str
    file: str
    sha256: str
    licence: str
    version: str = "1"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    notes: str = ""
    backbone_file: str = ""
    backbone_sha256: str = ""
    validation: dict[str, Any] = field(default_factory=dict)
    trained_on: list[str] = field(default_factory=list)  # source names it learned from: never "held out"

    @property
    def threshold(self) -> float | None:
        """Score at or above which the detector argues ``likely-synthetic``; None: never (uncalibrated)."""
        value = self.calibration.get("threshold")
        return float(value) if value is not None else None

    def files(self) -> list[tuple[str, str, str]]:
        """(role, relative path, expected sha256) of every file the detector needs."""
        out = [("weights", self.file, self.sha256)]
        if self.backbone_file:
            out.append(("backbone", self.backbone_file, self.backbone_sha256))
        return out

    def version_tag(self) -> str:
        return f"{self.architecture}/{self.version}/{self.sha256[:12]}"


def number(record: dict[str, Any], key: str) -> float | None:
    """A validation record's number (a JSON bool is not one), or None."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def bar_shortfalls(entry: Entry) -> list[str]:
    """Why the entry's validation record does not meet the bar, in words (empty: it meets it).

    A record measured at another threshold than the one in use says nothing about the one in use, and
    a source the detector was trained on is no test of how it does on the open web: both fall short.
    """
    record = entry.validation if isinstance(entry.validation, dict) else {}
    if not record:
        return ["no validation record"]
    out: list[str] = []
    if record.get("method") != BAR_METHOD:
        out.append(f"method is {record.get('method')!r}, not {BAR_METHOD!r}")
    auc = number(record, "roc_auc")
    if auc is None or not auc >= BAR_MIN_ROC_AUC:
        out.append(f"ROC-AUC {auc if auc is not None else 'missing'} is below {BAR_MIN_ROC_AUC:.2f}")
    fpr = number(record, "fpr_at_threshold")
    if fpr is None or not fpr <= BAR_MAX_FPR:
        out.append(f"false-positive rate {fpr if fpr is not None else 'missing'} is above {BAR_MAX_FPR}")
    reals = number(record, "reals")
    if reals is None or reals < BAR_MIN_REALS:
        out.append(f"{int(reals) if reals is not None else 'no'} real photos, fewer than {BAR_MIN_REALS}")
    sources = record.get("real_sources")
    real_sources = {str(x) for x in sources} if isinstance(sources, list) else set()
    if len(real_sources) < BAR_MIN_REAL_SOURCES:
        out.append(f"real photos from {len(real_sources)} source(s), fewer than {BAR_MIN_REAL_SOURCES}")
    held = record.get("held_out_sources")
    held_out = {str(x) for x in held} if isinstance(held, list) else set()
    if not real_sources <= held_out or not held_out:
        out.append("not every source it was measured on was held out of training")
    measured_at = number(record, "threshold")
    if entry.threshold is None:
        out.append("no calibrated threshold")
    elif measured_at is None or abs(measured_at - entry.threshold) > _THRESHOLD_TOLERANCE:
        out.append("measured at another threshold than the calibrated one")
    return out


def meets_bar(entry: Entry) -> bool:
    """Whether the detector's score may argue ``likely-synthetic`` (see BAR_WORDS and docs/verdicts.md)."""
    return not bar_shortfalls(entry)


def read_manifest(models_dir: Path) -> list[Entry]:
    path = Path(models_dir) / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"no {MANIFEST} in {models_dir}") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path} is unreadable: {exc}") from exc
    entries = raw.get("detectors") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ManifestError(f"{path} has no 'detectors' list")
    out: list[Entry] = []
    known = set(Entry.__dataclass_fields__)
    for item in entries:
        if not isinstance(item, dict) or any(not item.get(k) for k in REQUIRED):
            raise ManifestError(f"{path}: every detector needs {', '.join(REQUIRED)} (got {item!r:.200})")
        if "validation" in item and not isinstance(item["validation"], dict):
            raise ManifestError(f"{path}: {item['name']}'s validation must be an object")
        if "trained_on" in item and not isinstance(item["trained_on"], list):
            raise ManifestError(f"{path}: {item['name']}'s trained_on must be a list of source names")
        if item.get("backbone_file") and not item.get("backbone_sha256"):
            raise ManifestError(f"{path}: {item['name']} names a backbone_file without its backbone_sha256")
        out.append(Entry(**{k: v for k, v in item.items() if k in known}))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ManifestError(f"{path}: detector names repeat")
    return out


def select(entries: list[Entry], wanted: str) -> list[Entry]:
    """The entries named in a comma-separated list (empty: all); an unknown name is an error."""
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    if not names:
        return entries
    by_name = {e.name: e for e in entries}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ManifestError(f"CREDENCE_DETECTORS names {', '.join(missing)}, not in the manifest "
                            f"({', '.join(by_name) or 'empty'})")
    return [by_name[n] for n in names]


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Streamed SHA-256, remembered per (path, size, mtime) so a process hashes a checkpoint once."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def verify(entry: Entry, models_dir: Path) -> dict[str, Path]:
    """Paths of the entry's files after checking each exists and has its SHA-256; raises otherwise."""
    root = Path(models_dir).resolve()
    paths: dict[str, Path] = {}
    for role, rel, expected in entry.files():
        path = (root / rel).resolve()
        if root not in path.parents:
            raise DetectorUnavailable(entry.name, f"{role} file {rel} lies outside the models directory")
        if not path.is_file():
            raise DetectorUnavailable(entry.name, f"{role} file {rel} is missing from {root}")
        actual = file_sha256(path)
        if actual != expected.lower():
            raise DetectorUnavailable(entry.name, f"{role} file {rel} has SHA-256 {actual[:16]}..., "
                                                  f"the manifest says {expected[:16]}...")
        paths[role] = path
    return paths


def write_entry(models_dir: Path, entry: dict[str, Any]) -> None:
    """Add or replace one entry (by name) in the manifest, keeping the others; atomic."""
    path = Path(models_dir) / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raw = {"detectors": []}
    raw["detectors"] = [e for e in raw.get("detectors", []) if e.get("name") != entry["name"]] + [entry]
    _write(path, raw)


def _write(path: Path, raw: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(raw, indent=2) + "\n")
    os.replace(tmp, path)


def save_validation(models_dir: Path, name: str, record: dict[str, Any],
                    calibration: dict[str, Any] | None = None) -> None:
    """Put a validation record (and the calibration it was measured at) into one entry, keeping the rest.

    The record and the threshold are written together: a record measured at another threshold than the
    calibrated one falls short of the bar (``bar_shortfalls``), so saving one without the other would
    silently cost a badge, or keep a stale one.
    """
    path = Path(models_dir) / MANIFEST
    raw = json.loads(path.read_text())
    entry = next((e for e in raw.get("detectors", []) if isinstance(e, dict) and e.get("name") == name), None)
    if entry is None:
        raise ManifestError(f"{path} has no detector {name!r}")
    entry["validation"] = record
    if calibration is not None:
        entry["calibration"] = calibration
    _write(path, raw)  # in place: the manifest's order is the order detectors run and are reported in


def models_path(settings: Any) -> Path | None:
    """The configured models folder, else the repository's own when it holds a manifest, else None."""
    if settings.models_dir:
        return Path(settings.models_dir).expanduser().resolve()
    return DEFAULT_MODELS if (DEFAULT_MODELS / MANIFEST).is_file() else None


def stamp_of(entries: list[Entry]) -> str:
    """A short digest of the detectors a verdict depends on: names, versions, weights, thresholds and
    whether each meets the validation bar (a detector that earns or loses its badge changes verdicts).

    Read from the manifest only (no checkpoint is hashed), so it is cheap enough to compute per request.
    """
    raw = sorted([e.name, e.version_tag(), e.backbone_sha256[:12], e.threshold, meets_bar(e)] for e in entries)
    return hashlib.sha256(json.dumps(raw).encode()).hexdigest()[:12]


_STAMPS: dict[tuple[str, str, int, int], str] = {}


def configured_stamp(settings: Any) -> str:
    """What ``versions["detectors"]`` is for verdicts made now: ``off``, ``none``, ``misconfigured`` or a digest.

    Remembered per (manifest, selection, mtime, size): an edited manifest changes the answer at once.
    """
    if not settings.detect:
        return "off"
    folder = models_path(settings)
    if folder is None:
        return "none"
    try:
        st = (folder / MANIFEST).stat()
    except OSError:
        return "misconfigured"
    key = (str(folder), settings.detectors, st.st_mtime_ns, st.st_size)
    if key not in _STAMPS:
        try:
            _STAMPS[key] = stamp_of(select(read_manifest(folder), settings.detectors))
        except ManifestError:
            _STAMPS[key] = "misconfigured"
    return _STAMPS[key]


def is_current(versions: dict[str, str], settings: Any) -> bool:
    """False when a stored verdict depended on detectors other than the configured ones (recompute it).

    Verdicts that never depended on detection (decisive evidence, unreadable media, types without
    detection) carry no ``detectors`` version and stay current whatever the models.
    """
    made_with = versions.get(VERSION_KEY)
    return made_with is None or made_with == configured_stamp(settings)
