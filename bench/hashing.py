"""Hashing cost per 1-megapixel JPEG: SHA-256 + PDQ (8 orientations) + pHash, against decode-only.

Run: .venv/bin/python bench/hashing.py [--images N] [--rounds R]

Why: hashing runs on every cache miss; its floor is the decode it follows, measured in the same run
on the same bytes. Photo-like inputs are mosaics of scikit-image sample-photo crops (see tests/images.py).
Times are this process's CPU time (R rounds of every step over all images), so other work on a shared
machine inflates neither the floor nor the steps. The run also prints how far our PDQ is from Meta's reference
(pdqhash) on these images, as is and in the 8 really turned orientations.
"""
from __future__ import annotations

import argparse
import hashlib
import time

from common import percentile  # noqa: F401 - puts the repository root on sys.path

import numpy as np
from PIL import Image

from tests.images import jpeg_bytes, photo
from worker.stages import hashes, pdq
from worker.stages.decode import decode

MAX_PIXELS = 50_000_000
# The pixels of each orientation, in the order of hashes.ORIENTATION_NAMES.
TURNS = (lambda a: a, lambda a: np.rot90(a, 1), lambda a: np.rot90(a, 2), lambda a: np.rot90(a, 3),
         lambda a: a[::-1], lambda a: a[:, ::-1], lambda a: a.transpose(1, 0, 2),
         lambda a: np.rot90(a, 2).transpose(1, 0, 2))


def reference_turned(image) -> list[str]:
    pixels = np.asarray(image.convert("RGB"))
    return [hashes.pdq(Image.fromarray(np.ascontiguousarray(turn(pixels))))[0] for turn in TURNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    blobs = [jpeg_bytes(photo(k, (1152, 864)), 90) for k in range(args.images)]
    decoded = [decode(b, MAX_PIXELS).image for b in blobs]
    hashes.compute_with_orientations(decoded[0])  # warm up (first calls build caches)
    steps = {
        "decode only (floor)": lambda i: decode(blobs[i], MAX_PIXELS),
        "sha256": lambda i: hashlib.sha256(blobs[i]).hexdigest(),
        "luminance (Pillow RGB->F)": lambda i: pdq.luma(decoded[i]),
        "PDQ x8 orientations (ours)": lambda i: pdq.dihedral(decoded[i]),
        "pHash at 128 px": lambda i: hashes.phash(hashes.scale_to(decoded[i], hashes.PHASH_SIDE)),
        "PDQ x8 orientations + pHash": lambda i: hashes.compute_with_orientations(decoded[i]),
        "decode + sha256 + PDQ x8 + pHash": lambda i: (
            hashlib.sha256(blobs[i]).hexdigest(),
            hashes.compute_with_orientations(decode(blobs[i], MAX_PIXELS).image)),
        "PDQ reference (pdqhash, as is)": lambda i: hashes.pdq(decoded[i]),
        "PDQ reference x8 turned copies": lambda i: reference_turned(decoded[i]),
    }
    rows: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            for i in range(len(blobs)):
                started = time.process_time()
                step(i)
                rows[name].append((time.process_time() - started) * 1000)
    floor = sum(rows["decode only (floor)"]) / len(rows["decode only (floor)"])
    print(f"{args.images} JPEGs 1152x864 q90, one thread, CPU time, {args.rounds} rounds")
    print(f"{'step':36s} {'mean ms':>8s} {'p50':>7s} {'p99':>7s} {'x decode':>9s}")
    for name, values in rows.items():
        mean = sum(values) / len(values)
        print(f"{name:36s} {mean:8.2f} {percentile(values, 50):7.2f} {percentile(values, 99):7.2f} {mean / floor:8.2f}x")
    bits = [hashes.hamming_hex(ours, ref) for im in decoded
            for ours, ref in zip(pdq.dihedral(im)[0], reference_turned(im))]
    print(f"PDQ bits from the reference (pdqhash on the turned pixels), {len(bits)} hashes: max {max(bits)}")


if __name__ == "__main__":
    main()
