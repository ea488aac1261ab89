"""The guarded request itself: a checked address, a verified connection to it, a capped read, and
redirects followed by hand so every hop goes through the same checks.

One deadline and one byte cap cover the whole fetch. What came back is judged by its bytes, never by
its headers; the readers that judge them (media, documents, ranges) are passed in.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable, NamedTuple
from urllib.parse import urljoin

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

from server.checks.urls import BadUrl, ParsedUrl, parse
from worker.fetch.common import FetchLimits, FetchRefused
from worker.fetch.deadline import Deadline, Watchdog
from worker.fetch.policy import Resolver, addresses

SNIFF_BYTES = 512
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_MAX_ETAG = 256


def fetch_target(url: str) -> ParsedUrl:
    """What the fetcher requests for ``url``: the API's normalised form (so the cache key names these
    bytes), refused with the fetcher's own words."""
    try:
        return parse(url)
    except BadUrl as exc:
        raise FetchRefused(f"refused: {exc.refusal}", exc.code) from exc


class Guard(NamedTuple):
    ip: str
    watchdog: Watchdog


def guarded_new_conn(conn: Any, sock: socket.socket) -> socket.socket:
    """The last line of defence: a socket connected anywhere but the checked address is closed unused."""
    guard: Guard = conn._credence_guard
    peer = sock.getpeername()[0]
    if ipaddress.ip_address(peer.split("%")[0]) != ipaddress.ip_address(guard.ip):
        sock.close()
        raise FetchRefused(f"refused: connected to {peer}, not the checked {guard.ip}", "blocked-address")
    guard.watchdog.arm(sock)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, credence_guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credence_guard = credence_guard

    def _new_conn(self) -> socket.socket:
        return guarded_new_conn(self, super()._new_conn())


class _GuardedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, credence_guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credence_guard = credence_guard

    def _new_conn(self) -> socket.socket:
        return guarded_new_conn(self, super()._new_conn())


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class Body(NamedTuple):
    """What a reader took from a 2xx answer. ``complete`` is False when only the start of the file
    was read (a video over its cap); ``total`` is the file's size when the server said it."""

    data: bytes
    mime: str | None = None
    complete: bool = True
    total: int | None = None
    accept_ranges: str | None = None


# Reads one 2xx answer: (urllib3 response, the fetch's deadline, its watchdog) -> what was read.
Reader = Callable[[Any, Deadline, Watchdog], Body]


class Response(NamedTuple):
    status: int
    reason: str
    location: str | None
    etag: str | None
    body: Body


def _host_header(target: ParsedUrl) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _one_request(
    target: ParsedUrl, ip: str, deadline: Deadline, watchdog: Watchdog, user_agent: str,
    accept: str, reader: Reader, extra_headers: dict[str, str],
) -> Response:
    remaining = deadline.remaining()
    timeout = Timeout(connect=remaining, read=remaining)
    guard = Guard(ip=ip, watchdog=watchdog)
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
                return Response(resp.status, resp.reason or "", resp.headers.get("Location"), None, Body(b""))
            body = reader(resp, deadline, watchdog)
            return Response(resp.status, resp.reason or "", None, _clean_etag(resp.headers.get("ETag")), body)
        finally:
            resp.close()  # also how a video's start is taken without its rest: hang up
    finally:
        pool.close()
        watchdog.drop_sockets()


def read_into(resp: Any, buf: bytearray, upto: int, deadline: Deadline, watchdog: Watchdog) -> bool:
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


def declared_too_large(declared: int, cap: int) -> FetchRefused:
    return FetchRefused(f"refused: the server declared {declared:,} bytes, over the {cap:,} byte limit", "too-large")


def body_too_large(cap: int) -> FetchRefused:
    return FetchRefused(f"refused: the body is larger than the {cap:,} byte limit", "too-large")


def content_length(value: str | None) -> int | None:
    """The declared length, or None when absent or ambiguous (a stranger's header is a claim, not a cap)."""
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


def _fetch_hop(
    target: ParsedUrl, limits: FetchLimits, resolver: Resolver, deadline: Deadline,
    watchdog: Watchdog, user_agent: str, accept: str, reader: Reader, extra_headers: dict[str, str],
) -> Response:
    failures: list[str] = []
    for ip in addresses(target, limits, resolver, deadline):
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


def fetch_following(
    url: str, limits: FetchLimits, resolver: Resolver, user_agent: str, accept: str, reader: Reader,
    deadline: Deadline, extra_headers: dict[str, str] | None = None,
) -> tuple[ParsedUrl, Response, list[str]]:
    """The guarded fetch itself, every hop checked; callers judge what came back.

    ``deadline`` is the whole fetch's, so a video's range requests share the first request's time.
    """
    watchdog = Watchdog(deadline)
    redirects: list[str] = []
    came_from: str | None = None
    try:
        target = fetch_target(url)
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
                    target = fetch_target(urljoin(came_from, resp.location.strip()))
                except FetchRefused as exc:
                    raise FetchRefused(f"{exc.reason} (redirected from {came_from})", exc.code) from exc
                redirects.append(target.url)
                continue
            if not 200 <= resp.status < 300:
                raise FetchRefused(f"the server answered HTTP {resp.status} {resp.reason}".rstrip(), "http-status")
            return target, resp, redirects
    finally:
        watchdog.close()
