"""What every part of the guarded fetcher shares: its refusal, its limits, what it returns."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

VIDEO_PART_BYTES = 32 * 1024 * 1024  # of a video over its cap: the start read, and the largest index fetched


class FetchRefused(Exception):
    """Why a URL was not (or not fully) fetched; ``reason`` is shown to people, ``code`` to programs."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"FetchRefused({self.reason!r}, {self.code!r})"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_s: float
    max_redirects: int
    max_pixels: int
    allow_networks: tuple[IPNetwork, ...] = ()
    # Videos are judged by their first bytes too; they get their own cap. 0: the same as max_bytes.
    video_max_bytes: int = 0
    # Bytes read from the start of a video over its cap (by range or by hanging up). 0: derived.
    video_head_bytes: int = 0
    # The whole fetch's deadline once the first bytes show a video (tens of MB, not one image). 0: timeout_s.
    video_timeout_s: float = 0

    @classmethod
    def from_settings(cls, settings: Any) -> "FetchLimits":
        """Duck-typed so workers and tests can pass any object with the Settings fields."""
        return cls(
            max_bytes=int(settings.fetch_max_bytes),
            timeout_s=float(settings.fetch_timeout_s),
            max_redirects=int(settings.fetch_max_redirects),
            max_pixels=int(settings.max_pixels),
            allow_networks=tuple(settings.allow_networks),
            video_max_bytes=int(getattr(settings, "video_max_bytes", 0) or 0),
            video_timeout_s=float(getattr(settings, "video_fetch_timeout_s", 0) or 0),
        )

    @property
    def video_cap(self) -> int:
        return self.video_max_bytes or self.max_bytes

    @property
    def video_head(self) -> int:
        """32 MiB (a minute or more of ordinary footage, more than the analysis reads), never over the cap."""
        return min(self.video_cap, self.video_head_bytes or VIDEO_PART_BYTES)

    @property
    def video_index_max(self) -> int:
        """Largest moov fetched after the head (a two-hour film's index is ~10 MB), never over the cap."""
        return min(self.video_cap, VIDEO_PART_BYTES)


class Want(NamedTuple):
    """What a caller accepts back: the Accept header, and a check of the first bytes that names
    the type or raises FetchRefused. Media and documents (trust lists, remote manifests) share
    every other part of the fetch, so the SSRF guard exists once."""

    accept: str
    check: Callable[[bytes], str]


@dataclass(frozen=True)
class Fetched:
    url: str
    final_url: str
    data: bytes
    mime: str
    etag: str | None
    redirects: tuple[str, ...]
    # The whole file's size when ``data`` is only its playable start (a video over its cap), else None.
    source_size: int | None = None
