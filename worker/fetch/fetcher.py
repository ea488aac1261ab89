"""The one guarded fetcher: the only code in Credence that touches the network.

Every URL it sees comes from a stranger, so it is written against SSRF first and convenience
second: the host is resolved once, every address is checked, and the connection goes to the
checked address itself (no second lookup a rebinding DNS server could answer differently).
Redirects are followed by hand so each hop is checked the same way, and one deadline and one
byte cap cover the whole fetch. What came back is judged by its bytes, never by its headers.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NamedTuple
from urllib.parse import quote, urljoin, urlsplit

import certifi
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Timeout

from server.media_types import IMAGE_TYPES, VIDEO_TYPES, describe_unknown, sniff
from worker.fetch import isobmff
from worker.stages.decode import DecodeError, probe_dimensions

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 4096
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_SNIFF_BYTES = 512
_MAX_ETAG = 256
_MAX_RANGE_REQUESTS = 20  # header reads while looking for moov, moov itself, a size probe
_CONTENT_RANGE_RE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


class FetchRefused(Exception):
    """Why a URL was not (or not fully) fetched; ``reason`` is shown to people, ``code`` to programs."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"FetchRefused({self.reason!r}, {self.code!r})"


VIDEO_PART_BYTES = 32 * 1024 * 1024  # of a video over its cap: the start read, and the largest index fetched


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


# --------------------------------------------------------------------------- addresses

def _nets(*specs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), label) for net, label in specs)


# Explicit lists, because ``is_global`` differs between Python versions (3.11 calls some
# multicast global) and the reason shown to people should name the range.
_V4_BLOCKS = _nets(
    ("0.0.0.0/32", "the unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    ("169.254.169.254/32", "the cloud metadata address (link-local)"),
    ("169.254.0.0/16", "a link-local address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
# Tunnelled forms carry an IPv4 address inside; they are refused outright rather than
# trusting that the gateway in between would refuse a private one.
_V6_BLOCKS = _nets(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address (tunnelled)"),
    ("::/96", "an IPv4-compatible address (tunnelled)"),
    ("64:ff9b::/96", "a NAT64 address (tunnelled)"),
    ("64:ff9b:1::/48", "a local NAT64 address (tunnelled)"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address (tunnelled)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("2002::/16", "a 6to4 address (tunnelled)"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("::/8", "a reserved address"),
)


_LOW32_EMBEDDERS = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a tunnelled IPv6 form points at, so the reason can name it."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _LOW32_EMBEDDERS):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _blocked_reason(addr: IPAddress) -> str | None:
    """Plain words for why ``addr`` may not be fetched, or None when it is a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return "a scoped (interface-bound) IPv6 address"
        mapped = addr.ipv4_mapped
        if mapped is not None:
            inner = _blocked_reason(mapped)
            return f"an IPv4-mapped address for {mapped}, {inner}" if inner else None
        for net, label in _V6_BLOCKS:
            if addr in net:
                v4 = _embedded_v4(addr)
                return f"{label} embedding {v4}" if v4 is not None and "tunnelled" in label else label
    else:
        for net, label in _V4_BLOCKS:
            if addr in net:
                return label
    # Belt and braces for anything the tables miss.
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local:
        return "a site-local address"
    if not addr.is_global:
        return "a non-public address"
    return None


def _exempt(addr: IPAddress, allow_networks: tuple[IPNetwork, ...]) -> bool:
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    return any(a in net for a in candidates for net in allow_networks)


def _vet(ip: str, allow_networks: tuple[IPNetwork, ...]) -> tuple[str | None, str | None]:
    """(address to connect to, None) when allowed, else (None, reason)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None, "not an IP address"
    # Connect to the IPv4 address itself, not its mapped form, so the check and the
    # connection are about the same thing.
    target: IPAddress = addr
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and not addr.scope_id:
        target = addr.ipv4_mapped
    if _exempt(addr, allow_networks):
        return str(target), None
    reason = _blocked_reason(addr)
    return (None, reason) if reason else (str(target), None)


def _show(ip: str) -> str:
    """An address as people write it (Python 3.11 prints ::ffff:127.0.0.1 as ::ffff:7f00:1)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and not addr.scope_id:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def check_address(ip: str, allow_networks: tuple[IPNetwork, ...] | list[IPNetwork] = ()) -> None:
    """Refuse an address a stranger's URL must not reach (internal, tunnelled, non-unicast).

    ``allow_networks`` exists so tests can reach their own loopback servers; it is empty in
    production.
    """
    _, reason = _vet(ip, tuple(allow_networks))
    if reason:
        raise FetchRefused(f"refused: {ip} is {reason}", "blocked-address")


def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver, asked once per hop; fetch() connects to what this returned."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in seen:
            seen.append(ip)
    return seen


# --------------------------------------------------------------------------- URLs

class _Target(NamedTuple):
    url: str           # normalised absolute URL
    scheme: str
    host: str          # ASCII host for Host/SNI (IPv6 without brackets)
    literal: str | None  # the IP address when the URL named one
    written: str       # the host as the URL spelled it, for reasons shown to people
    port: int
    request_target: str


_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")  # spaces are percent-encoded later; never allowed in hosts
_DEC_RE = re.compile(r"[0-9]+")
_OCT_RE = re.compile(r"[0-7]*")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")


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
        raise FetchRefused(f"refused: {host} is not a valid IP address", "bad-url")
    numbers = [_ipv4_number(p) for p in labels]
    if any(n is None for n in numbers):
        raise FetchRefused(f"refused: {host} is not a valid IP address", "bad-url")
    nums = [n for n in numbers if n is not None]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise FetchRefused(f"refused: {host} is not a valid IP address", "bad-url")
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _split_netloc(netloc: str) -> tuple[str, bool, str]:
    """(host, bracketed, port text) without urllib's lenient port parsing."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise FetchRefused("refused: the URL has an unclosed '[' in its host", "bad-url")
        host, rest = netloc[1:end], netloc[end + 1:]
        if rest and not rest.startswith(":"):
            raise FetchRefused("refused: the URL's host is malformed", "bad-url")
        return host, True, rest[1:]
    host, sep, port = netloc.rpartition(":")
    if not sep:
        return netloc, False, ""
    if ":" in host:
        raise FetchRefused("refused: IPv6 addresses in URLs must be in brackets", "bad-url")
    return host, False, port


def _parse_url(url: str) -> _Target:
    """Validate and normalise one URL; everything refused here never reaches DNS or a socket."""
    if not isinstance(url, str) or not url.strip():
        raise FetchRefused("refused: the URL is empty", "bad-url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise FetchRefused(f"refused: the URL is longer than {MAX_URL_LENGTH} characters", "bad-url")
    if _CONTROL_RE.search(url):
        raise FetchRefused("refused: the URL contains control characters", "bad-url")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        # urlsplit rejects some bad brackets before we see the scheme; keep the scheme verdict first.
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in ("http", "https"):
            raise FetchRefused(_scheme_reason(scheme), "scheme") from exc
        raise FetchRefused(f"refused: the URL could not be parsed ({exc})", "bad-url") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(_scheme_reason(scheme), "scheme")
    netloc = parts.netloc
    if "@" in netloc:
        raise FetchRefused("refused: the URL carries a username or password", "credentials")
    if not netloc:
        raise FetchRefused("refused: the URL has no host", "bad-url")
    raw_host, bracketed, port_text = _split_netloc(netloc)

    default_port = 443 if scheme == "https" else 80
    if port_text == "":
        port = default_port
    elif port_text.isascii() and port_text.isdigit() and 0 < int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise FetchRefused(f"refused: {port_text!r} is not a valid port", "bad-url")

    literal: str | None = None
    if bracketed:
        if "%" in raw_host:
            raise FetchRefused("refused: scoped IPv6 addresses (zone ids) cannot be fetched", "bad-url")
        try:
            v6 = ipaddress.IPv6Address(raw_host)
        except ValueError as exc:
            raise FetchRefused(f"refused: [{raw_host}] is not a valid IPv6 address", "bad-url") from exc
        host = literal = str(v6)
        host_for_url = f"[{host}]"
    else:
        if not raw_host:
            raise FetchRefused("refused: the URL has no host", "bad-url")
        if "%" in raw_host:
            raise FetchRefused("refused: the URL's host contains '%'", "bad-url")
        try:
            # stdlib IDNA (nameprep) folds full-width and other look-alike forms to ASCII first,
            # so the numeric check below sees what the resolver would.
            host = raw_host.lower().encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise FetchRefused(f"refused: {raw_host!r} is not a valid host name", "bad-url") from exc
        if host.endswith("."):
            host = host[:-1]
        if not host or len(host) > 253 or not _HOST_RE.fullmatch(host):
            raise FetchRefused(f"refused: {raw_host!r} is not a valid host name", "bad-url")
        literal = _parse_ipv4(host)
        if literal is not None:
            host = literal
        host_for_url = host

    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    query = quote(parts.query, safe="/?%!$&'()*+,;=:@-._~")
    request_target = path + (f"?{query}" if query else "")
    port_part = "" if port == default_port else f":{port}"
    return _Target(
        url=f"{scheme}://{host_for_url}{port_part}{request_target}",
        scheme=scheme,
        host=host,
        literal=literal,
        written=raw_host if len(raw_host) <= 100 else raw_host[:97] + "...",
        port=port,
        request_target=request_target,
    )


def _scheme_reason(scheme: str) -> str:
    shown = f"{scheme}:" if scheme else "a URL without a scheme"
    return f"refused: only http and https URLs are fetched, not {shown}"


# --------------------------------------------------------------------------- deadline

class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds

    def extend(self, seconds: float) -> None:
        """A longer whole-fetch budget, counted from the start (a video, once its bytes say so)."""
        if seconds > self.seconds:
            self.seconds, self.at = seconds, self.started + seconds

    def remaining(self) -> float:
        """Seconds left; raises once the whole fetch has run out of time."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.refusal()
        return left

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def refusal(self, what: str = "the fetch") -> FetchRefused:
        unit = "second" if self.seconds == 1 else "seconds"
        return FetchRefused(f"gave up: {what} took longer than {self.seconds:g} {unit}", "timeout")


class _Watchdog:
    """Shuts the sockets down when the deadline passes.

    Socket timeouts bound each recv, not the total: a server dripping one byte at a time
    (headers, TLS handshake or body) would otherwise hold a worker forever. Dups of the
    sockets are kept so a shutdown can never hit an fd that was closed and reused.
    """

    def __init__(self, deadline: _Deadline) -> None:
        self._deadline = deadline
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._closed = False
        self.fired = False

    def arm(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            if self._closed:
                dup.close()
                return
            self._socks.append(dup)
            if self.fired:
                self._shutdown(dup)
            if self._timer is None:
                delay = max(0.0, self._deadline.at - time.monotonic())
                self._timer = threading.Timer(delay, self._fire)
                self._timer.daemon = True
                self._timer.start()

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            left = self._deadline.at - time.monotonic()
            if left > 0:  # the deadline was extended since the timer was set
                self._timer = threading.Timer(left, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self.fired = True
            for sock in self._socks:
                self._shutdown(sock)

    def drop_sockets(self) -> None:
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            for sock in self._socks:
                sock.close()
            self._socks.clear()


class _Guard(NamedTuple):
    ip: str
    watchdog: _Watchdog


def _guarded_new_conn(conn: Any, sock: socket.socket) -> socket.socket:
    guard: _Guard = conn._credence_guard
    peer = sock.getpeername()[0]
    if ipaddress.ip_address(peer.split("%")[0]) != ipaddress.ip_address(guard.ip):
        sock.close()
        raise FetchRefused(f"refused: connected to {peer}, not the checked {guard.ip}", "blocked-address")
    guard.watchdog.arm(sock)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, credence_guard: _Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credence_guard = credence_guard

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self, super()._new_conn())


class _GuardedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, credence_guard: _Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credence_guard = credence_guard

    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self, super()._new_conn())


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


# --------------------------------------------------------------------------- fetching

def _resolve(resolver: Resolver, host: str, port: int, deadline: _Deadline) -> list[str]:
    """Run the resolver under the deadline; getaddrinfo itself has no timeout."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ips"] = resolver(host, port)
        except BaseException as exc:  # handed to the caller below
            box["exc"] = exc

    thread = threading.Thread(target=run, name="credence-dns", daemon=True)
    thread.start()
    thread.join(deadline.remaining())
    if thread.is_alive():
        raise deadline.refusal(f"looking up {host}")
    exc = box.get("exc")
    if isinstance(exc, FetchRefused):
        raise exc
    if isinstance(exc, (OSError, UnicodeError, ValueError)):
        raise FetchRefused(f"could not look up {host}: {exc}", "dns") from exc
    if exc is not None:
        raise exc
    ips = [str(ip) for ip in box.get("ips") or []]
    if not ips:
        raise FetchRefused(f"could not look up {host}: it has no addresses", "dns")
    return list(dict.fromkeys(ips))


def _addresses(target: _Target, limits: FetchLimits, resolver: Resolver, deadline: _Deadline) -> list[str]:
    """Every address the host has, all checked; one bad address refuses the host."""
    if target.literal is not None:
        connect_ip, reason = _vet(target.literal, limits.allow_networks)
        if reason:
            shown = _show(target.literal)
            if target.written.lower() in (target.literal, shown):
                raise FetchRefused(f"refused: {shown} is {reason}", "blocked-address")
            # 2130706433, 0x7f.1 and friends: say what the disguise meant.
            raise FetchRefused(f"refused: {target.written} means {shown}, {reason}", "blocked-address")
        return [connect_ip] if connect_ip else []
    allowed: list[str] = []
    for ip in _resolve(resolver, target.host, target.port, deadline):
        connect_ip, reason = _vet(ip, limits.allow_networks)
        if reason or connect_ip is None:
            raise FetchRefused(f"refused: {target.host} resolves to {ip}, {reason}", "blocked-address")
        allowed.append(connect_ip)
    return list(dict.fromkeys(allowed))


class _Body(NamedTuple):
    """What a reader took from a 2xx answer. ``complete`` is False when only the start of the file
    was read (a video over its cap); ``total`` is the file's size when the server said it."""

    data: bytes
    mime: str | None = None
    complete: bool = True
    total: int | None = None
    accept_ranges: str | None = None


# Reads one 2xx answer: (urllib3 response, the fetch's deadline, its watchdog) -> what was read.
_Reader = Callable[[Any, "_Deadline", "_Watchdog"], _Body]


class _Response(NamedTuple):
    status: int
    reason: str
    location: str | None
    etag: str | None
    body: _Body


def _host_header(target: _Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _one_request(
    target: _Target, ip: str, deadline: _Deadline, watchdog: _Watchdog, user_agent: str,
    accept: str, reader: _Reader, extra_headers: dict[str, str],
) -> _Response:
    remaining = deadline.remaining()
    timeout = Timeout(connect=remaining, read=remaining)
    guard = _Guard(ip=ip, watchdog=watchdog)
    pool: HTTPConnectionPool
    if target.scheme == "https":
        pool = _GuardedHTTPSPool(
            host=ip, port=target.port, timeout=timeout, maxsize=1, retries=False,
            cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
            server_hostname=target.host, assert_hostname=target.host,
            credence_guard=guard,
        )
    else:
        pool = _GuardedHTTPPool(
            host=ip, port=target.port, timeout=timeout, maxsize=1, retries=False, credence_guard=guard,
        )
    headers = {
        "Host": _host_header(target),
        "User-Agent": user_agent,
        "Accept": accept,
        # Compressed bodies would dodge the byte cap (a gzip bomb); ask for none, decode none.
        "Accept-Encoding": "identity",
        **extra_headers,
    }
    try:
        resp = pool.urlopen(
            "GET", target.request_target, headers=headers, retries=False, redirect=False,
            assert_same_host=False, preload_content=False, decode_content=False,
            release_conn=False, timeout=timeout,
        )
        try:
            if watchdog.fired:
                raise deadline.refusal()
            if resp.status in _REDIRECT_STATUSES or not 200 <= resp.status < 300:
                return _Response(resp.status, resp.reason or "", resp.headers.get("Location"), None, _Body(b""))
            body = reader(resp, deadline, watchdog)
            return _Response(resp.status, resp.reason or "", None, _clean_etag(resp.headers.get("ETag")), body)
        finally:
            resp.close()  # also how a video's start is taken without its rest: hang up
    finally:
        pool.close()
        watchdog.drop_sockets()


def _read_into(resp: Any, buf: bytearray, upto: int, deadline: _Deadline, watchdog: _Watchdog) -> bool:
    """Read until ``buf`` holds ``upto`` bytes or the body ends (then True); never past ``upto``."""
    while len(buf) < upto:
        remaining = deadline.remaining()
        sock = getattr(resp.connection, "sock", None)
        if sock is not None:
            try:
                sock.settimeout(remaining)  # each read waits no longer than the fetch has left
            except OSError:
                pass
        chunk = resp.read1(min(_CHUNK, upto - len(buf)))
        if watchdog.fired:
            raise deadline.refusal()
        if not chunk:
            return True
        buf += chunk
    return False


def _read_body(resp: Any, deadline: _Deadline, watchdog: _Watchdog, *, limits: FetchLimits, want: Want) -> _Body:
    """A document's body: the size cap first, the type check as soon as its first bytes are in."""
    declared = _content_length(resp.headers.get("Content-Length"))
    if declared is not None and declared > limits.max_bytes:
        raise _declared_too_large(declared, limits.max_bytes)
    buf = bytearray()
    # Stop early rather than download a big HTML page.
    if not _read_into(resp, buf, min(_SNIFF_BYTES, limits.max_bytes + 1), deadline, watchdog):
        want.check(bytes(buf[:_SNIFF_BYTES]))
    _read_into(resp, buf, limits.max_bytes + 1, deadline, watchdog)
    if len(buf) > limits.max_bytes:
        raise _body_too_large(limits.max_bytes)
    return _Body(bytes(buf))


def _read_media(resp: Any, deadline: _Deadline, watchdog: _Watchdog, *, limits: FetchLimits) -> _Body:
    """A media body under the cap its own first bytes call for: ``max_bytes`` for an image,
    ``video_cap`` for a video. Of a video over its cap only the head is read, then the caller
    decides whether that start plays alone or needs its index by range requests."""
    declared = _content_length(resp.headers.get("Content-Length"))
    ranges = resp.headers.get("Accept-Ranges")
    buf = bytearray()
    _read_into(resp, buf, _SNIFF_BYTES, deadline, watchdog)
    mime = _refuse_unknown(bytes(buf))
    video = mime in VIDEO_TYPES
    if video:
        deadline.extend(limits.video_timeout_s)
    cap = limits.video_cap if video else limits.max_bytes
    if declared is not None and declared > cap:
        if not video:
            raise _declared_too_large(declared, cap)
        _read_into(resp, buf, limits.video_head, deadline, watchdog)
        return _Body(bytes(buf[:limits.video_head]), mime, complete=False, total=declared, accept_ranges=ranges)
    _read_into(resp, buf, cap + 1, deadline, watchdog)
    if len(buf) > cap:
        if not video:
            raise _body_too_large(cap)
        # No (true) length and more than the cap: keep the head; the size comes from a range answer.
        return _Body(bytes(buf[:limits.video_head]), mime, complete=False, total=None, accept_ranges=ranges)
    return _Body(bytes(buf), mime)


def _declared_too_large(declared: int, cap: int) -> FetchRefused:
    return FetchRefused(f"refused: the server declared {declared:,} bytes, over the {cap:,} byte limit", "too-large")


def _body_too_large(cap: int) -> FetchRefused:
    return FetchRefused(f"refused: the body is larger than the {cap:,} byte limit", "too-large")


def _content_length(value: str | None) -> int | None:
    if not value:
        return None
    parts = {p.strip() for p in value.split(",")}
    if len(parts) != 1:
        return None
    text = parts.pop()
    return int(text) if text.isascii() and text.isdigit() else None


def _clean_etag(value: str | None) -> str | None:
    """Strangers' header goes into our database: keep it only when short and printable."""
    if value is None or len(value) > _MAX_ETAG or not value.isprintable() or not value.isascii():
        return None
    return value.strip() or None


def _refuse_unknown(head: bytes) -> str:
    mime = sniff(head)
    if mime is None:
        raise FetchRefused(f"refused: the URL returned {describe_unknown(head)}", "not-media")
    return mime


MEDIA = Want("image/*, video/*;q=0.8, */*;q=0.1", _refuse_unknown)


def _fetch_hop(
    target: _Target, limits: FetchLimits, resolver: Resolver, deadline: _Deadline,
    watchdog: _Watchdog, user_agent: str, accept: str, reader: _Reader, extra_headers: dict[str, str],
) -> _Response:
    failures: list[str] = []
    for ip in _addresses(target, limits, resolver, deadline):
        try:
            return _one_request(target, ip, deadline, watchdog, user_agent, accept, reader, extra_headers)
        except FetchRefused:
            raise
        except NewConnectionError as exc:
            if watchdog.fired or deadline.expired():
                raise deadline.refusal() from exc
            failures.append(f"{ip}: {_short(exc)}")  # try the next checked address
        except (ConnectTimeoutError, ReadTimeoutError, TimeoutError) as exc:
            raise deadline.refusal() from exc
        except SSLError as exc:
            if watchdog.fired or deadline.expired():
                raise deadline.refusal() from exc
            raise FetchRefused(f"could not make a verified TLS connection to {target.host}: {_short(exc)}",
                               "connect") from exc
        except (HTTPError, OSError) as exc:
            if watchdog.fired or deadline.expired():
                raise deadline.refusal() from exc
            raise FetchRefused(f"the connection to {target.host} failed: {_short(exc)}", "connect") from exc
    raise FetchRefused(f"could not connect to {target.host} ({'; '.join(failures) or 'no address'})", "connect")


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


def _fetch_following(
    url: str, limits: FetchLimits, resolver: Resolver, user_agent: str, accept: str, reader: _Reader,
    deadline: _Deadline, extra_headers: dict[str, str] | None = None,
) -> tuple[_Target, _Response, list[str]]:
    """The guarded fetch itself, every hop checked; callers judge what came back.

    ``deadline`` is the whole fetch's, so a video's range requests share the first request's time.
    """
    watchdog = _Watchdog(deadline)
    redirects: list[str] = []
    came_from: str | None = None
    try:
        target = _parse_url(url)
        while True:
            try:
                resp = _fetch_hop(target, limits, resolver, deadline, watchdog, user_agent, accept, reader,
                                  extra_headers or {})
            except FetchRefused as exc:
                if came_from is not None:
                    raise FetchRefused(f"{exc.reason} (redirected from {came_from})", exc.code) from exc
                raise
            if resp.status in _REDIRECT_STATUSES:
                if not resp.location:
                    raise FetchRefused(f"the server answered HTTP {resp.status} without saying where to go",
                                       "http-status")
                if len(redirects) >= limits.max_redirects:
                    raise FetchRefused(f"refused: more than {limits.max_redirects} redirects", "too-many-redirects")
                came_from = target.url
                try:
                    target = _parse_url(urljoin(came_from, resp.location.strip()))
                except FetchRefused as exc:
                    raise FetchRefused(f"{exc.reason} (redirected from {came_from})", exc.code) from exc
                redirects.append(target.url)
                continue
            if not 200 <= resp.status < 300:
                raise FetchRefused(f"the server answered HTTP {resp.status} {resp.reason}".rstrip(), "http-status")
            return target, resp, redirects
    finally:
        watchdog.close()


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
    deadline = _Deadline(limits.timeout_s)
    reader = partial(_read_media, limits=limits)
    target, resp, redirects = _fetch_following(url, limits, resolver, user_agent, MEDIA.accept, reader, deadline)
    body = resp.body
    mime = body.mime or _refuse_unknown(body.data[:_SNIFF_BYTES])
    data, source_size = body.data, None
    if mime in IMAGE_TYPES:
        try:
            probe_dimensions(data, limits.max_pixels)
        except DecodeError as exc:
            code = "too-many-pixels" if exc.code == "too-many-pixels" else "undecodable-header"
            raise FetchRefused(f"refused: {exc.reason}", code) from exc
    if not body.complete:
        ranges = _Ranges(target.url, limits, resolver, user_agent, deadline, body, resp.etag)
        data, source_size = _video_start(mime, body.data, ranges, limits)
    return Fetched(
        url=url, final_url=target.url, data=data, mime=mime, etag=resp.etag, redirects=tuple(redirects),
        source_size=source_size,
    )


# --------------------------------------------------------------------------- videos over the cap

def _size_words(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB" if n >= 1 << 20 else f"{n:,} bytes"


def _no_partial_reads(limits: FetchLimits) -> FetchRefused:
    return FetchRefused(f"refused: the video is larger than {_size_words(limits.video_cap)} and the server "
                        "does not allow partial reads", "too-large")


def _bad_range(what: str) -> FetchRefused:
    return FetchRefused(f"refused: the server's answer to a range request {what}", "bad-range")


class _Ranges:
    """Range requests for one file: each one a whole guarded fetch (addresses, redirects, the
    first request's deadline), each answer held to the range asked for and the size already known."""

    def __init__(self, url: str, limits: FetchLimits, resolver: Resolver, user_agent: str, deadline: _Deadline,
                 first: _Body, etag: str | None) -> None:
        self.url, self.limits, self.resolver, self.user_agent = url, limits, resolver, user_agent
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
        _, resp, _ = _fetch_following(self.url, self.limits, self.resolver, self.user_agent, MEDIA.accept, reader,
                                      self.deadline, headers)
        self.total = resp.body.total
        return resp.body.data


def _read_range(resp: Any, deadline: _Deadline, watchdog: _Watchdog, *, start: int, end: int,
                total: int | None, limits: FetchLimits) -> _Body:
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
    declared = _content_length(resp.headers.get("Content-Length"))
    if declared is not None and declared != length:
        raise _bad_range(f"declares {declared:,} bytes for a {length:,} byte range")
    buf = bytearray()
    _read_into(resp, buf, length + 1, deadline, watchdog)
    if len(buf) != length:
        raise _bad_range(f"holds {len(buf):,} bytes for a {length:,} byte range")
    return _Body(bytes(buf), complete=False, total=size)


def _video_start(mime: str, prefix: bytes, ranges: _Ranges, limits: FetchLimits) -> tuple[bytes, int]:
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


# --------------------------------------------------------------------------- documents

def _check_pem(head: bytes) -> str:
    # Published lists put "Subject ..." lines before each block, so plain text is accepted here
    # and the caller parses the certificates; markup, JSON and binary are not.
    text = head.lstrip()
    plain = bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if b"-----BEGIN CERTIFICATE-----" not in head and not (plain and not text.startswith((b"<", b"{", b"["))):
        raise FetchRefused(f"refused: expected PEM certificates, got {describe_unknown(head)}", "not-document")
    return "application/x-pem-file"


def _check_c2pa(head: bytes) -> str:
    # A manifest store is one JUMBF superbox: 4-byte size, then the box type.
    if head[4:8] != b"jumb":
        raise FetchRefused(f"refused: expected a C2PA manifest store, got {describe_unknown(head)}", "not-document")
    return "application/c2pa"


PEM = Want("application/x-pem-file, text/plain;q=0.5", _check_pem)
C2PA_MANIFEST = Want("application/c2pa", _check_c2pa)


def fetch_document(
    url: str,
    limits: FetchLimits,
    want: Want,
    resolver: Resolver = system_resolver,
    user_agent: str = "Credence/0.1 (+trust lists and manifests)",
) -> Fetched:
    """Fetch a non-media document (``PEM``, ``C2PA_MANIFEST``) with the same guard, caps and deadline."""
    reader = partial(_read_body, limits=limits, want=want)
    target, resp, redirects = _fetch_following(url, limits, resolver, user_agent, want.accept, reader,
                                               _Deadline(limits.timeout_s))
    data = resp.body.data
    mime = want.check(data[:_SNIFF_BYTES])
    return Fetched(
        url=url, final_url=target.url, data=data, mime=mime, etag=resp.etag, redirects=tuple(redirects),
    )
