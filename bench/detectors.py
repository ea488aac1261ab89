"""Detector throughput at batch sizes 1, 8 and 32, on the device the worker would use.

    .venv/bin/python bench/detectors.py                     # every detector, batches 1 8 32
    .venv/bin/python bench/detectors.py --only baseline,npr  # a subset
    CREDENCE_DETECT_DEVICE=cpu .venv/bin/python bench/detectors.py

It measures the production path (worker/detection/detectors/runtime.py's LoadedDetector: same dtype, channels-last
and inference mode as the gpu worker) on ready tensors: the forward pass and the copy to the device, not
the JPEG decode or crop. Published architectures run with random weights (throughput does not depend
on the values); the baseline runs with its committed weights. MTCNN (face finding, one image at a time)
is timed on a 640x480 photo. Prints device, dtype, batch size, images/s, ms per batch and the ratio of
batch-32 to batch-1 throughput. Not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

from common import ROOT  # noqa: F401 - puts the repository on sys.path

import numpy as np
import torch

from server.detection import manifest as mf
from server.config import Settings
from worker.detection.detectors.registry import architecture, build_loaded
from worker.detection.detectors.runtime import LoadedDetector, pick_device

DETECTORS = {  # name -> (architecture, input side)
    "baseline": ("credence-baseline", 224),
    "cnndetection": ("cnndetection-resnet50", 224),
    "npr": ("npr-resnet50", 224),
    "ufd": ("universalfakedetect-clip-vit-l14", 224),
    "xception": ("deepfakebench-xception", 256),
    "effb4": ("deepfakebench-efficientnetb4", 256),
}


def load(name: str, device: torch.device) -> LoadedDetector:
    arch_name, _ = DETECTORS[name]
    arch = architecture(arch_name)
    if name == "baseline":
        folder = ROOT / "models"
        entry = next(e for e in mf.read_manifest(folder) if e.name == "baseline")
        model = build_loaded(arch, mf.verify(entry, folder))
    else:
        entry = mf.Entry(name=name, architecture=arch_name, file="-", sha256="0" * 64, licence="-")
        model = arch.build().eval()  # random weights: speed only
    return LoadedDetector(entry, arch, model, device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batch(det: LoadedDetector, side: int, batch: int, min_s: float) -> tuple[float, float]:
    """(images/s, ms per batch): one warm-up, then whole batches until ``min_s`` has passed (at least one)."""
    x = torch.randn(batch, 3, side, side)
    det.scores(x)
    sync(det.device)
    runs, started = 0, time.perf_counter()
    while True:
        det.scores(x)
        sync(det.device)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_s:
            break
    per_batch = elapsed / runs
    return batch / per_batch, per_batch * 1000


def time_mtcnn(device: torch.device, min_s: float) -> float:
    from PIL import Image

    from worker.detection.detectors.mtcnn import MTCNN

    folder = Settings().training_data_dir / "train" / "stylegan3-ffhq" / "fake"  # CREDENCE_TRAINING_DATA_DIR
    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"no StyleGAN3 faces under {folder}: set CREDENCE_TRAINING_DATA_DIR to the training data")
    face = np.asarray(Image.open(files[0]).convert("RGB"))
    canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
    canvas[100:356, 200:456] = face
    m = MTCNN(device)
    m.detect(canvas)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < min_s or runs == 0:
        m.detect(canvas)
        sync(device)
        runs += 1
    return runs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(DETECTORS))
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="time per (detector, batch) after warm-up")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = pick_device(os.environ.get("CREDENCE_DETECT_DEVICE", ""))
    names = [n for n in (args.only.split(",") if args.only else DETECTORS) if n]
    batches = [int(b) for b in args.batches.split(",")]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({gpu}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = []
    for name in names:
        det = load(name, device)
        side = DETECTORS[name][1]
        per = {}
        for batch in batches:
            ips, ms = time_batch(det, side, batch, args.min_seconds)
            per[batch] = ips
            dtype = str(det.dtype).replace("torch.", "")
            rows.append({"detector": name, "device": str(device), "dtype": dtype, "batch": batch,
                         "images_per_s": round(ips, 2), "ms_per_batch": round(ms, 1), "input": side})
            print(f"{name:13s} {str(device):6s} {dtype:9s} batch {batch:3d}: {ips:9.2f} images/s, {ms:9.1f} ms/batch")
        if 1 in per and 32 in per:
            print(f"{name:13s} batch-32 / batch-1 throughput: {per[32] / per[1]:.2f}x")
            rows.append({"detector": name, "ratio_32_to_1": round(per[32] / per[1], 2)})
        del det
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not args.only or "mtcnn" in args.only:
        fps = time_mtcnn(device, args.min_seconds)
        print(f"mtcnn         {str(device):6s} float32   640x480 image: {fps:9.2f} images/s (one at a time)")
        rows.append({"detector": "mtcnn", "device": str(device), "images_per_s": round(fps, 2)})
    if args.json:
        print(json.dumps({"device": str(device), "name": gpu, "rows": rows}))


if __name__ == "__main__":
    main()
