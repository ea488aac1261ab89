"""Decode an image once, with limits, so every later stage works from the same pixels."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from worker.stages.budget import Limits, OverBudget, check_decode, check_structure

try:  # HEIC/HEIF need pillow-heif; Pillow reads AVIF itself
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - optional at import, required by pyproject
    pass


class DecodeError(Exception):
    """The bytes could not be turned into pixels; ``reason`` is shown to people."""

    def __init__(self, reason: str, code: str = "undecodable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Decoded:
    image: Image.Image
    format: str
    width: int
    height: int
    frames: int


def probe_dimensions(data: bytes, max_pixels: int, limits: Limits | None = None) -> tuple[int, int]:
    """Read only the header and refuse decompression bombs before any pixel is decoded.

    The structure budgets (scans, chunks, boxes) are checked before Pillow sees the bytes, and the
    decode's memory (pixels x channels x bytes per sample) from the header before any pixel is decoded.
    Without ``limits`` only the header and the pixel cap are checked (the fetcher's early look).
    """
    try:
        if limits is not None:
            check_structure(data, limits)
    except OverBudget as exc:
        raise DecodeError(exc.reason, exc.code) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                mode = img.mode
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image is too large to decode safely ({exc})", "too-many-pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"the image is broken: its header could not be read ({type(exc).__name__})") from exc
    if width <= 0 or height <= 0:
        raise DecodeError("the image declares no pixels")
    if width * height > max_pixels:
        raise DecodeError(
            f"image is {width}x{height} = {width * height:,} pixels, over the {max_pixels:,} pixel cap"
            " (possible decompression bomb)",
            "too-many-pixels",
        )
    try:
        if limits is not None:
            check_decode(width, height, mode, limits)
    except OverBudget as exc:
        raise DecodeError(exc.reason, exc.code) from exc
    return width, height


def decode(data: bytes, max_pixels: int, limits: Limits | None = None) -> Decoded:
    """Full decode to RGB after the header and budget checks; truncated or corrupt files raise DecodeError.

    ``limits`` default to the documented defaults, so callers without settings are bounded too.
    """
    width, height = probe_dimensions(data, max_pixels, limits or Limits())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "unknown"
            frames = getattr(img, "n_frames", 1)
            img.load()
            # convert() copies an image already in RGB (0.75 ms of a 1 MP JPEG's 3.9 ms decode): kept as is
            # when it has one frame (a multi-frame file stays behind its first frame as a plain copy).
            rgb = img if img.mode == "RGB" and frames == 1 else img.convert("RGB")
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image is too large to decode safely ({exc})", "too-many-pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DecodeError(f"the image data is broken or truncated ({type(exc).__name__}: {exc})") from exc
    return Decoded(image=rgb, format=fmt, width=width, height=height, frames=frames)
