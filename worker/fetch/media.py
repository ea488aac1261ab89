"""Fetching a stranger's media URL: typed by its first bytes, images held to the pixel cap before any
decode, a video over its cap taken as its playable start."""
from __future__ import annotations

from functools import partial
from typing import Any

from server.media_types import IMAGE_TYPES, VIDEO_TYPES, describe_unknown, sniff
from worker.fetch.common import FetchLimits, FetchRefused, Fetched, Want
from worker.fetch.deadline import Deadline, Watchdog
from worker.fetch.policy import Resolver, system_resolver
from worker.fetch.ranges import Ranges, video_start
from worker.fetch.transport import (
    SNIFF_BYTES,
    Body,
    body_too_large,
    content_length,
    declared_too_large,
    fetch_following,
    read_into,
)
from worker.stages.decode import DecodeError, probe_dimensions


def _refuse_unknown(head: bytes) -> str:
    mime = sniff(head)
    if mime is None:
        raise FetchRefused(f"refused: the URL returned {describe_unknown(head)}", "not-media")
    return mime


MEDIA = Want("image/*, video/*;q=0.8, */*;q=0.1", _refuse_unknown)


def _read_media(resp: Any, deadline: Deadline, watchdog: Watchdog, *, limits: FetchLimits) -> Body:
    """A media body under the cap its own first bytes call for: ``max_bytes`` for an image,
    ``video_cap`` for a video. Of a video over its cap only the head is read, then the caller
    decides whether that start plays alone or needs its index by range requests."""
    declared = content_length(resp.headers.get("Content-Length"))
    ranges = resp.headers.get("Accept-Ranges")
    buf = bytearray()
    read_into(resp, buf, SNIFF_BYTES, deadline, watchdog)
    mime = _refuse_unknown(bytes(buf))
    video = mime in VIDEO_TYPES
    if video:
        deadline.extend(limits.video_timeout_s)
    cap = limits.video_cap if video else limits.max_bytes
    if declared is not None and declared > cap:
        if not video:
            raise declared_too_large(declared, cap)
        read_into(resp, buf, limits.video_head, deadline, watchdog)
        return Body(bytes(buf[:limits.video_head]), mime, complete=False, total=declared, accept_ranges=ranges)
    read_into(resp, buf, cap + 1, deadline, watchdog)
    if len(buf) > cap:
        if not video:
            raise body_too_large(cap)
        # No (true) length and more than the cap: keep the head; the size comes from a range answer.
        return Body(bytes(buf[:limits.video_head]), mime, complete=False, total=None, accept_ranges=ranges)
    return Body(bytes(buf), mime)


def fetch(
    url: str,
    limits: FetchLimits,
    resolver: Resolver = system_resolver,
    user_agent: str = "Credence/0.1 (+media check)",
) -> Fetched:
    """Fetch a stranger's media URL, or raise FetchRefused saying why not.

    ``resolver`` is injectable so tests can play a DNS server that answers with private
    addresses; whatever it returns is checked and then connected to directly. A video over
    ``limits.video_cap`` comes back as its playable start, with ``source_size`` set.
    """
    deadline = Deadline(limits.timeout_s)
    reader = partial(_read_media, limits=limits)
    target, resp, redirects = fetch_following(url, limits, resolver, user_agent, MEDIA.accept, reader, deadline)
    body = resp.body
    mime = body.mime or _refuse_unknown(body.data[:SNIFF_BYTES])
    data, source_size = body.data, None
    if mime in IMAGE_TYPES:
        try:
            probe_dimensions(data, limits.max_pixels)
        except DecodeError as exc:
            code = "too-many-pixels" if exc.code == "too-many-pixels" else "undecodable-header"
            raise FetchRefused(f"refused: {exc.reason}", code) from exc
    if not body.complete:
        ranges = Ranges(target.url, limits, resolver, user_agent, MEDIA.accept, deadline, body, resp.etag)
        data, source_size = video_start(mime, body.data, ranges, limits)
    return Fetched(
        url=url, final_url=target.url, data=data, mime=mime, etag=resp.etag, redirects=tuple(redirects),
        source_size=source_size,
    )
