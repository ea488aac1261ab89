"""Video clips the tests make with PyAV: distinct flat-coloured scenes with texture, so keyframes,
scene cuts and PDQ behave as on real footage, and every clip is reproducible from its seed."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from PIL import Image

_FORMATS = {"mp4": ("mp4", "libx264"), "mov": ("mov", "libx264"), "webm": ("webm", "libvpx-vp9")}


def scene_frames(seed: int, scenes: int, width: int, height: int, block: int = 16) -> list[np.ndarray]:
    """One textured picture per scene: a photo-like gradient with ``block``-pixel blocks, different for each
    seed. Small clips want small blocks: PDQ's quality counts edges, and 16 px blocks in a 160 px frame
    leave too few of them for a usable hash."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(scenes):
        base = rng.integers(0, 256, 3)
        blocks = rng.integers(0, 256, (height // block + 1, width // block + 1, 3), dtype=np.uint8)
        texture = blocks.repeat(block, 0).repeat(block, 1)[:height, :width].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)[..., None] * 120
        picture = 0.45 * texture + 0.35 * base + ramp
        out.append(np.clip(picture, 0, 255).astype(np.uint8))
    return out


def make_clip(seed: int = 0, seconds: float = 4.0, fps: int = 25, size: tuple[int, int] = (320, 240),
              scenes: int = 2, fmt: str = "mp4", pan: int = 2, preset: str | None = None, block: int = 16) -> bytes:
    """A clip of ``scenes`` equal-length scenes, each slowly panning so frames differ a little.

    ``preset`` is x264's speed preset ("ultrafast" makes a ten-minute clip for limit tests in a second or
    two, at the cost of a larger file; "veryfast" is what the bench uses, closer to what sites serve).
    With VP9 any preset means its fastest real-time speed.
    """
    width, height = size
    container_format, codec = _FORMATS[fmt]
    pictures = scene_frames(seed, scenes, width, height, block)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_format) as container:
        options = {} if preset is None else \
            {"preset": preset} if codec == "libx264" else {"deadline": "realtime", "cpu-used": "8"}
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        total = int(seconds * fps)
        for i in range(total):
            picture = np.roll(pictures[min(scenes - 1, i * scenes // total)], i * pan, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def reencode(data: bytes, size: tuple[int, int] | None = None, fmt: str = "mp4", crf: int = 30) -> bytes:
    """Decode and write again (optionally resized): what a platform does to an upload."""
    container_format, codec = _FORMATS[fmt]
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format=container_format) as dst:
        in_stream = src.streams.video[0]
        rate = in_stream.average_rate or 25
        stream = dst.add_stream(codec, rate=rate, options={"crf": str(crf)} if codec == "libx264" else {})
        width, height = size or (in_stream.codec_context.width, in_stream.codec_context.height)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in src.decode(in_stream):
            image = frame.to_image().resize((width, height), Image.Resampling.BILINEAR)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out.getvalue()


def edit(data: bytes, *, start: float = 0.0, seconds: float | None = None, fps: float | None = None,
         speed: float = 1.0, turn: Image.Transpose | None = None, size: tuple[int, int] | None = None,
         fmt: str = "mp4", crf: int = 28) -> bytes:
    """A copy as people make them, re-encoded: the part from ``start`` lasting ``seconds`` (of the source),
    at ``fps`` frames a second, played ``speed`` times as fast, turned or mirrored, resized.

    Output frame j shows the source frame on screen at ``start + j * speed / fps``, as a player would.
    """
    with av.open(io.BytesIO(data)) as src:
        in_stream = src.streams.video[0]
        rate = float(in_stream.average_rate or 25)
        shown = [(float(frame.time or 0.0), frame.to_image()) for frame in src.decode(in_stream)]
    end = start + seconds if seconds is not None else shown[-1][0] + 1 / rate
    out_fps = fps or rate
    container_format, codec = _FORMATS[fmt]
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as dst:
        stream = dst.add_stream(codec, rate=Fraction(out_fps).limit_denominator(1001),
                                options={"crf": str(crf)} if codec == "libx264" else {})
        first = shown[0][1].transpose(turn) if turn is not None else shown[0][1]
        width, height = size or first.size
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        j, at = 0, 0
        while (when := start + j * speed / out_fps) < end - 1e-6:
            while at + 1 < len(shown) and shown[at + 1][0] <= when + 1e-6:
                at += 1
            image = shown[at][1].transpose(turn) if turn is not None else shown[at][1]
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                dst.mux(packet)
            j += 1
        for packet in stream.encode():
            dst.mux(packet)
    return out.getvalue()


def audio_only_mp4(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """An MP4 holding one silent AAC track and no video: a real file the video path must refuse plainly."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        for i in range(int(seconds * rate / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def empty_mp4(size: tuple[int, int] = (64, 48)) -> bytes:
    """An MP4 with a video track header and not one frame."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        container.start_encoding()
    return buf.getvalue()


def faststart(data: bytes) -> bytes:
    """The same MP4 remuxed with its index (moov) before the media data, as web publishers serve it."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".mp4")  # the muxer rewrites the file to move moov forward
    os.close(fd)
    try:
        with av.open(io.BytesIO(data)) as src, av.open(path, "w", format="mp4",
                                                       options={"movflags": "faststart"}) as dst:
            in_stream = src.streams.video[0]
            out_stream = dst.add_stream_from_template(in_stream)
            for packet in src.demux(in_stream):
                if packet.dts is None:
                    continue
                packet.stream = out_stream
                dst.mux(packet)
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)
