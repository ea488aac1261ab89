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

Nearly no image carries the mark, so a screen comes first and the cost follows what it finds: each channel order's
votes are read on every 4th row of blocks only (the same votes the full decoder reads there), and an order whose
payloads all score below SCREEN_CUTOFF is not decoded further. The screen's score is not the bit agreement (a
majority over a quarter of the votes is too noisy: a 32-bit SD 2.x mark the full decoder read at 100% scored 0.72
on a subset) but a z-score: 1-votes on blocks whose payload bit is 1 against those whose bit is 0. It is about 0
on any unmarked image, whatever its texture, and grows with the mark's strength and the blocks read. Any order that
passes is decoded in full exactly as before, so every reported hit and agreement is the full decoder's.
Measured (2026-12-07, screen z, cut-off 2.0):
- unmarked: 1284 images (tests/images.py photos at 320x256 to 1600x1200, the 700 images of the
  shared training data scaled to 1 MP and as 976 px mosaics, 300 of them also at 256 px), 2568 screens: z mean
  0.0, sd 0.73-0.85 per payload, p99 of a screen's highest payload 2.29, highest 3.14; 2.6% of screens (5.1% of
  images, one order or both) go on to the full decode;
- marked with the package's encoder (8 photos from 256 px to 4 MP x 3 payloads x both orders x 15 variants: as
  made, JPEG q95-q70, resized by 1%, 8 rows cut, Gaussian noise sigma 6-20): 184 full-decoder hits (JPEG at each
  of those qualities erased every mark, resizing all but one), screen z at least 5.7 (weakest full agreement
  0.91), the screened result equal to the full decoder's on every image (tests check this on such variants);
- model: a mark weakened evenly until the full decoder's agreement sits at its threshold scores, on a quarter of
  the blocks, about z_threshold x sqrt(bits / 4) on average whatever the image size: 7.5 (SD 1.x), 5.3 (2.x),
  4.9 (XL); with the score's spread of about 1, an XL mark right at its threshold falls under the cut-off about
  0.2% of the time. That is the screen's one residual risk, a model estimate, not a measured miss. A fixed number
  of screened blocks would not have this property: on large images the full decoder finds marks too weak for it.
Below SCREEN_MIN_BLOCKS blocks the full decode runs at once. The screen costs about a quarter of a full decode;
1 MP: 7.5 ms -> 2.5 ms (docs/benchmarks.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SCALE = 36      # the package's default scale for the U channel
BLOCK = 4
MIN_PIXELS = 256 * 256  # the package refuses smaller images
SCREEN_STEP = 4         # the screen reads every 4th block row (module docstring)
SCREEN_CUTOFF = 2.0     # least screen z-score that sends a channel order to the full decode
SCREEN_MIN_BLOCKS = 1024  # below this many blocks (about 256 x 256 pixels) the full decode runs at once


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


def read_watermark(rgb: np.ndarray, orders: tuple[str, ...] = ("bgr", "rgb")) -> WatermarkHit | None:
    """The full decoder: the best payload at or above its threshold over every block, in the given channel
    orders. What it reports is what the package's decoder reads (tests compare them)."""
    best: WatermarkHit | None = None
    for order in orders:
        scores = block_scores(rgb, order)
        for model, expected, needed in PAYLOADS:
            if scores.size < expected.size * 2:
                continue
            agreement = float(np.mean(decode_bits(scores, expected.size) == expected))
            if agreement >= needed and (best is None or agreement > best.agreement):
                best = WatermarkHit(model, round(agreement, 4), int(expected.size), order)
    return best


def screen_votes(rgb: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """The votes of every SCREEN_STEP-th block row and each one's block number in the whole image: the full
    decoder's own votes there (colour conversion, Haar band and blocks are all local to a block row)."""
    rows, cols = rgb.shape[:2]
    nr, nc = rows // 8, cols // 8                   # block rows and columns, as block_scores cuts them
    picked = np.arange(0, nr, SCREEN_STEP)
    band = rgb[:nr * 8].reshape(nr, 8, cols, 3)[picked].reshape(-1, cols, 3)
    return block_scores(band, order), (picked[:, None] * nc + np.arange(nc)).ravel()


def screen_scores(rgb: np.ndarray, order: str) -> dict[str, float]:
    """Each payload's evidence on the screen's rows, as a z-score: the share of 1-votes on blocks whose payload bit
    is 1 minus that on blocks whose bit is 0, over its standard error. About 0 without the mark whatever the
    image's texture (a bias towards 0- or 1-votes cancels); it grows with the mark's strength."""
    votes, index = screen_votes(rgb, order)
    ones = votes.mean()
    out: dict[str, float] = {}
    for model, expected, _ in PAYLOADS:
        written = expected[index % expected.size]
        n1 = int(written.sum())
        n0 = written.size - n1
        if n1 == 0 or n0 == 0:
            continue
        spread = np.sqrt(max(ones * (1 - ones), 1e-12) * (1 / n1 + 1 / n0))
        out[model] = float((votes[written].mean() - votes[~written].mean()) / spread)
    return out


def find_sd_watermark(image: Image.Image, max_pixels: int) -> WatermarkHit | None:
    """The best-matching SD payload in an RGB image, or None (too small, too big, or no mark).

    Screens first: a channel order none of whose payloads reaches SCREEN_CUTOFF on the screen's rows is
    not decoded in full (the module docstring gives the measurements that set it); the others are, as before."""
    width, height = image.size
    if width * height < MIN_PIXELS or width * height > max_pixels:
        return None
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if (height // 8) * (width // 8) < SCREEN_MIN_BLOCKS:
        return read_watermark(rgb)
    # CompVis SD 1.x/2.x and Stability's scripts hand OpenCV BGR; diffusers hands it RGB as is.
    orders = tuple(order for order in ("bgr", "rgb")
                   if max(screen_scores(rgb, order).values(), default=np.inf) >= SCREEN_CUTOFF)
    return read_watermark(rgb, orders) if orders else None
