"""Loaded detectors of one worker process and batched inference over many images at once.

One ``Runtime`` per process (and per manifest/config), built on the first batch: checkpoints are
verified (SHA-256) and loaded once; a detector that fails is reported, the others still run. On CUDA:
inference mode, bfloat16 (or float16) where the architecture allows, channels-last. On CPU: float32.
Per-item problems stay per item: an image that cannot be prepared, or whose forward pass fails
when retried alone, gets an error result; the rest of the batch is unaffected.
"""
from __future__ import annotations

import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from server.detection import manifest as mf
from worker.detection.detectors.preprocess import center_crop, face_crop, to_tensor
from worker.detection.detectors.registry import Architecture, architecture, build_loaded, probabilities

log = logging.getLogger(__name__)
MIN_FACE_CONFIDENCE = 0.9
MAX_FACES = 8


@dataclass
class Result:
    """One detector's finding on one image."""

    detector: str
    kind: str  # "image" or "face"
    score: float | None = None
    faces: list[dict[str, Any]] = field(default_factory=list)
    crop_box: tuple[int, int, int, int] | None = None
    heatmap_png: bytes | None = None
    heatmap: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def pick_device(name: str = "") -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, allow_half: bool = True) -> torch.dtype:
    if device.type != "cuda" or not allow_half:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class LoadedDetector:
    def __init__(self, entry: mf.Entry, arch: Architecture, model: torch.nn.Module, device: torch.device) -> None:
        self.entry, self.arch = entry, arch
        self.pre = {**arch.preprocessing, **entry.preprocessing}
        self.device = device
        self.dtype = pick_dtype(device, bool(self.pre.get("half", True)))
        self.channels_last = device.type == "cuda"
        model = model.to(device=device, dtype=self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.cam_layer = getattr(model, "cam_layer", None)

    @property
    def name(self) -> str:
        return self.entry.name

    def prepare(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int, int, int], np.ndarray]:
        crop, box = center_crop(image, int(self.pre["crop"]))
        return to_tensor(crop, self.pre["mean"], self.pre["std"]), box, crop

    def prepare_face(self, image: Image.Image, box: tuple[float, float, float, float]) -> torch.Tensor:
        crop = face_crop(image, box, int(self.pre["size"]), float(self.pre.get("margin", 1.3)))
        return to_tensor(crop, self.pre["mean"], self.pre["std"])

    def _input(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, dtype=self.dtype, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def scores(self, batch: torch.Tensor) -> list[float]:
        with torch.inference_mode():
            return probabilities(self.arch, self.model(self._input(batch))).cpu().tolist()

    def scores_and_cams(self, batch: torch.Tensor) -> tuple[list[float], np.ndarray]:
        """Grad-CAM on ``cam_layer`` for every item of the batch, from the same forward pass."""
        layer = self.model.get_submodule(self.cam_layer)
        seen: dict[str, torch.Tensor] = {}
        hook = layer.register_forward_hook(lambda _m, _i, out: seen.__setitem__("a", out))
        try:
            with torch.enable_grad():
                logits = self.model(self._input(batch))
                act = seen["a"]
                target = logits.reshape(-1) if self.arch.output == "sigmoid" else logits[:, 1] - logits[:, 0]
                grad = torch.autograd.grad(target.sum(), act)[0]
        finally:
            hook.remove()
        with torch.no_grad():
            weights = grad.float().mean(dim=(2, 3), keepdim=True)
            cams = torch.relu((weights * act.float()).sum(dim=1))
            probs = probabilities(self.arch, logits.detach())
        return probs.cpu().tolist(), cams.cpu().numpy()


def heatmap_png(crop: np.ndarray, cam: np.ndarray) -> bytes:
    """The crop under a JET-coloured Grad-CAM map (red: what pushed the score up), as PNG bytes."""
    import cv2

    h, w = crop.shape[:2]
    cam = cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    peak = float(cam.max())
    cam = cam / peak if peak > 0 else cam
    colour = cv2.applyColorMap(np.uint8(255 * cam), cv2.COLORMAP_JET)[:, :, ::-1]
    blend = (0.55 * crop.astype(np.float32) + 0.45 * colour.astype(np.float32)).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(blend).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _run_group(det: LoadedDetector, tensors: list[torch.Tensor], want_cams: bool):
    """Scores (and CAMs) for same-shape tensors; if the batch fails, each item alone."""
    try:
        batch = torch.stack(tensors)
        return det.scores_and_cams(batch) if want_cams else (det.scores(batch), None)
    except Exception:  # noqa: BLE001 - isolate the broken item(s) below
        if len(tensors) == 1:
            raise
        log.warning("detector %s failed on a batch of %d; retrying items alone", det.name, len(tensors),
                    exc_info=True)
    scores: list[float | Exception] = []
    cams: list[np.ndarray | None] = []
    for t in tensors:
        try:
            s, c = _run_group(det, [t], want_cams)
            scores.append(s[0])
            cams.append(c[0] if c is not None else None)
        except Exception as exc:  # noqa: BLE001
            scores.append(exc)
            cams.append(None)
    return scores, (cams if want_cams else None)


class Runtime:
    def __init__(self, models_dir: Path, names: str = "", device: str = "", heatmaps: bool = True) -> None:
        self.models_dir = Path(models_dir)
        self.device = pick_device(device)
        self.heatmaps = heatmaps
        self.entries = mf.select(mf.read_manifest(self.models_dir), names)  # ManifestError: nothing can run
        self.detectors: list[LoadedDetector] = []
        self.failed: dict[str, str] = {}
        self._faces = None
        for entry in self.entries:
            started = time.perf_counter()
            try:
                arch = architecture(entry.architecture)
                paths = mf.verify(entry, self.models_dir)
                det = LoadedDetector(entry, arch, build_loaded(arch, paths), self.device)
            except mf.DetectorUnavailable as exc:
                self._fail(entry.name, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - a bad checkpoint is this detector's problem only
                self._fail(entry.name, f"failed to load: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            self.detectors.append(det)
            log.info("detector %s (%s) loaded on %s/%s in %.1f s", entry.name, entry.architecture, self.device,
                     str(det.dtype).replace("torch.", ""), time.perf_counter() - started)
        if any(d.arch.kind == "face" for d in self.detectors):
            try:
                from worker.detection.detectors.mtcnn import MTCNN

                self._faces = MTCNN(self.device)
            except Exception as exc:  # noqa: BLE001
                for det in [d for d in self.detectors if d.arch.kind == "face"]:
                    self._fail(det.name, f"face detector unavailable: {type(exc).__name__}: {exc}")
                self.detectors = [d for d in self.detectors if d.arch.kind != "face"]
        cam = [d for d in self.detectors if d.arch.kind == "image" and d.cam_layer]
        self.cam_detector = cam[0].name if cam and heatmaps else None

    def _fail(self, name: str, reason: str) -> None:
        log.error("DETECTOR UNAVAILABLE: %s: %s (models dir %s)", name, reason, self.models_dir)
        self.failed[name] = reason

    def describe(self) -> dict[str, Any]:
        return {"device": str(self.device),
                "loaded": {d.name: {"architecture": d.entry.architecture, "dtype": str(d.dtype).replace("torch.", ""),
                                    "version": d.entry.version_tag()} for d in self.detectors},
                "failed": dict(self.failed)}

    def detect(self, images: list[Image.Image | None], cams: list[bool] | None = None) -> list[list[Result]]:
        """Every loaded detector over every image; ``None`` images get no results.

        ``cams`` says which images may get a heat map (default: all); a video's keyframes are scored
        without, and only its worst frame is explained afterwards (``explain``), to bound the cost.
        """
        out: list[list[Result]] = [[] for _ in images]
        wanted = [True] * len(images) if cams is None else list(cams)
        for det in self.detectors:
            if det.arch.kind == "image":
                self._image_detector(det, images, out, wanted)
        face_dets = [d for d in self.detectors if d.arch.kind == "face"]
        if face_dets:
            self._face_detectors(face_dets, images, out)
        return out

    def explain(self, images: list[Image.Image]) -> list[Result | None]:
        """The heat-map detector alone over these images, with heat maps (None: no such detector)."""
        det = next((d for d in self.detectors if d.name == self.cam_detector), None)
        out: list[list[Result]] = [[] for _ in images]
        if det is not None:
            self._image_detector(det, list(images), out, [True] * len(images))
        return [found[0] if found else None for found in out]

    def _image_detector(self, det: LoadedDetector, images: list[Image.Image | None], out: list[list[Result]],
                        cams: list[bool]) -> None:
        explains = det.name == self.cam_detector
        prepared: dict[int, tuple[torch.Tensor, tuple[int, int, int, int], np.ndarray]] = {}
        for i, image in enumerate(images):
            if image is None:
                continue
            try:
                prepared[i] = det.prepare(image)
            except Exception as exc:  # noqa: BLE001
                out[i].append(Result(det.name, "image", error=f"preprocessing failed: {type(exc).__name__}: {exc}"))
        groups: dict[tuple[tuple[int, ...], bool], list[int]] = {}
        for i, (tensor, _box, _crop) in prepared.items():
            groups.setdefault((tuple(tensor.shape), explains and cams[i]), []).append(i)
        for (_shape, want_cams), idx in groups.items():
            try:
                scores, cams = _run_group(det, [prepared[i][0] for i in idx], want_cams)
            except Exception as exc:  # noqa: BLE001
                scores, cams = [exc] * len(idx), None
            for j, i in enumerate(idx):
                score = scores[j]
                if isinstance(score, Exception):
                    out[i].append(Result(det.name, "image", error=f"{type(score).__name__}: {str(score)[:300]}"))
                    continue
                res = Result(det.name, "image", score=float(score), crop_box=prepared[i][1])
                if cams is not None and cams[j] is not None:
                    try:
                        res.heatmap_png = heatmap_png(prepared[i][2], cams[j])
                        res.heatmap = {"method": "grad-cam", "layer": det.cam_layer, "box": list(prepared[i][1])}
                    except Exception:  # noqa: BLE001 - an explanation is optional, the score is not
                        log.warning("heat map failed for %s", det.name, exc_info=True)
                out[i].append(res)

    def _face_detectors(self, dets: list[LoadedDetector], images: list[Image.Image | None],
                        out: list[list[Result]]) -> None:
        faces: dict[int, list] = {}
        errors: dict[int, str] = {}
        for i, image in enumerate(images):
            if image is None:
                continue
            try:
                found = self._faces.detect(np.array(image.convert("RGB")))
                faces[i] = [f for f in found if f.confidence >= MIN_FACE_CONFIDENCE][:MAX_FACES]
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"face detection failed: {type(exc).__name__}: {exc}"
        for det in dets:
            for i, reason in errors.items():
                out[i].append(Result(det.name, "face", error=reason))
            crops: list[torch.Tensor] = []
            owners: list[tuple[int, int]] = []
            for i, found in faces.items():
                for k, face in enumerate(found):
                    try:
                        crops.append(det.prepare_face(images[i], face.box))
                        owners.append((i, k))
                    except Exception:  # noqa: BLE001
                        log.warning("face crop failed", exc_info=True)
            scores: list = []
            if crops:
                try:
                    scores, _ = _run_group(det, crops, False)
                except Exception as exc:  # noqa: BLE001
                    scores = [exc] * len(crops)
            per_image: dict[int, list[dict[str, Any]]] = {i: [] for i in faces}
            failures: dict[int, str] = {}
            for (i, k), score in zip(owners, scores):
                face = faces[i][k]
                if isinstance(score, Exception):
                    failures[i] = f"{type(score).__name__}: {str(score)[:300]}"
                    continue
                per_image[i].append({"box": [round(v, 1) for v in face.box], "face_confidence": round(face.confidence, 4),
                                     "score": round(float(score), 4)})
            for i, found in per_image.items():
                if i in failures and not found:
                    out[i].append(Result(det.name, "face", error=failures[i]))
                    continue
                best = max((f["score"] for f in found), default=None)
                out[i].append(Result(det.name, "face", score=best, faces=sorted(found, key=lambda f: -f["score"])))


_RUNTIMES: dict[tuple, Runtime] = {}


def runtime_for(models_dir: Path, names: str, device: str, heatmaps: bool, threads: int = 0) -> Runtime:
    """This process's runtime for the configuration; rebuilt after fork or when the manifest changes.

    ``threads`` > 0 sets this process's torch threads first: torch's default (one per core) in each of a
    pool's processes, one per core already, makes them spin against each other (measured on 2 cores: a batch
    of 2 images 3-10x slower than with one thread each)."""
    path = Path(models_dir) / mf.MANIFEST
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    key = (os.getpid(), str(Path(models_dir).resolve()), names, device, heatmaps, threads, stamp)
    if key not in _RUNTIMES:
        _RUNTIMES.clear()
        if threads > 0:
            torch.set_num_threads(threads)
        _RUNTIMES[key] = Runtime(models_dir, names, device, heatmaps)
    return _RUNTIMES[key]
