"""Face detection: MTCNN on facenet-pytorch's bundled weights, checked against facenet-pytorch's own code.

facenet-pytorch cannot be imported here as installed (it needs torchvision); the upstream comparison
runs it in a subprocess with stand-ins for the two torchvision functions it calls, written below
(a brute-force NMS, ``to_tensor``), so the port in worker/detection/detectors/mtcnn.py is checked end to end.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import ROOT, training_data
from worker.detection.detectors.mtcnn import MTCNN, nms


UPSTREAM = r'''
import json, sys, types
import numpy as np, torch
from PIL import Image

def batched_nms(boxes, scores, idxs, thr):  # brute force, torchvision semantics
    keep, order = [], sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    dead = set()
    for a in order:
        if a in dead:
            continue
        keep.append(a)
        for b in order:
            if b in dead or b == a or int(idxs[b]) != int(idxs[a]):
                continue
            x1, y1 = max(boxes[a, 0], boxes[b, 0]), max(boxes[a, 1], boxes[b, 1])
            x2, y2 = min(boxes[a, 2], boxes[b, 2]), min(boxes[a, 3], boxes[b, 3])
            inter = max(float(x2 - x1), 0.0) * max(float(y2 - y1), 0.0)
            area = lambda i: float((boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))
            if inter / (area(a) + area(b) - inter) > thr:
                dead.add(b)
    return torch.as_tensor(keep, dtype=torch.long)

tv = types.ModuleType("torchvision"); ops = types.ModuleType("torchvision.ops")
boxes_mod = types.ModuleType("torchvision.ops.boxes"); boxes_mod.batched_nms = batched_nms
tr = types.ModuleType("torchvision.transforms"); fn = types.ModuleType("torchvision.transforms.functional")
fn.to_tensor = lambda a: torch.as_tensor(np.asarray(a)).permute(2, 0, 1).float() / 255
tq = types.ModuleType("tqdm"); tq.tqdm = lambda x=None, **k: x
sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": boxes_mod,
                    "torchvision.transforms": tr, "torchvision.transforms.functional": fn, "tqdm": tq})
from facenet_pytorch import MTCNN
m = MTCNN(device="cpu")
out = {}
for path in sys.argv[1:]:
    boxes, probs = m.detect(Image.open(path).convert("RGB"))
    out[path] = [] if boxes is None else [[*map(float, b), float(p)] for b, p in zip(boxes, probs)]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def mtcnn() -> MTCNN:
    return MTCNN()


@pytest.fixture(scope="module")
def samples() -> tuple[list[Path], list[Path]]:
    """Three StyleGAN3 portraits and two face-free scenes from the training data."""
    data = training_data("train")
    faces = sorted((data / "stylegan3-ffhq" / "fake").glob("*.png"))[:3]
    return faces, [data / "cnndetection-crops" / "real" / name for name in ("biggan_105.png", "imle_168.png")]


def _ours(mtcnn: MTCNN, path: Path) -> list[list[float]]:
    faces = mtcnn.detect(np.asarray(Image.open(path).convert("RGB")))
    return [[*f.box, f.confidence] for f in faces]


def test_one_face_in_each_stylegan3_portrait_and_none_in_scenes(mtcnn: MTCNN, samples) -> None:
    faces_, scenes = samples
    for path in faces_:
        faces = [f for f in _ours(mtcnn, path) if f[4] >= 0.9]
        assert len(faces) == 1, path.name
        x0, y0, x1, y1, _ = faces[0]
        assert 60 < (x1 - x0) < 200 and 60 < (y1 - y0) < 230 and 40 < (x0 + x1) / 2 < 216  # a face-sized box, centred
    for path in scenes:
        assert _ours(mtcnn, path) == [], path.name
    flat = np.full((120, 160, 3), 128, dtype=np.uint8)
    assert mtcnn.detect(flat) == []


def test_port_matches_facenet_pytorch_itself(mtcnn: MTCNN, samples) -> None:
    paths = [str(p) for p in samples[0] + samples[1]]
    run = subprocess.run([sys.executable, "-c", UPSTREAM, *paths], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    upstream = json.loads(run.stdout.strip().splitlines()[-1])
    for path in paths:
        ours = sorted(_ours(mtcnn, Path(path)), key=lambda f: -f[4])
        theirs = sorted(upstream[path], key=lambda f: -f[4])
        assert len(ours) == len(theirs), path
        np.testing.assert_allclose(np.array(ours).reshape(-1, 5), np.array(theirs).reshape(-1, 5), rtol=1e-4, atol=1e-3)


def test_nms_matches_a_brute_force_reference() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    wh = torch.rand(200, 2, generator=g) * 30 + 1
    boxes, scores = torch.cat([xy, xy + wh], 1), torch.rand(200, generator=g)
    keep = nms(boxes, scores, 0.5).tolist()
    expected, alive = [], list(torch.argsort(scores, descending=True).tolist())
    while alive:
        a = alive.pop(0)
        expected.append(a)

        def iou(b: int) -> float:
            lt, rb = torch.maximum(boxes[a, :2], boxes[b, :2]), torch.minimum(boxes[a, 2:], boxes[b, 2:])
            inter = float((rb - lt).clamp(min=0).prod())
            area = lambda i: float((boxes[i, 2:] - boxes[i, :2]).prod())  # noqa: E731
            return inter / (area(a) + area(b) - inter)

        alive = [b for b in alive if iou(b) <= 0.5]
    assert keep == expected
