"""The invisible watermark Stable Diffusion's reference scripts put into every image.

SD 1.x writes the bytes "StableDiffusionV1", SD 2.x "SDV2", SDXL a fixed 48-bit pattern, all
with the invisible-watermark package's dwtDct method. It is weak evidence: re-encoding,
resizing or cropping erase it, and any other tool can write the same bits. So a hit is reported
with its bit agreement as a score, and a miss means nothing.

Decoding follows ``imwatermark.maxDct.EmbedMaxDct.decode`` exactly (same colour conversion,
Haar DWT, 4x4 blocks, largest AC coefficient modulo the scale), vectorised so that one pass
over the image serves all three payloads; tests check it against the package's own decoder.
Only the DWT's approximation band is read, so it alone is computed (``haar_approximation``: the
package's pywt.dwt2 computes all four bands in float64 and was 85% of this stage's time).
The package itself is not imported here: its ``__init__`` pulls in torch for RivaGAN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SCALE = 36      # the package's default scale for the U channel
BLOCK = 4
MIN_PIXELS = 256 * 256  # the package refuses smaller images


def _bits_of(payload: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(bool)


_SDXL = 0b101100111110110010010000011110111011000110011110
# (model, expected bits, least bit agreement that counts). Shorter payloads need more agreement
# for the same false-alarm rate on unmarked images.
PAYLOADS: tuple[tuple[str, np.ndarray, float], ...] = (
    ("Stable Diffusion 1.x", _bits_of(b"StableDiffusionV1"), 0.90),
    ("Stable Diffusion 2.x", _bits_of(b"SDV2"), 0.97),
    ("Stable Diffusion XL", np.array([b == "1" for b in bin(_SDXL)[2:]]), 0.92),
)


@dataclass(frozen=True)
class WatermarkHit:
    model: str
    agreement: float     # share of payload bits read back as written
    bits: int
    channel_order: str   # "bgr" (CompVis / generative-models scripts) or "rgb" (diffusers)


HAAR = 0.7071067811865476  # pywt's Haar filter tap: kept, so that every sum rounds as the package's does
_TAP = np.arange(256, dtype=np.float64) * HAAR
# (top * HAAR + bottom * HAAR) * HAAR for every pair of 8-bit samples, at index top * 256 + bottom: the row pass
# and half the column pass as one lookup, each value rounded exactly as pywt's arithmetic rounds it.
_PAIR = (_TAP[:, None] + _TAP[None, :]).ravel() * HAAR


def haar_approximation(channel: np.ndarray) -> np.ndarray:
    """pywt.dwt2(channel, "haar")[0] of an 8-bit channel, bit for bit (rows, then columns, as pywt filters), for
    even sides. Table lookups instead of float passes over the whole image: this stage's largest cost."""
    pairs = channel[0::2].astype(np.uint16) * 256 + channel[1::2]
    return _PAIR.take(pairs[:, 0::2]) + _PAIR.take(pairs[:, 1::2])


def block_scores(pixels: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Per-block bit votes (0/1) in the package's block order, from the U channel. ``pixels`` are RGB;
    ``order`` is the channel order the marking script handed OpenCV (so "bgr" converts RGB as RGB)."""
    import cv2

    rows, cols = pixels.shape[:2]
    code = cv2.COLOR_RGB2YUV if order == "bgr" else cv2.COLOR_BGR2YUV
    yuv = cv2.cvtColor(np.ascontiguousarray(pixels), code)
    ca1 = haar_approximation(yuv[:rows // 4 * 4, :cols // 4 * 4, 1])
    nr, nc = ca1.shape[0] // BLOCK, ca1.shape[1] // BLOCK
    blocks = ca1[:nr * BLOCK, :nc * BLOCK].reshape(nr, BLOCK, nc, BLOCK).transpose(0, 2, 1, 3)
    flat = blocks.reshape(nr * nc, BLOCK * BLOCK)
    pos = np.argmax(np.abs(flat[:, 1:]), axis=1) + 1   # largest AC coefficient, first on ties
    val = np.abs(flat[np.arange(flat.shape[0]), pos])
    return (val % SCALE) > 0.5 * SCALE


def decode_bits(scores: np.ndarray, length: int) -> np.ndarray:
    """The payload bits: block i votes for bit i mod length, majority wins (as the package does)."""
    padded = np.full(-(-scores.size // length) * length, np.nan)
    padded[:scores.size] = scores
    means = np.nanmean(padded.reshape(-1, length), axis=0)
    return means * 255 > 127


def find_sd_watermark(image: Image.Image, max_pixels: int) -> WatermarkHit | None:
    """The best-matching SD payload in an RGB image, or None (too small, too big, or no mark)."""
    width, height = image.size
    if width * height < MIN_PIXELS or width * height > max_pixels:
        return None
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    best: WatermarkHit | None = None
    # CompVis SD 1.x/2.x and Stability's scripts hand OpenCV BGR; diffusers hands it RGB as is.
    for order in ("bgr", "rgb"):
        scores = block_scores(rgb, order)
        for model, expected, needed in PAYLOADS:
            if scores.size < expected.size * 2:
                continue
            agreement = float(np.mean(decode_bits(scores, expected.size) == expected))
            if agreement >= needed and (best is None or agreement > best.agreement):
                best = WatermarkHit(model, round(agreement, 4), int(expected.size), order)
    return best
