"""Keyframes of a video: scene changes plus a uniform sample, bounded in frames, media time and wall time.

Every later video step (detection, the desk's filmstrip) works from these frames, so a two-hour upload
costs what its first ``max_seconds`` cost and never more than ``max_keyframes`` images in memory. The
same decoding pass also hashes vPDQ's sample (one frame per second of media time, worker/stages/vpdq.py),
which bank matching works from: keyframes are chosen by content, so a trimmed or resampled copy would
pick other moments, while vPDQ's fixed rate picks the same ones. Decoding is PyAV (FFmpeg); nothing here
decides a level.

The wall-clock budget is enforced twice: between packets, and inside FFmpeg itself, because every byte
FFmpeg reads comes through ``_Source``, which reports end-of-file once the deadline has passed. A demuxer
scanning a large junk file for a sync marker therefore stops on time too (measured, see bench/video.py
and tests/test_video_pipeline.py).
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from worker.stages.vpdq import FrameHash, Sampler

# Frames kept for hashing and detection are at most this long on their long side: PDQ and the
# detectors work at 512 px or less, and 32 frames of 1024 px stay under 60 MB.
KEEP_LONG_SIDE = 1024
_DIFF_SIDE = 32  # scene change: mean absolute difference of 32x32 grey thumbnails
_IO_CHUNK = 64 * 1024


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
    max_decode_s: float = 30.0      # wall-clock budget for opening and decoding
    max_pixels: int = 8_294_400     # per frame (4K); larger is refused before decoding
    scene_threshold: float = 30.0   # mean absolute grey difference (0-255) that counts as a cut

    @classmethod
    def from_settings(cls, settings: Any) -> "VideoLimits":
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
    analysed_s: float = 0.0      # media time actually read (timestamp of the last frame decoded)
    # Why reading stopped before the end: duration (max_seconds reached), time-budget, damaged
    # (the decoder gave up), truncated (the data ends before the declared duration).
    capped: list[str] = field(default_factory=list)
    sampled: tuple[FrameHash, ...] = ()  # vPDQ's frames of what was read (empty when not asked for)


class _Source:
    """A read-only file over the bytes for FFmpeg's custom I/O that reads as end-of-file after a deadline."""

    def __init__(self, data: bytes, deadline: float) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.deadline = deadline
        self.expired = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            self.expired = True
            return b""
        end = len(self._data) if size < 0 else min(len(self._data), self._pos + size)
        chunk = self._data[self._pos:end].tobytes()
        self._pos = end
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._data)}[whence]
        self._pos = max(0, min(len(self._data), base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos


def _iso_boxes(data: bytes) -> list[tuple[bytes, int]]:
    """Top-level ISO-BMFF boxes as (type, end offset); the last end may lie past the data when cut short."""
    boxes, pos = [], 0
    while pos + 8 <= len(data) and len(boxes) < 10_000:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1 and pos + 16 <= len(data):
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        if size < 8:
            boxes.append((kind, len(data) + 1))  # nonsense size: treat as damage from here on
            break
        boxes.append((kind, pos + size))
        pos += size
    return boxes


def _check_iso_index(data: bytes) -> None:
    """MP4 and MOV cannot be played without their index (moov box): say why plainly before FFmpeg does."""
    if data[4:8] != b"ftyp":
        return
    boxes = _iso_boxes(data)
    if any(kind == b"moov" for kind, _ in boxes):
        return
    plausible = all(kind.isalnum() or kind == b"qt  " or kind.strip(b" ").isalnum() for kind, _ in boxes)
    if plausible and boxes and boxes[-1][1] > len(data):
        raise VideoError("the file is cut short before its index (the moov box players need)",
                         "truncated-video")
    raise VideoError("the file is labelled MP4/QuickTime but has no movie index (moov box); it is not a "
                     "playable video", "undecodable-video")


def _keep(frame: Any) -> Image.Image:
    image = frame.to_image()
    if max(image.size) > KEEP_LONG_SIDE:
        image.thumbnail((KEEP_LONG_SIDE, KEEP_LONG_SIDE), Image.Resampling.BILINEAR)
    return image.convert("RGB")


def _grey(frame: Any) -> np.ndarray:
    # Area averaging: 3x cheaper than swscale's default bilinear at 720p (bench/video.py) and as smooth.
    return frame.to_ndarray(width=_DIFF_SIDE, height=_DIFF_SIDE, format="gray",
                            interpolation="AREA").astype(np.int16)


def _open(source: _Source) -> Any:
    import av

    try:
        container = av.open(source, mode="r", metadata_errors="ignore", buffer_size=_IO_CHUNK)
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        if source.expired:
            raise VideoError("opening the video took longer than the time allowed", "video-timeout") from exc
        raise VideoError("the file looks like video but cannot be read as one (damaged, cut short, or not "
                         "really video)") from exc
    if not container.streams.video:
        audio = bool(container.streams.audio)
        container.close()
        raise VideoError("the file holds no video stream" + (" (audio only)" if audio else ""), "no-video-stream")
    return container


def extract(data: bytes, limits: VideoLimits, vpdq: bool = True) -> tuple[VideoInfo, list[Keyframe]]:
    """Decode from the start within the limits; return what was read and the chosen keyframes.

    Keyframes are the first frame, a uniform sample (half the budget, spread over the analysed span) and
    the strongest scene cuts (the other half). With ``vpdq`` the vPDQ sample is hashed on the way, into
    ``VideoInfo.sampled`` (its cost counts against the time budget). Raises ``VideoError`` when nothing
    usable comes out.
    """
    import av

    _check_iso_index(data)
    started = time.monotonic()
    source = _Source(data, started + limits.max_decode_s)
    container = _open(source)
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
                         height=height, duration_s=round(duration, 3) if duration and duration > 0 else None,
                         fps=round(fps, 3) if fps else None)
        span = min(info.duration_s or limits.max_seconds, limits.max_seconds)
        uniform_n = max(1, limits.max_keyframes // 2)
        step = span / uniform_n
        next_uniform = 0.0
        uniform: list[Keyframe] = []
        scenes: list[Keyframe] = []
        previous: np.ndarray | None = None
        rate = stream.average_rate or stream.base_rate  # vpdq: avg_frame_rate, else r_frame_rate
        sampler = Sampler(float(rate) if rate else None) if vpdq else None
        stop: str | None = None
        try:
            for packet in container.demux(stream):
                if time.monotonic() > source.deadline:
                    stop = "time-budget"
                    break
                for frame in packet.decode():
                    t = float(frame.time) if frame.time is not None else info.analysed_s
                    if t > limits.max_seconds:
                        stop = "duration"
                        break
                    if frame.width * frame.height > limits.max_pixels:
                        raise VideoError("a frame is larger than allowed", "too-many-pixels")
                    info.frames_decoded += 1
                    info.analysed_s = max(info.analysed_s, t)
                    if sampler is not None and sampler.due(t):
                        sampler.add(t, frame.to_ndarray(format="rgb24", interpolation="AREA"))  # vpdq's SWS_AREA
                    grey = _grey(frame)
                    change = float(np.abs(grey - previous).mean()) if previous is not None else 0.0
                    previous = grey
                    cut = change >= limits.scene_threshold
                    if t >= next_uniform and len(uniform) < uniform_n:
                        reason = "first" if not uniform else "scene" if cut else "uniform"
                        uniform.append(Keyframe(t=t, image=_keep(frame), reason=reason, change=change))
                        while next_uniform <= t:  # sparse frames must not spend the sample in a burst
                            next_uniform += step
                    elif cut:
                        scenes.append(Keyframe(t=t, image=_keep(frame), reason="scene", change=change))
                        if len(scenes) > limits.max_keyframes - uniform_n:
                            scenes.remove(min(scenes, key=lambda k: k.change))  # keep the strongest cuts
                if stop:
                    break
        except av.FFmpegError:
            stop = "damaged"  # keep what was read before the damage
        if stop is None and source.expired:
            stop = "time-budget"  # FFmpeg saw end-of-file because the deadline passed
        if stop:
            info.capped.append(stop)
        if not uniform:
            if stop == "time-budget":
                raise VideoError("no frame could be decoded within the time allowed", "video-timeout")
            raise VideoError("no frame of the video could be decoded")
        if stop is None and info.duration_s:
            # Data that ends well before the declared duration: cut short (or only partly fetched).
            slack = max(0.5, 3 / fps) if fps else 0.5
            if info.analysed_s + slack < min(info.duration_s, limits.max_seconds):
                info.capped.append("truncated")
        info.analysed_s = round(info.analysed_s, 3)
        info.sampled = sampler.frames if sampler is not None else ()
        frames = sorted(uniform + scenes, key=lambda k: k.t)
        return info, frames
    finally:
        container.close()
