"""Face detection: MTCNN with the weights that ship inside the facenet-pytorch package.

facenet-pytorch (MIT) bundles P-, R- and O-Net state dicts in ``facenet_pytorch/data``, but its Python
module cannot be imported here: it needs torchvision (whose wheels do not match the local CPU build of
torch) and pins old versions of everything. So the package is installed without dependencies for its
weight files only, and this module ports its three networks and its ``detect_face`` cascade
(models/mtcnn.py, models/utils/detect_face.py) with a pure-torch NMS in place of torchvision's.
Defaults are facenet-pytorch's: min_face_size 20, thresholds 0.6/0.7/0.7, scale factor 0.709.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.functional import interpolate


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x)))))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def weights_dir() -> Path:
    """facenet-pytorch's bundled weight files, found without importing the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("facenet-pytorch is not installed (pip install --no-deps facenet-pytorch==2.6.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with torchvision.ops.nms semantics (IoU without the +1, drop IoU > threshold)."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    order = torch.argsort(scores, descending=True, stable=True)
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for pos in range(len(order)):
        if suppressed[pos]:
            continue
        i = order[pos]
        keep.append(int(i))
        rest = order[pos + 1:]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[rest] - inter)
        suppressed[pos + 1:] |= iou > threshold
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, threshold: float) -> torch.Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.long, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, threshold)


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's final 'Min' NMS (overlap over the smaller area, +1 pixel areas)."""
    if boxes.size == 0:
        return np.empty((0,), dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        o = (w * h) / np.minimum(area[i], area[idx])
        order = idx[o <= threshold]
    return np.asarray(pick, dtype=np.int64)


def _generate_boxes(reg: torch.Tensor, probs: torch.Tensor, scale: float, thresh: float):
    stride, cellsize = 2, 12
    reg = reg.permute(1, 0, 2, 3)
    mask = probs >= thresh
    mask_inds = mask.nonzero()
    image_inds = mask_inds[:, 0]
    score = probs[mask]
    reg = reg[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(reg.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), reg], dim=1), image_inds


def _bbreg(box: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    w = box[:, 2] - box[:, 0] + 1
    h = box[:, 3] - box[:, 1] + 1
    out = box.clone()
    out[:, :4] = torch.stack([box[:, 0] + reg[:, 0] * w, box[:, 1] + reg[:, 1] * h,
                              box[:, 2] + reg[:, 2] * w, box[:, 3] + reg[:, 3] * h], dim=1)
    return out


def _rerec(box: torch.Tensor) -> torch.Tensor:
    out = box.clone()
    h = box[:, 3] - box[:, 1]
    w = box[:, 2] - box[:, 0]
    side = torch.max(w, h)
    out[:, 0] = box[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = box[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, :2] + side.repeat(2, 1).permute(1, 0)
    return out


def _pad(boxes: torch.Tensor, w: int, h: int):
    b = boxes.trunc().int().cpu().numpy()
    x, y, ex, ey = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def _crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, list[int]]:
    h, w = img.shape[1:]
    y, ey, x, ex = _pad(boxes, w, h)
    crops, kept = [], []
    for k in range(len(y)):
        if ey[k] > (y[k] - 1) and ex[k] > (x[k] - 1):
            crop = img[:, (y[k] - 1):ey[k], (x[k] - 1):ex[k]].unsqueeze(0)
            crops.append(interpolate(crop, size=(size, size), mode="area"))
            kept.append(k)
    return (torch.cat(crops, dim=0) - 127.5) * 0.0078125, kept


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    confidence: float


class MTCNN:
    def __init__(self, device: torch.device | str = "cpu", min_face_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), factor: float = 0.709) -> None:
        folder = weights_dir()
        self.device = torch.device(device)
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, name in ((self.pnet, "pnet.pt"), (self.rnet, "rnet.pt"), (self.onet, "onet.pt")):
            net.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True), strict=True)
            net.to(self.device).eval()

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image (H, W, 3), strongest first."""
        img = torch.as_tensor(np.array(image, dtype=np.uint8, copy=True), device=self.device).permute(2, 0, 1).float()
        h, w = img.shape[1:]
        m = 12.0 / self.min_face_size
        minl = min(h, w) * m
        scales, scale = [], m
        while minl >= 12:
            scales.append(scale)
            scale *= self.factor
            minl *= self.factor
        boxes_all, inds_all = [], []
        for scale in scales:
            data = interpolate(img.unsqueeze(0), size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, probs = self.pnet((data - 127.5) * 0.0078125)
            boxes, inds = _generate_boxes(reg, probs[:, 1], scale, self.thresholds[0])
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
            boxes_all.append(boxes[pick])
            inds_all.append(inds[pick])
        if not boxes_all:
            return []
        boxes, inds = torch.cat(boxes_all), torch.cat(inds_all)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes = boxes[pick]
        if len(boxes) == 0:
            return []
        regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                             boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]], dim=1)
        boxes = _rerec(boxes)
        # R-Net
        data, kept = _crops(img, boxes, 24)
        boxes = boxes[kept]
        reg, probs = self.rnet(data)
        score = probs[:, 1]
        ok = score > self.thresholds[1]
        boxes = torch.cat([boxes[ok, :4], score[ok].unsqueeze(1)], dim=1)
        reg = reg[ok]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _rerec(_bbreg(boxes[pick], reg[pick]))
        if len(boxes) == 0:
            return []
        # O-Net
        data, kept = _crops(img, boxes, 48)
        boxes = boxes[kept]
        reg, _points, probs = self.onet(data)
        score = probs[:, 1]
        ok = score > self.thresholds[2]
        boxes = _bbreg(torch.cat([boxes[ok, :4], score[ok].unsqueeze(1)], dim=1), reg[ok])
        pick = _nms_min(boxes[:, :4].cpu().numpy(), boxes[:, 4].cpu().numpy(), 0.7)
        out = boxes[torch.as_tensor(pick, dtype=torch.long)].cpu().numpy()
        faces = [Face(box=tuple(float(v) for v in row[:4]), confidence=float(row[4])) for row in out]
        return sorted(faces, key=lambda f: -f.confidence)
