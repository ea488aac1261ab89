"""URL validation and normalisation: one key per resource however a page spells it.

The one rule for both sides: the API keys its cache by ``normalise(url)``, and the guarded fetcher
(worker/fetch) requests exactly ``parse(url)``. Were they two rules, a spelling they read differently
(a full-width letter, a decimal IPv4 host, a space) would get a key for one resource and the bytes
of another.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote, urlsplit

MAX_URL_LENGTH = 4096
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")  # spaces are percent-encoded later; never allowed in hosts
_DEC_RE = re.compile(r"[0-9]+")
_OCT_RE = re.compile(r"[0-7]*")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


class BadUrl(ValueError):
    """A URL refused before anything is queued or fetched.

    ``str()`` is shown to the API's client; ``code`` is for programs. ``refusal`` is the fetcher's
    wording, which differs only where the API's would be wrong for what the fetcher also fetches
    (trust lists, manifests, peers' feeds).
    """

    def __init__(self, reason: str, code: str = "bad-url", refusal: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.refusal = refusal or reason


class ParsedUrl(NamedTuple):
    url: str           # the normalised absolute URL: the cache key's input and what is requested
    scheme: str
    host: str          # ASCII host for Host/SNI (IPv6 without brackets)
    literal: str | None  # the IP address when the URL named one
    written: str       # the host as the URL spelled it, for reasons shown to people
    port: int
    request_target: str


def _ipv4_number(part: str) -> int | None:
    """One dotted part the way inet_aton (and browsers) read it: 0x hex, leading-0 octal."""
    if not part:
        return None
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        return (int(digits, 16) if digits else 0) if _HEX_RE.fullmatch(digits) else None
    if len(part) > 1 and part[0] == "0":
        return int(part[1:], 8) if _OCT_RE.fullmatch(part[1:]) else None
    return int(part) if _DEC_RE.fullmatch(part) else None


def _parse_ipv4(host: str) -> str | None:
    """Dotted quad for numeric hosts (2130706433, 0177.1, 0x7f.0.0.1); None for DNS names.

    Done here rather than left to getaddrinfo so an injected resolver, or a libc that reads
    these forms differently, can never turn a numeric host into an unchecked address.
    """
    labels = host.split(".")
    last = labels[-1]
    if not (_DEC_RE.fullmatch(last) or _ipv4_number(last) is not None and last[:2] in ("0x", "0X")):
        return None  # does not end in a number: a DNS name
    if len(labels) > 4:
        raise BadUrl(f"{host} is not a valid IP address")
    numbers = [_ipv4_number(p) for p in labels]
    if any(n is None for n in numbers):
        raise BadUrl(f"{host} is not a valid IP address")
    nums = [n for n in numbers if n is not None]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise BadUrl(f"{host} is not a valid IP address")
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _split_netloc(netloc: str) -> tuple[str, bool, str]:
    """(host, bracketed, port text) without urllib's lenient port parsing."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise BadUrl("the URL has an unclosed '[' in its host")
        host, rest = netloc[1:end], netloc[end + 1:]
        if rest and not rest.startswith(":"):
            raise BadUrl("the URL's host is malformed")
        return host, True, rest[1:]
    host, sep, port = netloc.rpartition(":")
    if not sep:
        return netloc, False, ""
    if ":" in host:
        raise BadUrl("IPv6 addresses in URLs must be in brackets")
    return host, False, port


def _bad_scheme(scheme: str) -> BadUrl:
    shown = f"{scheme}:" if scheme else "a URL without a scheme"
    return BadUrl(f"only http and https URLs can be checked, not {shown}", "scheme",
                  f"only http and https URLs are fetched, not {shown}")


@lru_cache(maxsize=65536)  # the same images recur across pages; keep the hot path cheap
def parse(url: str) -> ParsedUrl:
    """Validate and normalise one URL; everything refused here never reaches a queue, DNS or a socket."""
    if not isinstance(url, str) or not url.strip():
        raise BadUrl("the URL is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if _CONTROL_RE.search(url):
        raise BadUrl("the URL contains control characters")  # urlsplit would silently drop tabs and newlines
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        # urlsplit rejects some bad brackets before we see the scheme; keep the scheme verdict first.
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in _DEFAULT_PORTS:
            raise _bad_scheme(scheme) from exc
        raise BadUrl(f"the URL could not be parsed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _bad_scheme(scheme)
    netloc = parts.netloc
    if "@" in netloc:
        raise BadUrl("the URL carries a username or password", "credentials")
    if not netloc:
        raise BadUrl("the URL has no host")
    raw_host, bracketed, port_text = _split_netloc(netloc)

    default_port = _DEFAULT_PORTS[scheme]
    if port_text == "":
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise BadUrl(f"{port_text!r} is not a valid port")

    literal: str | None = None
    if bracketed:
        if "%" in raw_host:
            raise BadUrl("scoped IPv6 addresses (zone ids) cannot be fetched")
        try:
            v6 = ipaddress.IPv6Address(raw_host)
        except ValueError as exc:
            raise BadUrl(f"[{raw_host}] is not a valid IPv6 address") from exc
        host = literal = str(v6)
        host_for_url = f"[{host}]"
    else:
        if not raw_host:
            raise BadUrl("the URL has no host")
        if "%" in raw_host:
            raise BadUrl("the URL's host contains '%'")
        try:
            # stdlib IDNA (nameprep) folds full-width and other look-alike forms to ASCII first,
            # so the numeric check below sees what the resolver would.
            host = raw_host.lower().encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise BadUrl(f"{raw_host!r} is not a valid host name") from exc
        if host.endswith("."):
            host = host[:-1]
        if not host or len(host) > 253 or not _HOST_RE.fullmatch(host):
            raise BadUrl(f"{raw_host!r} is not a valid host name")
        literal = _parse_ipv4(host)
        if literal is not None:
            host = literal
        host_for_url = host

    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    query = quote(parts.query, safe="/?%!$&'()*+,;=:@-._~")
    request_target = path + (f"?{query}" if query else "")
    port_part = "" if port == default_port else f":{port}"
    return ParsedUrl(
        url=f"{scheme}://{host_for_url}{port_part}{request_target}",
        scheme=scheme,
        host=host,
        literal=literal,
        written=raw_host if len(raw_host) <= 100 else raw_host[:97] + "...",
        port=port,
        request_target=request_target,
    )


def normalise(url: str) -> str:
    """The URL the fetcher would request: the only form a cache key is made from."""
    return parse(url).url


@lru_cache(maxsize=65536)
def url_key(normalised_url: str) -> str:
    return hashlib.sha256(normalised_url.encode("utf-8")).hexdigest()
