"""Train and evaluate Credence's baseline detector, reproducibly, on ../shared/data/synthetic-images.

Data facts (the data's README): 200 real + 200 fake 244x244 crops, 20 + 20 per generator for 10 GAN-era
generators, plus 300 StyleGAN3 faces with no real counterpart. Images are cropped, never resized; no
size, format or metadata feature is used (every input is a fixed-size pixel crop).

- Split, per generator and class (seeded): 10 train, 5 calibration, 5 test.
- Training: random 64 px crops with flips and light JPEG re-encoding, balanced batches, AdamW, cosine
  schedule, fixed seeds. The saved weights are a plain state dict (``weights_only`` loadable).
- Calibration: the ``likely-synthetic`` threshold is the lowest score that leaves at most 1% of the
  calibration reals at or above it (never below 0.5). With 50 calibration reals that means above all of them.
- Evaluation: ROC-AUC with a stratified bootstrap 95% interval on the test split; FPR and TPR at the
  threshold on the test split; leave-one-generator-out (a model trained without generator g, scored on
  all of g's 20 + 20); the detection rate on the StyleGAN3 faces, a source it never saw.
"""
from __future__ import annotations

import io
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from server.config import Settings
from worker.detection.detectors.nets.baseline import BaselineNet
from worker.detection.detectors.preprocess import center_crop, to_tensor
from worker.detection.detectors.registry import IMAGENET

ROOT = Path(__file__).resolve().parents[3]
DATA_DIR: Path = Settings.model_fields["training_data_dir"].default  # CREDENCE_TRAINING_DATA_DIR overrides it in the CLI
SEED = 20261201
CROP, EVAL_CROP = 64, 224
STEPS, BATCH = 700, 32
SPLIT = (10, 5, 5)  # train, calibration, test per generator and class
MAX_FPR = 0.01


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = fake
    generator: str


@dataclass(frozen=True)
class TrainConfig:
    steps: int = STEPS
    batch: int = BATCH
    crop: int = CROP
    lr: float = 2e-3
    weight_decay: float = 1e-4
    jpeg_prob: float = 0.3
    seed: int = SEED


def list_samples(data_dir: Path = DATA_DIR) -> list[Sample]:
    root = Path(data_dir) / "train" / "cnndetection-crops"
    out = []
    for label, folder in ((0, "real"), (1, "fake")):
        for path in sorted((root / folder).glob("*.png")):
            out.append(Sample(path, label, path.name.split("_", 1)[0]))
    if not out:
        raise FileNotFoundError(f"no training images under {root}")
    return out


def stylegan3_faces(data_dir: Path = DATA_DIR) -> list[Sample]:
    return [Sample(p, 1, "stylegan3-ffhq") for p in sorted((Path(data_dir) / "train" / "stylegan3-ffhq" / "fake").glob("*.png"))]


def split(samples: Sequence[Sample], seed: int = SEED, sizes: tuple[int, int, int] = SPLIT) -> dict[str, list[Sample]]:
    """Per (generator, class): shuffled with the seed, then cut into train / calibration / test."""
    rng = random.Random(seed)
    groups: dict[tuple[str, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.generator, s.label), []).append(s)
    out: dict[str, list[Sample]] = {"train": [], "calibration": [], "test": []}
    for key in sorted(groups):
        items = sorted(groups[key], key=lambda s: s.path.name)
        rng.shuffle(items)
        n_train, n_cal, n_test = sizes
        scale = len(items) / sum(sizes)
        a = int(round(n_train * scale))
        b = a + int(round(n_cal * scale))
        out["train"] += items[:a]
        out["calibration"] += items[a:b]
        out["test"] += items[b:]
    return out


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _jpeg(arr: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(samples: Sequence[Sample], cfg: TrainConfig = TrainConfig(),
          log: Callable[[str], None] | None = None) -> BaselineNet:
    """A baseline trained on ``samples`` with fixed seeds; returns the model in eval mode."""
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    images = [_load(s.path) for s in samples]
    labels = np.array([s.label for s in samples])
    by_class = [np.flatnonzero(labels == c) for c in (0, 1)]
    if any(len(ix) == 0 for ix in by_class):
        raise ValueError("training needs real and fake images")
    model = BaselineNet()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    mean, std = IMAGENET["mean"], IMAGENET["std"]
    started = time.perf_counter()
    for step in range(cfg.steps):
        picks = np.concatenate([rng.choice(by_class[c], cfg.batch // 2) for c in (0, 1)])
        crops, ys = [], []
        for i in picks:
            img = images[i]
            h, w = img.shape[:2]
            y0, x0 = rng.integers(0, h - cfg.crop + 1), rng.integers(0, w - cfg.crop + 1)
            crop = img[y0:y0 + cfg.crop, x0:x0 + cfg.crop]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            if rng.random() < cfg.jpeg_prob:
                crop = _jpeg(np.ascontiguousarray(crop), int(rng.integers(70, 96)))
            crops.append(to_tensor(crop, mean, std))
            ys.append(float(labels[i]))
        x, y = torch.stack(crops), torch.tensor(ys)
        loss = F.binary_cross_entropy_with_logits(model(x).reshape(-1), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 100 == 0 or step == cfg.steps - 1):
            log(f"step {step + 1}/{cfg.steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)")
    return model.eval()


@torch.inference_mode()
def score(model: torch.nn.Module, paths: Sequence[Path], crop: int = EVAL_CROP, batch: int = 16) -> np.ndarray:
    """P(fake) on the centre crop, exactly as the worker computes it."""
    out: list[float] = []
    for i in range(0, len(paths), batch):
        tensors = []
        for p in paths[i:i + batch]:
            with Image.open(p) as img:
                arr, _ = center_crop(img, crop)
            tensors.append(to_tensor(arr, IMAGENET["mean"], IMAGENET["std"]))
        out += torch.sigmoid(model(torch.stack(tensors)).reshape(-1)).tolist()
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------- metrics


def roc_auc(real: np.ndarray, fake: np.ndarray) -> float:
    """P(a fake outscores a real), ties counting half (the Mann-Whitney form of ROC-AUC)."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if len(real) == 0 or len(fake) == 0:
        return float("nan")
    diff = fake[:, None] - real[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def bootstrap_auc(real: np.ndarray, fake: np.ndarray, reps: int = 2000, seed: int = SEED) -> tuple[float, float]:
    """95% percentile interval, resampling reals and fakes separately."""
    rng = np.random.default_rng(seed)
    real, fake = np.asarray(real), np.asarray(fake)
    stats = [roc_auc(rng.choice(real, len(real)), rng.choice(fake, len(fake))) for _ in range(reps)]
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def choose_threshold(real_scores: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """Lowest threshold with at most ``max_fpr`` of these reals at or above it (never under 0.5)."""
    ordered = np.sort(np.asarray(real_scores, dtype=np.float64))[::-1]
    allowed = int(math.floor(max_fpr * len(ordered)))
    edge = ordered[allowed] if allowed < len(ordered) else 0.0
    return float(min(max(np.nextafter(edge, np.inf), 0.5), 1.0))


def rate_at(scores: np.ndarray, threshold: float) -> float:
    scores = np.asarray(scores)
    return float((scores >= threshold).mean()) if len(scores) else float("nan")


def _auc_block(real: np.ndarray, fake: np.ndarray, reps: int) -> dict[str, Any]:
    lo, hi = bootstrap_auc(real, fake, reps)
    return {"auc": round(roc_auc(real, fake), 4), "ci95": [round(lo, 4), round(hi, 4)],
            "n_real": int(len(real)), "n_fake": int(len(fake))}


# ---------------------------------------------------------------- the two commands


def train_baseline(out_dir: Path, data_dir: Path = DATA_DIR, cfg: TrainConfig = TrainConfig(),
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train on the train split, calibrate on the calibration split, save weights + calibration."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    parts = split(list_samples(data_dir), cfg.seed)
    log(f"split: {', '.join(f'{k} {len(v)}' for k, v in parts.items())} (seed {cfg.seed})")
    started = time.perf_counter()
    model = train(parts["train"], cfg, log)
    seconds = time.perf_counter() - started
    cal = parts["calibration"]
    cal_scores = score(model, [s.path for s in cal])
    cal_real = cal_scores[[s.label == 0 for s in cal]]
    threshold = choose_threshold(cal_real)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "baseline.pt"
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, weights)
    calibration = {
        "threshold": round(threshold, 6), "max_fpr": MAX_FPR,
        "calibration_reals": int(len(cal_real)),
        "calibration_fpr": rate_at(cal_real, threshold),
        "calibration_tpr": rate_at(cal_scores[[s.label == 1 for s in cal]], threshold),
        "rule": "lowest score leaving at most 1% of the calibration reals at or above it, never below 0.5",
    }
    log(f"trained in {seconds:.0f} s; threshold {threshold:.4f} from {len(cal_real)} calibration reals")
    return {"weights": weights, "calibration": calibration, "train_seconds": round(seconds, 1),
            "config": cfg.__dict__, "split_sizes": {k: len(v) for k, v in parts.items()}}


def evaluate_baseline(weights: Path, threshold: float, data_dir: Path = DATA_DIR, cfg: TrainConfig = TrainConfig(),
                      logo: bool = True, reps: int = 2000, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Held-out test AUC (+CI), FPR/TPR at the threshold, leave-one-generator-out, StyleGAN3 faces."""
    model = BaselineNet()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    samples = list_samples(data_dir)
    parts = split(samples, cfg.seed)
    test = parts["test"]
    scores = score(model, [s.path for s in test])
    real = scores[[s.label == 0 for s in test]]
    fake = scores[[s.label == 1 for s in test]]
    report: dict[str, Any] = {
        "threshold": threshold,
        "held_out": {**_auc_block(real, fake, reps), "fpr_at_threshold": rate_at(real, threshold),
                     "tpr_at_threshold": rate_at(fake, threshold),
                     "false_positives": int((real >= threshold).sum())},
        "per_generator_held_out": {},
    }
    for gen in sorted({s.generator for s in test}):
        mask = np.array([s.generator == gen for s in test])
        labels = np.array([s.label for s in test])
        report["per_generator_held_out"][gen] = round(roc_auc(scores[mask & (labels == 0)], scores[mask & (labels == 1)]), 4)
    faces = stylegan3_faces(data_dir)
    if faces:
        face_scores = score(model, [s.path for s in faces])
        report["stylegan3_faces"] = {"n": len(faces), "detected_at_threshold": rate_at(face_scores, threshold),
                                     "median_score": round(float(np.median(face_scores)), 4)}
    if logo:
        log("leave-one-generator-out: one model per held-out generator")
        report["leave_one_generator_out"] = logo_eval(samples, parts, cfg, reps, log)
    return report


def logo_eval(samples: Sequence[Sample], parts: dict[str, list[Sample]], cfg: TrainConfig, reps: int,
              log: Callable[[str], None]) -> dict[str, Any]:
    train_set = parts["train"]
    per: dict[str, Any] = {}
    pooled_real, pooled_fake = [], []
    for gen in sorted({s.generator for s in samples}):
        started = time.perf_counter()
        model = train([s for s in train_set if s.generator != gen], cfg)
        held = [s for s in samples if s.generator == gen]
        sc = score(model, [s.path for s in held])
        real = sc[[s.label == 0 for s in held]]
        fake = sc[[s.label == 1 for s in held]]
        pooled_real += real.tolist()
        pooled_fake += fake.tolist()
        per[gen] = _auc_block(real, fake, reps)
        log(f"  without {gen}: AUC {per[gen]['auc']:.3f} [{per[gen]['ci95'][0]:.3f}, {per[gen]['ci95'][1]:.3f}] "
            f"({time.perf_counter() - started:.0f} s)")
    aucs = [v["auc"] for v in per.values()]
    return {"per_generator": per, "mean_auc": round(float(np.mean(aucs)), 4),
            "pooled": _auc_block(np.array(pooled_real), np.array(pooled_fake), reps),
            "note": "each generator scored by a model trained on the other nine generators' train split"}


def save_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")
