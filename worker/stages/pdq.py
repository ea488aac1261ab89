"""PDQ as Meta's reference computes it (the same bits but for float rounding), for the image and its 8
rotations/flips, from one pass over the pixels.

Why not ``pdqhash``: the reference filters the whole picture in float32 once per call, so 8 orientations
cost 8 full hashes (``compute_dihedral`` derives them from one DCT, which is exact only on special
square sizes), and its float64 luminance alone costs more than the decode it follows.

The reference (facebook/ThreatExchange pdq/cpp: pdqhashing.cpp, downscaling.cpp, torben.cpp):
luminance 0.299 R + 0.587 G + 0.114 B; per axis of length n a box filter of window
``(n + 127) // 128`` applied twice (it starts ``window - (window + 2) // 2`` samples before each output,
shrinks at the edges and divides by the samples it covers); the 64x64 samples at
``int((i + 0.5) * n / 64)``; the 16x16 DCT coefficients 1..16; bits = coefficient > lower median;
quality from the 64x64's truncated gradients. Filter + sampling is linear and separable, so the 64x64 is
``Wr @ Y @ Wc.T`` with ``Wr``/``Wc`` sparse (64 x n, about n non-zeros each). A flip reverses the weights'
columns and a quarter turn swaps the axes, so the 8 orientations need only the 4 products of
{forward, reversed} row weights with {forward, reversed} column weights, each read as is or transposed.
Every orientation is thereby the reference hash of the really turned pixels (tests/test_hashes.py).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse
from PIL import Image

SIDE = 64
MIN_DIMENSION = 5  # below this the reference returns an all-zero hash of quality 0
CACHED_UP_TO = 8192  # longer sides' weights (about 16 bytes per pixel of side) are rebuilt, not kept

# Row-major 16x64 DCT-II rows 1..16, as dct_matrix_64 in pdqhashing.cpp.
_DCT = np.sqrt(2.0 / SIDE) * np.cos(np.pi / 2.0 / SIDE * np.arange(1, 17)[:, None] * (2 * np.arange(SIDE) + 1))

# Orientation k of pdqhash.compute_dihedral (hashes.ORIENTATION_NAMES) as (row weights reversed,
# column weights reversed, transposed); the pixels turned are np.rot90(y, 1/2/3), y[::-1], y[:, ::-1],
# y.T and np.rot90(y, 2).T.
_ORIENTATIONS = ((0, 0, False), (0, 1, True), (1, 1, False), (1, 0, True),
                 (1, 0, False), (0, 1, False), (0, 0, True), (1, 1, True))


def luma(image: Image.Image) -> np.ndarray:
    """float32 luminance. Pillow's RGB->F conversion is (299 R + 587 G + 114 B) / 1000 in float32, bit-equal
    to the reference's float64 sum rounded to float32, and about 5x faster than numpy."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # alpha and palettes as the reference sees them: RGB only
    return np.asarray(image.convert("F"))


def _axis_weights(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's two box passes and sampling along one axis of length n, as a 64 x n matrix of bands:
    (columns, weights, in band), each 64 x band width.

    First-pass output k averages [lo[k], hi[k]) over count[k] samples; the second pass at sample row r
    averages first-pass outputs [lo[r], hi[r]). Column j lies in the first-pass windows k in
    (j - ahead, j + behind], so its weight is a difference of prefix sums of 1 / count.
    """
    window = (n + 2 * SIDE - 1) // (2 * SIDE)
    ahead = (window + 2) // 2
    behind = window - ahead  # the window covers [k - behind, k + ahead)
    k = np.arange(n)
    lo = np.maximum(0, k - behind)
    hi = np.minimum(n, k + ahead)
    count = (hi - lo).astype(np.float64)
    prefix = np.concatenate([[0.0], np.cumsum(1.0 / count)])
    r = (((np.arange(SIDE) + 0.5) * n) / SIDE).astype(np.int64)
    first, last = lo[r], hi[r] - 1  # second-pass windows
    start, stop = lo[first], hi[last]
    columns = start[:, None] + np.arange(int((stop - start).max()))
    inside = columns < stop[:, None]
    columns = np.minimum(columns, n - 1)
    upper = np.minimum(last[:, None], columns + behind) + 1
    lower = np.maximum(first[:, None], columns - ahead + 1)
    weights = (prefix[upper] - prefix[lower]) / count[r][:, None]
    return columns, weights, inside


def _both_ways(n: int) -> scipy.sparse.csr_matrix:
    columns, weights, inside = _axis_weights(n)
    mirrored = (n - 1 - columns)[:, ::-1], weights[:, ::-1], inside[:, ::-1]
    parts = [(c[m], w[m], m.sum(axis=1)) for c, w, m in ((columns, weights, inside), mirrored)]
    indptr = np.concatenate([[0], np.cumsum(np.concatenate([p[2] for p in parts]))])
    return scipy.sparse.csr_matrix((np.concatenate([p[1] for p in parts]).astype(np.float32),
                                    np.concatenate([p[0] for p in parts]).astype(np.int32), indptr),
                                   shape=(2 * SIDE, n))


_cached_both_ways = lru_cache(maxsize=128)(_both_ways)


def _weights(n: int) -> scipy.sparse.csr_matrix:
    """128 x n: the forward weights, then the reversed ones (a flip along this axis)."""
    return _cached_both_ways(n) if n <= CACHED_UP_TO else _both_ways(n)


def _quality(block: np.ndarray) -> int:
    """pdqImageDomainQualityMetric, in its float32 arithmetic with truncation to int."""
    hundred, full = np.float32(100), np.float32(255)
    down = np.trunc((block[:-1] - block[1:]) * hundred / full)
    across = np.trunc((block[:, :-1] - block[:, 1:]) * hundred / full)
    return min(100, int(np.abs(down).sum() + np.abs(across).sum()) // 90)


def _to_hex(coefficients: np.ndarray) -> str:
    """Bit i*16+j = coefficient (i, j) above the lower median (torben); hex as pdqhash's vector, bit 255 first."""
    flat = coefficients.ravel()
    median = np.partition(flat, 127)[127]
    return np.packbits((flat > median)[::-1]).tobytes().hex()


def dihedral(image: Image.Image) -> tuple[list[str], int]:
    """The reference PDQ (64 hex chars) of the image in the 8 orientations of pdqhash.compute_dihedral,
    identity first, and the quality of the image as is."""
    y = luma(image)
    rows, cols = y.shape
    if rows < MIN_DIMENSION or cols < MIN_DIMENSION:
        return ["0" * 64] * 8, 0
    reduced = _weights(rows) @ y  # 128 x cols
    both = (_weights(cols) @ np.ascontiguousarray(reduced.T)).T  # 128 x 128: [row way, column way] blocks
    blocks = both.reshape(2, SIDE, 2, SIDE).transpose(0, 2, 1, 3)  # [row reversed][column reversed] 64x64
    dct = _DCT @ blocks.astype(np.float64) @ _DCT.T
    hashes = [_to_hex(dct[r, c].T if swap else dct[r, c]) for r, c, swap in _ORIENTATIONS]
    return hashes, _quality(blocks[0, 0])
