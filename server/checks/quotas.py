"""Per-client upload byte quotas: a rolling window counter in the rate limiter's storage (Redis when
configured, else this process's memory), charged before any uploaded byte reaches the media store.

Request-count limits (server/limits.py) do not bound bytes: at 120 uploads a minute of 99 MB each an
anonymous address could write ~12 GB a minute. The quota counts bytes instead; anonymous clients (by
address) get a much smaller one than API keys and desk users.
"""
from __future__ import annotations

import logging

from limits import RateLimitItemPerSecond
from limits.strategies import SlidingWindowCounterRateLimiter

from server.config import Settings
from server.limits import limiter

log = logging.getLogger(__name__)
NAMESPACE = "credence-upload-bytes"


class QuotaExceeded(Exception):
    """The upload would take its client past the byte quota; the message is shown to people."""


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MiB"


def charge_upload(settings: Settings, client: str, keyed: bool, size: int) -> None:
    """Count ``size`` bytes against ``client``'s quota, or raise QuotaExceeded (nothing is counted then).

    Storage errors let the upload through, as the rate limits do (RATELIMIT_SWALLOW_ERRORS): the media
    store's budget still bounds the disk."""
    quota = int(settings.upload_quota_keyed_bytes if keyed else settings.upload_quota_anonymous_bytes)
    window = int(settings.upload_quota_window_s)
    who = "this API key or user" if keyed else "anonymous clients (per address)"
    hint = "" if keyed else "; an API key has a larger quota"
    if quota <= 0:
        raise QuotaExceeded(f"uploads are not allowed for {who}{hint}")
    if size > quota:
        raise QuotaExceeded(f"the file ({size:,} bytes) is larger than the upload quota of {who}: "
                            f"{_mib(quota)} per {window} s{hint}")
    try:
        strategy = SlidingWindowCounterRateLimiter(limiter.storage)
        allowed = strategy.hit(RateLimitItemPerSecond(quota, window), NAMESPACE, client, cost=size)
    except Exception:  # noqa: BLE001 - a storage outage must not take uploads down
        log.warning("upload quota storage failed; upload allowed", exc_info=True)
        return
    if not allowed:
        raise QuotaExceeded(f"upload quota used up: {who} may upload {_mib(quota)} per {window} s; "
                            f"try again later{hint}")
