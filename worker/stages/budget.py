"""Budgets on hostile bytes, checked by cheap walks in Python before any native parser reads them.

c2pa's ISO-BMFF reader is super-linear in the number of boxes (20k empty boxes: ~10 s, 100k: minutes),
libjpeg re-decodes every scan of a progressive JPEG (thousands of scans: seconds per file), and a small
PNG can declare a decode of hundreds of megabytes. Once native code runs it cannot be interrupted short
of killing the process, so each budget here is enforced first: the walks stop as soon as a count passes
its limit, and their own cost is linear in the bytes (the scan search runs in the regex engine).

Plain functions over bytes; the refusal (``OverBudget``) carries a reason shown to people.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

from worker.fetch.isobmff import BoxError, read_header

# Boxes whose payload is more boxes, as c2pa and the decoders walk them (ISO-BMFF, QuickTime, HEIF).
CONTAINERS = frozenset({b"moov", b"trak", b"edts", b"mdia", b"minf", b"dinf", b"stbl", b"mvex", b"moof", b"traf",
                        b"mfra", b"udta", b"iprp", b"ipco", b"sinf", b"schi", b"tref", b"meta"})
JUMBF_CONTAINERS = frozenset({b"jumb"})  # a C2PA manifest store: superboxes of superboxes (ISO 19566-5)
_FULL_BOXES = frozenset({b"meta"})  # ISO meta has 4 bytes of version and flags before its children
MAX_BOX_DEPTH = 16  # real files nest five or six deep; a parser recursing per level must not be driven deeper
MAX_JPEG_SEGMENTS = 10_000  # a progressive JPEG has a few hundred at most (tables and a header per scan)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})
# In entropy-coded JPEG data 0xFF is followed by 0x00 (stuffing), RST0-7 or fill; anything else is a marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# Bytes per pixel of Pillow modes as decoded (channels x bytes per sample); unknown modes count as 4.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
               "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2,
               "I;16N": 2, "BGR;15": 2, "BGR;16": 2, "BGR;24": 3}
_RGB_COPY = 3  # the stages work from an RGB copy made after the decode


@dataclass(frozen=True)
class Limits:
    """The budgets; the defaults are the Settings defaults (server/config.py documents each)."""

    max_boxes: int = 4096
    max_jpeg_scans: int = 100
    max_png_chunks: int = 10_000
    max_png_text_chunks: int = 512
    max_decode_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(max_boxes=settings.max_media_boxes, max_jpeg_scans=settings.max_jpeg_scans,
                   max_png_chunks=settings.max_png_chunks, max_png_text_chunks=settings.max_png_text_chunks,
                   max_decode_bytes=settings.max_decode_bytes)


# Every refusal code of this module (worker/jobs.py tells them from a merely broken header by these).
REFUSAL_CODES = frozenset({"too-many-boxes", "too-deeply-nested", "too-many-scans", "too-many-segments",
                           "too-many-chunks", "too-much-memory"})


class OverBudget(Exception):
    """The bytes would cost more than a budget allows; ``reason`` is shown to people."""

    def __init__(self, reason: str, code: str = "over-budget") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def is_isobmff(data: bytes) -> bool:
    """MP4/MOV/HEIF/AVIF: ftyp first, or an old QuickTime file's usual first boxes."""
    return len(data) >= 8 and data[4:8] in _FIRST_BOXES


def count_boxes(data: bytes, stop_after: int, containers: frozenset[bytes] = CONTAINERS) -> int:
    """Boxes at the top level and inside the containers c2pa descends into; stops once past ``stop_after``.

    A malformed box ends the walk of its level (the parsers report the damage themselves); nesting deeper
    than MAX_BOX_DEPTH is refused, because recursive parsers follow it level by level.
    """
    count = 0
    stack = [(0, len(data), 0)]  # (start, end, depth) of box runs still to walk
    while stack:
        pos, end, depth = stack.pop()
        while pos + 8 <= end:
            try:
                box = read_header(data, pos, 0, end)
            except BoxError:
                break
            if box is None:
                break
            count += 1
            if count > stop_after:
                return count
            if box.kind in containers and box.end <= end:
                if depth + 1 > MAX_BOX_DEPTH:
                    raise OverBudget(f"the file nests boxes more than {MAX_BOX_DEPTH} deep", "too-deeply-nested")
                skip = 4 if box.kind in _FULL_BOXES else 0
                stack.append((box.start + box.header + skip, box.end, depth + 1))
            pos = box.end
    return count


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment of a JPEG's first image, in order, up to EOI: [start, end)
    holds the marker and its payload (``end`` may lie past the data when the file is cut short). The
    entropy-coded data after each scan is skipped by the regex engine. The one JPEG walk of the worker."""
    if not data.startswith(b"\xff\xd8"):
        return
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            pos += 2
            continue
        if pos + 4 > n:
            return
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if length < 2:
            return
        end = pos + 2 + length
        yield marker, pos, end
        pos = end
        if marker == 0xDA:
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return
            pos = found.start()


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """Start-of-scan segments of the first image (up to EOI); stops once past ``stop_after``.

    Marker segments are skipped by their length, so a thumbnail inside an APP segment is not counted.
    A file of more than MAX_JPEG_SEGMENTS segments is refused: the walk itself (and Pillow's, which reads
    markers in Python) would otherwise take seconds over millions of 4-byte segments.
    """
    scans = 0
    for segments, (marker, _start, _end) in enumerate(jpeg_segments(data), 1):
        if segments > MAX_JPEG_SEGMENTS:
            raise OverBudget(f"the JPEG has more than {MAX_JPEG_SEGMENTS:,} marker segments (ordinary files have a "
                             "few dozen); it was not decoded, to keep the analysis bounded", "too-many-segments")
        if marker == 0xDA:
            scans += 1
            if scans > stop_after:
                return scans
    return scans


@dataclass(frozen=True)
class PngCounts:
    chunks: int
    idat: int
    text: int


def count_png_chunks(data: bytes, stop_after: int) -> PngCounts:
    """Chunks up to IEND (all, IDAT, text); stops once the total is past ``stop_after``."""
    chunks = idat = text = 0
    if not data.startswith(_PNG_SIGNATURE):
        return PngCounts(0, 0, 0)
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 12 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        idat += kind == b"IDAT"
        text += kind in _PNG_TEXT
        if chunks > stop_after or kind == b"IEND":
            break
        pos += 12 + length
    return PngCounts(chunks, idat, text)


def check_structure(data: bytes, limits: Limits) -> None:
    """Refuse (OverBudget) bytes whose container structure is over a budget; the type is read from
    the magic bytes, so a file is judged by what it is, not by what it claims to be."""
    if is_isobmff(data):
        boxes = count_boxes(data, limits.max_boxes)
        if boxes > limits.max_boxes:
            raise OverBudget(f"the file has more than {limits.max_boxes:,} boxes (ordinary files have far fewer); "
                             "it was not read, to keep the analysis bounded", "too-many-boxes")
    elif data[4:8] == b"jumb":  # a bare manifest store: an import's, or one fetched from a remote reference
        boxes = count_boxes(data, limits.max_boxes, JUMBF_CONTAINERS)
        if boxes > limits.max_boxes:
            raise OverBudget(f"the manifest store has more than {limits.max_boxes:,} boxes (ordinary stores have a "
                             "few dozen); it was not read, to keep the analysis bounded", "too-many-boxes")
    elif data.startswith(b"\xff\xd8"):
        scans = count_jpeg_scans(data, limits.max_jpeg_scans)
        if scans > limits.max_jpeg_scans:
            raise OverBudget(f"the JPEG has more than {limits.max_jpeg_scans:,} scans (a progressive JPEG has about "
                             "ten); it was not decoded, to keep the analysis bounded", "too-many-scans")
    elif data.startswith(_PNG_SIGNATURE):
        counts = count_png_chunks(data, limits.max_png_chunks)
        if counts.chunks > limits.max_png_chunks:
            raise OverBudget(f"the PNG has more than {limits.max_png_chunks:,} chunks; it was not decoded, to keep "
                             "the analysis bounded", "too-many-chunks")
        if counts.text > limits.max_png_text_chunks:
            raise OverBudget(f"the PNG has {counts.text:,} text chunks, over the limit of "
                             f"{limits.max_png_text_chunks:,}; it was not decoded, to keep the analysis bounded",
                             "too-many-chunks")


def decode_bytes(width: int, height: int, mode: str) -> int:
    """Memory a decode takes: pixels x channels x bytes per sample of the decoded mode, plus the RGB copy."""
    return width * height * (_MODE_BYTES.get(mode, 4) + _RGB_COPY)


def check_decode(width: int, height: int, mode: str, limits: Limits) -> None:
    need = decode_bytes(width, height, mode)
    if need > limits.max_decode_bytes:
        raise OverBudget(
            f"decoding this {width}x{height} {mode} image would take about {need / 2**20:,.0f} MiB, over the "
            f"{limits.max_decode_bytes / 2**20:,.0f} MiB limit (possible decompression bomb)", "too-much-memory")
