"""Hashes of a video as the hash-sharing ecosystem uses them: the file's MD5 and SHA-256, and a PDQ per keyframe.

The per-frame PDQs are what a vPDQ-style comparison works on (the share of frames that match); the file
hashes only ever match the identical upload. Frames are hashed at the same 576 px square as images, so a
frame hash and an image hash of the same picture agree.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pdqhash

from worker.stages.hashes import PDQ_MIN_QUALITY, pdq_bits_to_hex, pdq_input
from worker.stages.keyframes import Keyframe


@dataclass(frozen=True)
class FrameHash:
    t: float        # seconds from the start
    pdq: str        # 64 hex chars
    quality: int

    @property
    def usable(self) -> bool:
        return self.quality >= PDQ_MIN_QUALITY


@dataclass(frozen=True)
class VideoHashes:
    sha256: str
    md5: str
    frames: tuple[FrameHash, ...]


def frame_hashes(frames: list[Keyframe]) -> tuple[FrameHash, ...]:
    out = []
    for frame in frames:
        bits, quality = pdqhash.compute(pdq_input(frame.image))
        out.append(FrameHash(t=round(frame.t, 3), pdq=pdq_bits_to_hex(bits), quality=int(quality)))
    return tuple(out)


def video_hashes(data: bytes, frames: list[Keyframe]) -> VideoHashes:
    return VideoHashes(sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
                       frames=frame_hashes(frames))
