"""vPDQ's frame sample: one frame per second of media time, hashed with PDQ as decoded, in 8 orientations.

Meta's vPDQ (facebook/ThreatExchange vpdq/cpp/hashing/filehasher.cpp, and ``threatexchange hash video``)
hashes every ``int(seconds_per_hash * fps)``-th decoded frame, converted to RGB24 at its own size, with the
reference PDQ; a frame's timestamp is its number over the declared frame rate. Credence samples in media
time with that same period (``int(fps) / fps`` seconds: exactly one second at 12, 25 or 30 fps, 0.968 s at
29.97), taking the first frame shown at or after each multiple, counted from the first frame. On a
constant-rate file those are vpdq's frames, so the hashes are equal bit for bit (tests/test_vpdq.py),
and a copy trimmed by whole periods, resampled to another whole rate or sped up samples the moments the
banked copy sampled; variable-rate video is still sampled evenly in time. (A copy that changes a
fractional rate to a whole one or back, 29.97 to 30, samples a 3% different period; so does vpdq.)

Consecutive samples within ``PRUNE_DISTANCE`` bits of the last one kept are folded into it, which then
stands for a time range (``t`` to ``until``): the pruning vPDQ's design describes (vpdq/README.md,
"Pruning Frames"), so a still shot costs one frame, not one per second, and does not outweigh the action
in the shares. A kept frame is within ``PRUNE_DISTANCE`` of every frame it stands for, so a copy's frame
that matched a folded one still matches the kept one with that much margin taken from the threshold.

Hashing runs inside keyframes.extract's one bounded decode (no second pass over the file); the 8
orientations come from the same pixels (worker/stages/pdq.py), so a mirrored or rotated copy is matched
by turning the query, not by hashing every banked video 8 ways.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from server import models
from worker.stages import pdq
from worker.stages.hashes import PDQ_MIN_QUALITY, hamming_hex

SECONDS_PER_HASH = 1.0  # vpdq.computeHash's and ThreatExchange's default
PRUNE_DISTANCE = 8      # bits: a quarter of the 31-bit frame threshold
MAX_SAMPLED = models.MAX_FRAMES  # what a bank entry may hold; an hour and more at one per second
_EPSILON = 1e-3  # seconds: container timestamps are rounded to their time base


@dataclass(frozen=True)
class FrameHash:
    t: float        # seconds from the first frame
    pdq: str        # 64 hex chars
    quality: int
    until: float | None = None  # the last sampled moment this frame stands for (None: itself only)
    orientations: tuple[str, ...] = ()  # the PDQ of the frame turned 8 ways, identity first (see hashes.py)

    @property
    def usable(self) -> bool:
        return self.quality >= PDQ_MIN_QUALITY


def turned(frames: Sequence[Any], variant: int) -> list[FrameHash]:
    """The frames as the video turned by orientation ``variant`` would hash (hashes.ORIENTATION_NAMES);
    frames without orientations (stored ones, models.StoredFrame) have only the identity."""
    return [replace(f, pdq=f.orientations[variant]) for f in frames
            if len(getattr(f, "orientations", ())) > variant]


class Sampler:
    """Told every decoded frame's time by the decoder, hashes those vPDQ samples and keeps them pruned."""

    def __init__(self, fps: float | None, every: float = SECONDS_PER_HASH, prune: int = PRUNE_DISTANCE,
                 limit: int = MAX_SAMPLED) -> None:
        """``fps``: the stream's declared (average) rate; unknown, the period is ``every`` itself."""
        self.every = max(1, int(every * fps + 1e-6)) / fps if fps and fps > 0 else every
        self.prune, self.limit = prune, limit
        self._start: float | None = None
        self._next = 0.0
        self._kept: list[FrameHash] = []

    def due(self, t: float) -> bool:
        """Whether the frame shown at ``t`` is a sample (the first at or after the next whole period)."""
        if self._start is None:
            return True
        return len(self._kept) < self.limit and t - self._start >= self._next - _EPSILON

    def add(self, t: float, rgb: np.ndarray) -> None:
        """Hash one due frame (RGB24 at its decoded size, as vpdq's swscale gives it)."""
        if self._start is None:
            self._start = t
        offset = t - self._start
        self._next = (math.floor((offset + _EPSILON) / self.every) + 1) * self.every
        variants, quality = pdq.dihedral(Image.fromarray(rgb))
        at = round(offset, 3)
        if self._kept:
            last = self._kept[-1]
            if (last.usable == (quality >= PDQ_MIN_QUALITY)) and hamming_hex(last.pdq, variants[0]) <= self.prune:
                self._kept[-1] = replace(last, until=at)
                return
        self._kept.append(FrameHash(t=at, pdq=variants[0], quality=int(quality), orientations=tuple(variants)))

    @property
    def frames(self) -> tuple[FrameHash, ...]:
        return tuple(self._kept)
