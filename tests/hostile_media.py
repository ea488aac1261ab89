"""Hostile files, made the way the attack on a running instance made them (issue 15): shared by
tests/test_budget.py and bench/hostile_media.py."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def many_box_mp4(boxes: int) -> bytes:
    """``ftyp`` then ``boxes`` empty 8-byte ``free`` boxes (100k: 803 KB, minutes in c2pa)."""
    return FTYP + box(b"free") * boxes


def nested_mp4(depth: int) -> bytes:
    """``ftyp`` then ``moov`` boxes nested ``depth`` deep (parsers that recurse per level follow it)."""
    inner = b""
    for _ in range(depth):
        inner = box(b"moov", inner)
    return FTYP + inner


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / max(1, width), yy * 255 / max(1, height), (xx + yy) % 256], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def progressive_jpeg(width: int = 256, height: int = 192, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    photo(width, height, seed).save(buf, "JPEG", quality=90, progressive=True)
    return buf.getvalue()


def _jpeg_parts(data: bytes) -> tuple[bytes, list[bytes]]:
    """(everything before the first scan, each scan with the tables before it and its entropy-coded data)."""
    pos, head_end, start, scans = 2, None, 0, []
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if marker != 0xDA:
            if head_end is None:
                start = pos + 2 + length
            pos += 2 + length
            continue
        if head_end is None:
            head_end = start = pos
        end = pos + 2 + length
        while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
            end += 1
        scans.append(data[start:end])
        pos = start = end
    assert head_end is not None
    return data[:head_end], scans


def many_scan_jpeg(scans: int, width: int = 256, height: int = 192) -> bytes:
    """A progressive JPEG whose scans are repeated until it has ``scans`` of them (libjpeg decodes every one)."""
    head, parts = _jpeg_parts(progressive_jpeg(width, height))
    body = [parts[i % len(parts)] for i in range(scans)]
    return head + b"".join(body) + b"\xff\xd9"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def flat_png(width: int, height: int, colour_type: int = 2, bit_depth: int = 8) -> bytes:
    """A flat PNG of any size, compressed to almost nothing (7000x7000 RGB: about 143 KB)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + bytes(width * channels * bit_depth // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def many_chunk_png(chunks: int, kind: bytes = b"IDAT", width: int = 64, height: int = 64) -> bytes:
    """A valid small PNG whose image data is split into ``chunks`` IDAT chunks (or padded with that many
    ``kind`` chunks, e.g. tEXt, before its data)."""
    raw = b"".join(b"\x00" + bytes(width * 3) for _ in range(height))
    data = zlib.compress(raw, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr)]
    if kind == b"IDAT":
        step = max(1, -(-len(data) // chunks))
        pieces = [data[i:i + step] for i in range(0, len(data), step)]
        pieces += [b""] * (chunks - len(pieces))
        out += [_chunk(b"IDAT", p) for p in pieces]
    else:
        out += [_chunk(kind, b"k%d\x00v" % i) for i in range(chunks)]
        out.append(_chunk(b"IDAT", data))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[:max(16, int(len(data) * keep))]
