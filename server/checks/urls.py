"""URL validation and normalisation: one key per resource however a page spells it."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

MAX_URL_LENGTH = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    """A URL we refuse before queueing anything; the message is shown to the client."""


@lru_cache(maxsize=65536)  # the same images recur across pages; keep the hot path cheap
def normalise(url: str) -> str:
    """Lower-case scheme and host, drop default port and fragment; refuse non-http(s)."""
    if not isinstance(url, str) or not url.strip():
        raise BadUrl("empty URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadUrl(f"malformed URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadUrl(f"only http and https URLs can be checked, not {scheme or 'a relative URL'}:")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BadUrl("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise BadUrl("URLs with credentials are not accepted")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


@lru_cache(maxsize=65536)
def url_key(normalised_url: str) -> str:
    return hashlib.sha256(normalised_url.encode("utf-8")).hexdigest()
