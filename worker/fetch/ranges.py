"""A video over its cap, read by range requests: its start, and for MP4/MOV the index it needs.

Each range request is a whole guarded fetch (addresses, redirects, the first request's deadline), and
each answer is held to the range asked for and the size already known, so a hostile server cannot
splice bytes in or stretch the read.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any

from worker.fetch import isobmff
from worker.fetch.common import FetchLimits, FetchRefused
from worker.fetch.deadline import Deadline, Watchdog
from worker.fetch.policy import Resolver
from worker.fetch.transport import Body, content_length, fetch_following, read_into

_MAX_RANGE_REQUESTS = 20  # header reads while looking for moov, moov itself, a size probe
_CONTENT_RANGE_RE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


def _size_words(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB" if n >= 1 << 20 else f"{n:,} bytes"


def _no_partial_reads(limits: FetchLimits) -> FetchRefused:
    return FetchRefused(f"refused: the video is larger than {_size_words(limits.video_cap)} and the server "
                        "does not allow partial reads", "too-large")


def _bad_range(what: str) -> FetchRefused:
    return FetchRefused(f"refused: the server's answer to a range request {what}", "bad-range")


class Ranges:
    """Range requests for one file: each one a whole guarded fetch (addresses, redirects, the
    first request's deadline), each answer held to the range asked for and the size already known."""

    def __init__(self, url: str, limits: FetchLimits, resolver: Resolver, user_agent: str, accept: str,
                 deadline: Deadline, first: Body, etag: str | None) -> None:
        self.url, self.limits, self.resolver, self.user_agent = url, limits, resolver, user_agent
        self.accept = accept  # the first request's, so content negotiation cannot switch files between reads
        self.deadline = deadline
        self.total = first.total
        self.refused = (first.accept_ranges or "").strip().lower() == "none"
        # If-Range: a file changed between requests gets a 200 (refused) instead of mixed bytes.
        self.etag = etag if etag and etag.startswith('"') else None
        self.requests = 0

    def read(self, start: int, length: int) -> bytes:
        """Exactly bytes ``start .. start+length-1`` of the file, or FetchRefused."""
        if self.refused:
            raise _no_partial_reads(self.limits)
        if self.requests >= _MAX_RANGE_REQUESTS:
            raise FetchRefused("refused: the video needed too many range requests", "bad-range")
        self.requests += 1
        end = start + length - 1
        headers = {"Range": f"bytes={start}-{end}"}
        if self.etag:
            headers["If-Range"] = self.etag
        reader = partial(_read_range, start=start, end=end, total=self.total, limits=self.limits)
        _, resp, _ = fetch_following(self.url, self.limits, self.resolver, self.user_agent, self.accept, reader,
                                     self.deadline, headers)
        self.total = resp.body.total
        return resp.body.data


def _read_range(resp: Any, deadline: Deadline, watchdog: Watchdog, *, start: int, end: int,
                total: int | None, limits: FetchLimits) -> Body:
    """One 206 answer, checked: the range asked for, the size already known, no more bytes than that."""
    if resp.status != 206:
        raise _no_partial_reads(limits)  # the whole file again: not read at all
    match = _CONTENT_RANGE_RE.fullmatch((resp.headers.get("Content-Range") or "").strip())
    if match is None:
        raise _bad_range("has no single, complete Content-Range")
    first, last, size = (int(g) for g in match.groups())
    if (first, last) != (start, end):
        raise _bad_range(f"is bytes {first}-{last}, not the {start}-{end} asked for")
    if last >= size or (total is not None and size != total):
        raise _bad_range(f"gives the file's size as {size:,}, which does not fit what it said before")
    length = end - start + 1
    declared = content_length(resp.headers.get("Content-Length"))
    if declared is not None and declared != length:
        raise _bad_range(f"declares {declared:,} bytes for a {length:,} byte range")
    buf = bytearray()
    read_into(resp, buf, length + 1, deadline, watchdog)
    if len(buf) != length:
        raise _bad_range(f"holds {len(buf):,} bytes for a {length:,} byte range")
    return Body(bytes(buf), complete=False, total=size)


def video_start(mime: str, prefix: bytes, ranges: Ranges, limits: FetchLimits) -> tuple[bytes, int]:
    """The playable start of a video over its cap, and the whole file's size.

    WebM (Matroska) plays from its start alone. MP4/MOV needs its index: found in the prefix when
    the file was written "faststart", else fetched by range from after the media data.
    """
    if ranges.total is None:  # no length was declared: a one-byte range answer says it
        if ranges.read(0, 1) != prefix[:1]:
            raise _bad_range("does not match the file's first byte")
    total = ranges.total
    if total is None or total <= len(prefix):
        raise _bad_range("does not give the file's size")
    if mime == "video/webm":
        return prefix, total
    try:
        return isobmff.playable(prefix, total, ranges.read, limits.video_index_max), total
    except isobmff.IndexTooLarge as exc:
        raise FetchRefused(f"refused: {exc.reason}", "too-large") from exc
    except isobmff.BoxError as exc:
        raise FetchRefused(f"refused: the video's start cannot be read on its own: {exc.reason}",
                           "undecodable-header") from exc
