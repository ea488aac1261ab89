"""Hashes of a video as the hash-sharing ecosystem uses them: the file's MD5 and SHA-256, and vPDQ's frames.

The vPDQ frames (worker/stages/vpdq.py: one per second of media time, as Meta's vpdq samples them) are
what bank matching, the stored media and bank entries use, and what a ``vpdq`` signal exports; the file
hashes only ever match the identical upload. Each keyframe of the desk's filmstrip also gets its PDQ, for
people to look up; those are not matched, because keyframes are chosen by content and a copy's differ.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from worker.stages import pdq
from worker.stages.keyframes import Keyframe
from worker.stages.vpdq import FrameHash

__all__ = ["FrameHash", "VideoHashes", "keyframe_hashes", "video_hashes"]


@dataclass(frozen=True)
class VideoHashes:
    sha256: str
    md5: str
    frames: tuple[FrameHash, ...]  # vPDQ's sample: what is matched, stored and exported
    keyframes: tuple[FrameHash, ...] = ()  # one per keyframe, for the filmstrip


def keyframe_hashes(keyframes: list[Keyframe]) -> tuple[FrameHash, ...]:
    out = []
    for frame in keyframes:
        variants, quality = pdq.dihedral(frame.image)
        out.append(FrameHash(t=round(frame.t, 3), pdq=variants[0], quality=int(quality)))
    return tuple(out)


def video_hashes(data: bytes, keyframes: list[Keyframe], sampled: Sequence[FrameHash]) -> VideoHashes:
    """``sampled`` is ``VideoInfo.sampled`` of the extract() that gave ``keyframes``: one bounded decode
    gives both."""
    return VideoHashes(sha256=hashlib.sha256(data).hexdigest(), md5=hashlib.md5(data).hexdigest(),
                       frames=tuple(sampled), keyframes=keyframe_hashes(keyframes))
