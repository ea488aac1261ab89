"""Architectures the manifest may name: how to build each, read its published checkpoint, feed it.

Every checkpoint is read with ``torch.load(..., weights_only=True)`` and loaded with ``strict=True``:
a file with a missing, extra or misshaped tensor is refused, never half-loaded.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CLIP = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}
HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file, tensors only (pickled code is refused by weights_only)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):  # training-script wrappers (CNNDetection: "model")
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path.name} holds no state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """DataParallel checkpoints name everything ``module.*``."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _plain(paths: dict[str, Path]) -> dict[str, torch.Tensor]:
    return strip_prefix(load_tensors(paths["weights"]))


def _ufd(paths: dict[str, Path]) -> dict[str, torch.Tensor]:
    """fc_weights.pth (``weight``/``bias`` of the probe) + a local CLIP ViT-L/14 visual state dict."""
    if "backbone" not in paths:
        raise ValueError("UniversalFakeDetect needs backbone_file: the CLIP ViT-L/14 visual weights")
    head = strip_prefix(load_tensors(paths["weights"]))
    head = strip_prefix(head, "fc.")
    backbone = strip_prefix(load_tensors(paths["backbone"]))
    if not any(k.startswith("visual.") for k in backbone):  # a file of the visual tower alone
        backbone = {f"visual.{k}": v for k, v in backbone.items()}
    state = {k: v for k, v in backbone.items() if k.startswith("visual.")}  # a whole CLIP: text tower dropped
    state.update({f"fc.{k}": v for k, v in head.items()})
    return state


@dataclass(frozen=True)
class Architecture:
    name: str
    kind: str  # "image": the whole picture; "face": each detected face
    build: Callable[[], nn.Module]
    read: Callable[[dict[str, Path]], dict[str, torch.Tensor]]
    output: str  # "sigmoid": one logit; "softmax1": two logits, P(fake) is class 1
    preprocessing: dict[str, Any] = field(default_factory=dict)
    paper: str = ""


def _resnet50():
    from worker.detection.detectors.nets.resnet import ResNet50
    return ResNet50(num_classes=1)


def _npr():
    from worker.detection.detectors.nets.resnet import NPRResNet50
    return NPRResNet50(num_classes=1)


def _ufd_model():
    from worker.detection.detectors.nets.clip_vit import UniversalFakeDetect
    return UniversalFakeDetect()


def _xception():
    from worker.detection.detectors.nets.deepfakebench import XceptionDetector
    return XceptionDetector()


def _effb4():
    from worker.detection.detectors.nets.deepfakebench import EfficientNetB4Detector
    return EfficientNetB4Detector()


def _baseline():
    from worker.detection.detectors.nets.baseline import BaselineNet
    return BaselineNet()


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("cnndetection-resnet50", "image", _resnet50, _plain, "sigmoid",
                 {"crop": 224, **IMAGENET},
                 "Wang et al. 2020, CNN-generated images are surprisingly easy to spot... for now"),
    Architecture("npr-resnet50", "image", _npr, _plain, "sigmoid", {"crop": 224, **IMAGENET},
                 "Tan et al. 2024, Rethinking the up-sampling operations in CNN-based generative networks"),
    Architecture("universalfakedetect-clip-vit-l14", "image", _ufd_model, _ufd, "sigmoid", {"crop": 224, **CLIP},
                 "Ojha et al. 2023, Towards universal fake image detectors that generalize across generative models"),
    Architecture("deepfakebench-xception", "face", _xception, _plain, "softmax1",
                 {"size": 256, "margin": 1.3, **HALF}, "Yan et al. 2023, DeepfakeBench (Xception)"),
    Architecture("deepfakebench-efficientnetb4", "face", _effb4, _plain, "softmax1",
                 {"size": 256, "margin": 1.3, **HALF}, "Yan et al. 2023, DeepfakeBench (EfficientNet-B4)"),
    Architecture("credence-baseline", "image", _baseline, _plain, "sigmoid", {"crop": 224, **IMAGENET},
                 "Credence's own baseline (models/baseline/README.md)"),
)}


PROBE_SUFFIX = "+probe"


def last_linear(model: nn.Module) -> str:
    """The name of the model's last linear layer: its input is what a probe reads, its weights what it replaces."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layer to probe")
    return names[-1]


def _probe_reader(base: Architecture) -> Callable[[dict[str, Path]], dict[str, torch.Tensor]]:
    """The base checkpoint (``backbone_file``) with its last linear layer replaced by the probe (``file``)."""
    def read(paths: dict[str, Path]) -> dict[str, torch.Tensor]:
        if "backbone" not in paths:
            raise ValueError("a probe needs backbone_file: the frozen detector's weights")
        state = base.read({"weights": paths["backbone"]})
        probe = load_tensors(paths["weights"])
        if set(probe) != {"weight", "bias"}:
            raise ValueError(f"a probe file holds weight and bias, not {sorted(probe)}")
        head = last_linear(base.build())
        state[f"{head}.weight"], state[f"{head}.bias"] = probe["weight"], probe["bias"]
        return state
    return read


def architecture(name: str) -> Architecture:
    """A known architecture, or ``<base>+probe``: a one-logit base whose last linear layer a probe replaced."""
    if name.endswith(PROBE_SUFFIX):
        base = architecture(name[:-len(PROBE_SUFFIX)])
        if base.kind != "image" or base.output != "sigmoid" or base.read is not _plain:
            raise ValueError(f"{base.name} cannot take a probe (a one-file, one-logit whole-image detector can)")
        return Architecture(name, base.kind, base.build, _probe_reader(base), "sigmoid", base.preprocessing,
                            f"a linear probe (credence detectors fit-probe) on {base.name}'s frozen features")
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})") from None


def build_loaded(arch: Architecture, paths: dict[str, Path]) -> nn.Module:
    """The network with its checkpoint, strict; eval mode, on the CPU."""
    model = arch.build()
    model.load_state_dict(arch.read(paths), strict=True)
    return model.eval()


def probabilities(arch: Architecture, logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    if arch.output == "sigmoid":
        return torch.sigmoid(logits.reshape(-1))
    return torch.softmax(logits, dim=1)[:, 1]
