"""Upstream preprocessing without torchvision: centre crop (never a resize) and face crops."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def center_crop(image: Image.Image, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """torchvision's ``CenterCrop(size)`` on an RGB image: zero padding when smaller, never resized.

    Returns the crop (H, W, 3 uint8) and its box (x0, y0, x1, y1) in image pixels (clipped to the image).
    """
    arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    if w < size or h < size:
        left, top = max((size - w) // 2, 0), max((size - h) // 2, 0)
        right, bottom = max((size - w + 1) // 2, 0), max((size - h + 1) // 2, 0)
        arr = np.pad(arr, ((top, bottom), (left, right), (0, 0)))
        offset = (-left, -top)
    else:
        offset = (0, 0)
    ph, pw = arr.shape[:2]
    y0, x0 = int(round((ph - size) / 2.0)), int(round((pw - size) / 2.0))
    crop = arr[y0:y0 + size, x0:x0 + size]
    bx0, by0 = x0 + offset[0], y0 + offset[1]
    box = (max(bx0, 0), max(by0, 0), min(bx0 + size, w), min(by0 + size, h))
    return np.ascontiguousarray(crop), box


def to_tensor(arr: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """``ToTensor`` then ``Normalize``: (H, W, 3) uint8 -> (3, H, W) float32."""
    x = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def face_crop(image: Image.Image, box: tuple[float, float, float, float], size: int, margin: float) -> np.ndarray:
    """A square around the face box enlarged by ``margin`` (zero beyond the image), resized to ``size``."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * margin
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side_px = max(int(round(side)), 1)
    # PIL's crop pads outside the image with zeros, as a dlib/cv2 crop with a border would.
    crop = image.convert("RGB").crop((left, top, left + side_px, top + side_px))
    return np.asarray(crop.resize((size, size), Image.BILINEAR))
