"""Perceptual hashes (PDQ, pHash) from the one decoded image, each at the scale it tolerates.

PDQ: pdqhash filters at full resolution (~20 ms at 1 MP, ~500 ms at 12 MP) and decimates to 64x64
whatever the aspect ratio, so it is computed on a 576x576 resize. 576 is an odd multiple of 64:
on such a square, PDQ's decimation grid is symmetric, so the 8 rotations/flips that
``pdqhash.compute_dihedral`` derives from one DCT are exactly the hashes of the turned pixels
(on other sizes they drift 16-50 bits). Drift against full-resolution PDQ is bounded in
tests/test_hashes.py. pHash resizes to 32x32 itself, so it takes a 128 px short side.
"""
from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

PDQ_SIDE = 576  # 9 x 64
PHASH_SIDE = 128
PDQ_MIN_QUALITY = 50  # below this, PDQ is unreliable (flat images): the ecosystem drops such hashes
# Order of pdqhash.compute_dihedral: how the checked image was turned before hashing.
ORIENTATION_NAMES = ("as is", "rotated 90°", "rotated 180°", "rotated 270°", "flipped top to bottom",
                     "flipped left to right", "rotated 90° and flipped top to bottom",
                     "rotated 90° and flipped left to right")


@dataclass(frozen=True)
class PerceptualHashes:
    pdq: str  # 64 lowercase hex chars, pdqhash bit order (first bit = most significant)
    pdq_quality: int
    phash: str  # 16 lowercase hex chars (imagehash)

    @property
    def pdq_usable(self) -> bool:
        return self.pdq_quality >= PDQ_MIN_QUALITY


def scale_to(image: Image.Image, short_side: int) -> Image.Image:
    """Box-downscale so the short side is ``short_side``; smaller images are left as they are."""
    width, height = image.size
    if min(width, height) <= short_side:
        return image
    ratio = short_side / min(width, height)
    return image.resize((max(1, round(width * ratio)), max(1, round(height * ratio))), Image.Resampling.BOX)


def pdq_input(image: Image.Image) -> np.ndarray:
    shrink = min(image.size) >= PDQ_SIDE
    square = image.resize((PDQ_SIDE, PDQ_SIDE), Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC)
    return np.asarray(square.convert("RGB"))


def pdq_bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq(image: Image.Image) -> tuple[str, int]:
    """Reference PDQ of the pixels as given (full resolution): for measuring drift and interop."""
    bits, quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return pdq_bits_to_hex(bits), int(quality)


def phash(image: Image.Image) -> str:
    return str(imagehash.phash(image))


def compute(image: Image.Image) -> PerceptualHashes:
    return compute_with_orientations(image)[0]


def compute_with_orientations(image: Image.Image) -> tuple[PerceptualHashes, list[str]]:
    """The hashes, plus PDQ in all 8 orientations (identity first), so a rotated or mirrored
    re-upload still matches a banked original."""
    vectors, quality = pdqhash.compute_dihedral(pdq_input(image))
    variants = [pdq_bits_to_hex(v) for v in vectors]
    hashes = PerceptualHashes(pdq=variants[0], pdq_quality=int(quality), phash=phash(scale_to(image, PHASH_SIDE)))
    return hashes, variants


def hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
