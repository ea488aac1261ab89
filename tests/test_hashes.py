"""Perceptual hashes: the drift of the reduced-scale hashing is bounded, and the robustness table."""
from __future__ import annotations

import numpy as np
import pytest

from tests.images import TRANSFORMS, photo
from worker.stages import hashes as H

PHOTOS = [photo(k, (1600, 1200)) for k in range(12)]
# Measured on these mosaics: max 6 bits for PDQ at 576x576 against full resolution.
PDQ_DRIFT_BOUND = 8
PHASH_DRIFT_BOUND = 2


def test_reduced_scale_drift_is_bounded() -> None:
    pdq_drift = [H.hamming_hex(H.pdq(im)[0], H.compute(im).pdq) for im in PHOTOS]
    phash_drift = [H.hamming_hex(H.phash(im), H.compute(im).phash) for im in PHOTOS]
    assert max(pdq_drift) <= PDQ_DRIFT_BOUND, pdq_drift
    assert max(phash_drift) <= PHASH_DRIFT_BOUND, phash_drift
    assert H.pdq_input(PHOTOS[0]).shape == (576, 576, 3)  # really reduced


def test_hex_format_matches_the_ecosystem() -> None:
    h = H.compute(PHOTOS[0])
    assert len(h.pdq) == 64 and h.pdq == h.pdq.lower() and len(h.phash) == 16
    assert h.pdq_quality >= H.PDQ_MIN_QUALITY


def test_orientations_are_exact_and_start_with_identity() -> None:
    from PIL import Image

    image = photo(3, (800, 600))
    base, variants = H.compute_with_orientations(image)
    assert variants[0] == base.pdq and len(set(variants)) == 8
    for turn in Image.Transpose:
        turned = H.compute_with_orientations(image.transpose(turn))[1]
        assert min(H.hamming_hex(base.pdq, v) for v in turned) <= 4, turn


def test_flat_images_have_low_quality() -> None:
    from PIL import Image

    assert not H.compute(Image.new("RGB", (600, 600), (120, 120, 120))).pdq_usable


# Expected outcome per transform at the default thresholds (PDQ <= 31 in any orientation, pHash <= 6),
# as measured on tests/images.py's mosaics (text overlay 65%, crop 5% 95%, crop 10% 40% on 2026-12-06); PDQ is
# known not to survive crops, pHash survives small ones.
EXPECTED_MATCH_RATE = {
    "resize 50%": 1.0, "JPEG q90": 1.0, "JPEG q70": 1.0, "JPEG q50": 1.0, "brightness +10%": 1.0,
    "brightness -10%": 1.0, "horizontal flip": 1.0, "rotate 90°": 1.0, "text overlay": 0.6,
    "crop 5%": 0.6, "crop 10%": 0.0,
}
ROBUST = [photo(k) for k in range(20)]


def _matched(base: H.PerceptualHashes, copy_image) -> tuple[bool, int, int]:
    copy, variants = H.compute_with_orientations(copy_image)
    pdq = min(H.hamming_hex(base.pdq, v) for v in variants)
    ph = H.hamming_hex(base.phash, copy.phash)
    return pdq <= 31 or ph <= 6, pdq, ph


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_robustness_table(name: str, record_property) -> None:
    outcomes = [_matched(H.compute(im), TRANSFORMS[name](im)) for im in ROBUST]
    rate = float(np.mean([m for m, _, _ in outcomes]))
    pdq = [p for _, p, _ in outcomes]
    record_property("row", f"{name}: matched {rate:.0%}, PDQ distance mean {np.mean(pdq):.1f} max {max(pdq)}")
    print(f"{name:16s} matched {rate:5.0%}  PDQ mean {np.mean(pdq):5.1f} max {max(pdq):3d}")
    assert rate >= EXPECTED_MATCH_RATE[name]


def test_unrelated_images_never_match() -> None:
    hashes = [H.compute(im) for im in ROBUST]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1:]:
            assert H.hamming_hex(a.pdq, b.pdq) > 31 + 32  # far outside, not just over the line
            assert H.hamming_hex(a.phash, b.phash) > 6
