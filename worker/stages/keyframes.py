"""Keyframes of a video: scene changes plus a uniform sample, bounded in frames, media time and wall time.

Every later video step (hashes, bank matching, detection, the desk's filmstrip) works from these frames,
so a two-hour upload costs what its first ``max_seconds`` cost and never more than ``max_keyframes``
images in memory. Decoding is PyAV (FFmpeg); nothing here decides a level.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

# Frames kept for hashing and detection are at most this long on their long side: PDQ and the
# detectors work at 512 px or less, and 32 frames of 1024 px stay under 60 MB.
KEEP_LONG_SIDE = 1024
_DIFF_SIDE = 32  # scene change: mean absolute difference of 32x32 grey thumbnails


class VideoError(Exception):
    """The bytes could not be read as video; ``reason`` is shown to people."""

    def __init__(self, reason: str, code: str = "undecodable-video") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float = 120.0      # media time read from the start
    max_keyframes: int = 32
    max_decode_s: float = 30.0      # wall-clock budget for decoding
    max_pixels: int = 8_294_400     # per frame (4K); larger is refused before decoding
    scene_threshold: float = 30.0   # mean absolute grey difference (0-255) that counts as a cut

    @classmethod
    def from_settings(cls, settings) -> "VideoLimits":
        return cls(max_seconds=settings.video_max_seconds, max_keyframes=settings.video_max_keyframes,
                   max_decode_s=settings.video_max_decode_s, max_pixels=settings.video_max_pixels,
                   scene_threshold=settings.video_scene_threshold)


@dataclass
class Keyframe:
    t: float                 # seconds from the start
    image: Image.Image       # RGB, long side <= KEEP_LONG_SIDE
    reason: str              # first | scene | uniform
    change: float = 0.0      # scene-change strength (mean grey difference) at this frame


@dataclass
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    duration_s: float | None     # as the container declares it
    fps: float | None
    frames_decoded: int = 0
    analysed_s: float = 0.0      # media time actually read
    capped: list[str] = field(default_factory=list)  # why reading stopped early: duration, time-budget, damaged


def _keep(frame) -> Image.Image:
    image = frame.to_image()
    if max(image.size) > KEEP_LONG_SIDE:
        image.thumbnail((KEEP_LONG_SIDE, KEEP_LONG_SIDE), Image.Resampling.BILINEAR)
    return image.convert("RGB")


def _grey(frame) -> np.ndarray:
    return frame.to_ndarray(width=_DIFF_SIDE, height=_DIFF_SIDE, format="gray").astype(np.int16)


def _open(data: bytes):
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise VideoError("the file is not a readable video") from exc
    if not container.streams.video:
        container.close()
        raise VideoError("the file holds no video stream", "no-video-stream")
    return container


def extract(data: bytes, limits: VideoLimits) -> tuple[VideoInfo, list[Keyframe]]:
    """Decode from the start within the limits; return what was read and the chosen keyframes."""
    import av

    container = _open(data)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width * height > limits.max_pixels:
            raise VideoError(f"the video is {width}x{height}, more pixels per frame than allowed",
                             "too-many-pixels")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        fps = float(stream.average_rate) if stream.average_rate else None
        info = VideoInfo(container=container.format.name, codec=ctx.name or "unknown", width=width,
                         height=height, duration_s=round(duration, 3) if duration else None,
                         fps=round(fps, 3) if fps else None)
        span = min(duration or limits.max_seconds, limits.max_seconds)
        uniform_n = max(1, limits.max_keyframes // 2)
        step = span / uniform_n if span > 0 else float("inf")
        next_uniform = 0.0
        uniform: list[Keyframe] = []
        scenes: list[Keyframe] = []
        previous: np.ndarray | None = None
        started = time.monotonic()
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else info.analysed_s
                if t > limits.max_seconds:
                    info.capped.append("duration")
                    break
                if time.monotonic() - started > limits.max_decode_s:
                    info.capped.append("time-budget")
                    break
                if frame.width * frame.height > limits.max_pixels:
                    raise VideoError("a frame is larger than allowed", "too-many-pixels")
                info.frames_decoded += 1
                info.analysed_s = max(info.analysed_s, t)
                grey = _grey(frame)
                change = float(np.abs(grey - previous).mean()) if previous is not None else 0.0
                previous = grey
                if t >= next_uniform and len(uniform) < uniform_n:
                    uniform.append(Keyframe(t=t, image=_keep(frame), reason="first" if not uniform else "uniform",
                                            change=change))
                    next_uniform += step
                elif change >= limits.scene_threshold:
                    scenes.append(Keyframe(t=t, image=_keep(frame), reason="scene", change=change))
                    if len(scenes) > limits.max_keyframes - uniform_n:
                        scenes.remove(min(scenes, key=lambda k: k.change))  # keep the strongest cuts
        except av.FFmpegError:
            info.capped.append("damaged")  # keep what was read before the damage
        if not uniform:
            raise VideoError("no frame of the video could be decoded")
        frames = sorted(uniform + scenes, key=lambda k: k.t)
        return info, frames
    finally:
        container.close()
