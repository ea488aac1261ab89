"""Perceptual hashes (PDQ, pHash) from the one decoded image.

PDQ is what Meta's reference computes on the full decoded pixels (worker/stages/pdq.py), so the hashes we
store, match and export are the ones other systems (``threatexchange hash photo``) compute and look up
exactly, and each of the 8 orientations is the reference hash of the really turned pixels;
tests/test_hashes.py checks both against ``pdqhash`` and threatexchange (at most 1 bit of float rounding).
pHash resizes to 32x32 itself, so it takes a 128 px short side.
"""
from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from worker.stages import pdq as faithful_pdq

PHASH_SIDE = 128
PDQ_MIN_QUALITY = 50  # below this, PDQ is unreliable (flat images): the ecosystem drops such hashes
# Order of pdqhash.compute_dihedral: how the checked image was turned before hashing (np.rot90 turns).
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


def pdq_bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq(image: Image.Image) -> tuple[str, int]:
    """Meta's own implementation (pdqhash) on the pixels as given: what the tests and the benchmark compare with."""
    bits, quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return pdq_bits_to_hex(bits), int(quality)


def phash(image: Image.Image) -> str:
    return str(imagehash.phash(image))


def compute(image: Image.Image) -> PerceptualHashes:
    return compute_with_orientations(image)[0]


def compute_with_orientations(image: Image.Image) -> tuple[PerceptualHashes, list[str]]:
    """The hashes, plus PDQ in all 8 orientations (identity first), so a rotated or mirrored
    re-upload still matches a banked original."""
    variants, quality = faithful_pdq.dihedral(image)
    hashes = PerceptualHashes(pdq=variants[0], pdq_quality=int(quality), phash=phash(scale_to(image, PHASH_SIDE)))
    return hashes, variants


def hamming_hex(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
