"""Just enough ISO-BMFF (MP4, MOV) to make a playable file from a long video's start and its index.

Phones and most muxers (PyAV, FFmpeg without ``+faststart``) write the index, the ``moov`` box, after
the media data (``mdat``), so the first megabytes of a 2 GB file do not play on their own. Sample
offsets in ``moov`` are absolute, so the prefix followed by ``moov`` plays every sample inside the
prefix once ``mdat`` is cut to end there. The index's sample tables are cut to the samples lying wholly
inside the prefix, so the demuxer ends cleanly there instead of decoding the index's own bytes as
video (and keeps the edit list, which FFmpeg drops when the tables disagree).

Pure functions over bytes; the caller (worker/fetch/ranges.py) does the guarded range requests.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

# Boxes whose children hold the sample tables: moov/trak/mdia/minf/stbl.
_CONTAINERS = frozenset({b"trak", b"mdia", b"minf", b"stbl"})
_MAX_BOXES_AFTER_PREFIX = 16  # top-level boxes skipped looking for moov (free, udta, uuid, ...)
_MAX_TOP_LEVEL_BOXES = 4096   # a real file has a handful; 8-byte boxes by the million are an attack
_MAX_DEPTH = 8                # moov/trak/mdia/minf/stbl is four deep

RangeReader = Callable[[int, int], bytes]  # (offset, length) -> exactly those bytes of the file


class BoxError(ValueError):
    """The boxes do not make sense; ``reason`` is shown to people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IndexTooLarge(BoxError):
    """The moov box is larger than the caller allows to be fetched."""


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int        # offset in the file
    header: int       # 8, or 16 with a 64-bit size
    size: int         # whole box, header included

    @property
    def end(self) -> int:
        return self.start + self.size


def read_header(buf: bytes, pos: int, base: int, total: int) -> Box | None:
    """The box whose header starts at ``buf[pos:]`` (file offset ``base + pos``), or None when
    ``buf`` ends inside the header. ``total`` is the file size, for size 0 (box runs to the end)."""
    if len(buf) - pos < 8:
        return None
    size, kind = struct.unpack_from(">I4s", buf, pos)
    header = 8
    if size == 1:
        if len(buf) - pos < 16:
            return None
        size = struct.unpack_from(">Q", buf, pos + 8)[0]
        header = 16
    elif size == 0:
        size = total - (base + pos)
    if size < header:
        raise BoxError(f"a {_name(kind)} box declares an impossible size ({size})")
    return Box(kind, base + pos, header, size)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isascii() and kind.isalnum() else repr(kind)


def walk_prefix(prefix: bytes, total: int) -> tuple[list[Box], Box | None, int]:
    """Top-level boxes wholly inside ``prefix``; the box that crosses its end (or None); and the
    offset where the walk stopped (the crossing box's start, or where the next header begins)."""
    boxes: list[Box] = []
    pos = 0
    while pos < len(prefix):
        if len(boxes) >= _MAX_TOP_LEVEL_BOXES:
            raise BoxError("the file has too many top-level boxes")
        box = read_header(prefix, pos, 0, total)
        if box is None:
            return boxes, None, pos  # the prefix ends inside a header
        if box.end > len(prefix):
            return boxes, box, pos
        boxes.append(box)
        pos = box.end
    return boxes, None, pos


def playable(prefix: bytes, total: int, read: RangeReader, index_max: int) -> bytes:
    """A playable file made of ``prefix`` (the file's first bytes) and its moov box, fetched with
    ``read`` when it is not in the prefix. Raises BoxError when there is no usable index."""
    boxes, crossing, stop = walk_prefix(prefix, total)
    if not boxes or boxes[0].kind != b"ftyp":
        raise BoxError("the file does not start with an ftyp box")
    head = bytearray(prefix[:stop])
    if crossing is not None and crossing.kind == b"mdat":
        head += _cut_box_header(crossing, len(prefix) - crossing.start) + prefix[crossing.start + crossing.header:]
    moov = next((b for b in boxes if b.kind == b"moov"), None)
    if moov is None and crossing is not None and crossing.kind == b"moov":
        raise BoxError("the video's index (moov) is larger than the part of the file read")
    if moov is not None:
        # Index first ("faststart"): its copy at the end is the one read; the original becomes
        # padding so that no media byte moves.
        index = bytes(prefix[moov.start:moov.end])
        head[moov.start + 4:moov.start + 8] = b"free"  # the type follows the 32-bit size field
    else:
        index = _find_index(stop if crossing is None else crossing.end, total, read, index_max)
    return bytes(head) + trim_moov(index, cut=len(head))


def _cut_box_header(box: Box, size: int) -> bytes:
    """The box's header with its size rewritten to ``size`` (same header length, so no byte moves)."""
    if box.header == 16:
        return struct.pack(">I4sQ", 1, box.kind, size)
    return struct.pack(">I4s", size, box.kind)


def _find_index(offset: int, total: int, read: RangeReader, index_max: int) -> bytes:
    """Walk the top-level boxes after the prefix, one header read each, and fetch moov whole."""
    for _ in range(_MAX_BOXES_AFTER_PREFIX):
        if offset + 8 > total:
            break
        raw = read(offset, min(16, total - offset))
        box = read_header(raw, 0, offset, total)
        if box is None:
            raise BoxError("the file ends inside a box header")
        if box.end > total:
            raise BoxError(f"a {_name(box.kind)} box runs past the end of the file")
        if box.kind == b"moov":
            if box.size > index_max:
                raise IndexTooLarge(f"the video's index (moov) is {box.size:,} bytes, over the {index_max:,} byte limit")
            data = read(offset, box.size)
            if len(data) != box.size or data[:box.header] != raw[:box.header]:
                raise BoxError("the server sent a different index than the one it announced")
            return data
        offset = box.end
    raise BoxError("the video's index (moov box) was not found")


def _children(buf: bytes, start: int, end: int) -> list[Box]:
    boxes: list[Box] = []
    pos = start
    while pos + 8 <= end:
        box = read_header(buf, pos, 0, end)
        if box is None or box.end > end:
            raise BoxError("a box inside the video's index runs past its parent")
        boxes.append(box)
        pos = box.end
    return boxes


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def trim_moov(moov: bytes, cut: int) -> bytes:
    """The moov box rewritten so each track lists only the samples that end before ``cut``.

    Sample sizes and offsets stay as they were (absolute, valid inside the prefix); the tables that
    count samples (stsz, stsc, stco/co64, stts, ctts, stss) are cut to agree, because FFmpeg drops
    a track's index, edit list included, when they disagree.
    """
    root = read_header(moov, 0, 0, len(moov))
    if root is None or root.kind != b"moov" or root.size != len(moov):
        raise BoxError("the video's index is cut short")
    return _rebuild(moov, root, cut, 0)


def _rebuild(buf: bytes, box: Box, cut: int, depth: int) -> bytes:
    if depth > _MAX_DEPTH:
        raise BoxError("the video's index nests boxes too deeply")
    if box.kind == b"stbl":
        return _box(b"stbl", _trim_stbl(buf, box, cut))
    if box.kind != b"moov" and box.kind not in _CONTAINERS:
        return buf[box.start:box.end]
    children = _children(buf, box.start + box.header, box.end)
    return _box(box.kind, b"".join(_rebuild(buf, child, cut, depth + 1) for child in children))


def _full_box_entries(buf: bytes, box: Box, width: int) -> tuple[bytes, int, int]:
    """(version+flags, entry count, offset of the first entry), checked against the box's size."""
    at = box.start + box.header
    if at + 8 > box.end:
        raise BoxError(f"the {_name(box.kind)} table is cut short")
    count = struct.unpack_from(">I", buf, at + 4)[0]
    if at + 8 + width * count > box.end:
        raise BoxError(f"the {_name(box.kind)} table is cut short")
    return buf[at:at + 4], count, at + 8


def _trim_stbl(buf: bytes, stbl: Box, cut: int) -> bytes:
    children = _children(buf, stbl.start + stbl.header, stbl.end)
    tables = {b.kind: b for b in children}
    stsz, stsc = tables.get(b"stsz"), tables.get(b"stsc")
    chunks_box = tables.get(b"stco") or tables.get(b"co64")
    if stsz is None or stsc is None or chunks_box is None:
        raise BoxError("a track of the video has no sample tables (stsz, stsc, stco)")
    # Sample sizes: stsz is a full box, then a uniform size (0: one size per sample) and a count.
    at = stsz.start + stsz.header
    if at + 12 > stsz.end:
        raise BoxError("the stsz table is cut short")
    sz_flags, uniform, samples = buf[at:at + 4], *struct.unpack_from(">II", buf, at + 4)
    if not uniform and at + 12 + 4 * samples > stsz.end:
        raise BoxError("the stsz table is cut short")
    wide = chunks_box.kind == b"co64"
    co_flags, chunk_count, co_at = _full_box_entries(buf, chunks_box, 8 if wide else 4)
    offsets = struct.unpack_from(f">{chunk_count}{'Q' if wide else 'I'}", buf, co_at)
    sc_flags, run_count, sc_at = _full_box_entries(buf, stsc, 12)
    runs = [struct.unpack_from(">III", buf, sc_at + 12 * i) for i in range(run_count)]

    kept, last_chunk, in_last = 0, 0, 0
    run_index = -1
    for chunk, offset in enumerate(offsets, start=1):
        while run_index + 1 < len(runs) and runs[run_index + 1][0] <= chunk:
            run_index += 1  # runs are sorted by first chunk: one pass over both tables
        per_chunk = min(runs[run_index][1], samples - kept) if run_index >= 0 else 0
        if uniform:  # arithmetic, so a hostile count of tiny samples costs nothing
            in_chunk = min(per_chunk, max(0, cut - offset) // uniform)
        else:
            in_chunk = 0
            for size in struct.unpack_from(f">{per_chunk}I", buf, at + 12 + 4 * kept):
                if offset + size > cut:
                    break
                offset += size
                in_chunk += 1
        kept += in_chunk
        if in_chunk:
            last_chunk, in_last = chunk, in_chunk
        if in_chunk < per_chunk or kept >= samples:
            break

    new_runs = [r for r in runs if r[0] <= last_chunk]
    if new_runs and in_last != new_runs[-1][1]:  # the last chunk is only partly inside the cut
        if new_runs[-1][0] == last_chunk:
            new_runs[-1] = (last_chunk, in_last, new_runs[-1][2])
        else:
            new_runs.append((last_chunk, in_last, new_runs[-1][2]))
    rebuilt = {
        b"stsz": _box(b"stsz", sz_flags + struct.pack(">II", uniform, kept)
                      + (b"" if uniform else buf[at + 12:at + 12 + 4 * kept])),
        b"stsc": _box(b"stsc", sc_flags + struct.pack(">I", len(new_runs))
                      + b"".join(struct.pack(">III", *r) for r in new_runs)),
        chunks_box.kind: _box(chunks_box.kind, co_flags + struct.pack(">I", last_chunk)
                              + buf[co_at:co_at + (8 if wide else 4) * last_chunk]),
    }
    for kind in (b"stts", b"ctts"):
        if kind in tables:
            rebuilt[kind] = _cut_runs(buf, tables[kind], kept)
    if b"stss" in tables:
        flags, count, first = _full_box_entries(buf, tables[b"stss"], 4)
        numbers = [n for n in struct.unpack_from(f">{count}I", buf, first) if n <= kept]
        rebuilt[b"stss"] = _box(b"stss", flags + struct.pack(f">I{len(numbers)}I", len(numbers), *numbers))
    return b"".join(rebuilt.get(b.kind) or buf[b.start:b.end] for b in children)


def _cut_runs(buf: bytes, box: Box, kept: int) -> bytes:
    """A stts/ctts box whose (sample count, value) runs cover the first ``kept`` samples only."""
    flags, count, first = _full_box_entries(buf, box, 8)
    out: list[tuple[int, int]] = []
    covered = 0
    for i in range(count):
        if covered >= kept:
            break
        n, value = struct.unpack_from(">II", buf, first + 8 * i)
        take = min(n, kept - covered)
        out.append((take, value))
        covered += take
    return _box(box.kind, flags + struct.pack(">I", len(out)) + b"".join(struct.pack(">II", *r) for r in out))
