"""The guarded fetcher against hostile URLs, redirects and bodies, using real local servers.

Two servers run for the whole module: one on 127.0.0.1 (exempted per test through
``allow_networks`` when a test needs to reach it) and one on 127.0.0.2 that must never be
reached. Every socket connect in the process is also recorded, and anything that is not one
of these two servers is refused before it leaves the machine.
"""
from __future__ import annotations

import gzip
import io
import ipaddress
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Callable
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from PIL import Image

from worker.fetch.common import FetchLimits, FetchRefused, Fetched
from worker.fetch.deadline import Deadline, Watchdog
from worker.fetch.media import fetch
from worker.fetch.policy import check_address, system_resolver
from worker.fetch.transport import Guard, guarded_new_conn

pytestmark = pytest.mark.timeout(30)

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)
MAX_PIXELS = 50_000_000


# --------------------------------------------------------------------------- media

def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 90)).save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header that claims a huge canvas (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


PNG = _image_bytes("PNG")
JPEG = _image_bytes("JPEG")
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64


# --------------------------------------------------------------------------- servers

def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    sent = {k.lower() for k in (headers or {})}
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    if "content-length" not in sent and "transfer-encoding" not in sent:
        h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(body)


def _drip(h: BaseHTTPRequestHandler, data: bytes, every: float = 0.2) -> None:
    try:
        for i in range(len(data)):
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()
            time.sleep(every)
    except OSError:
        pass  # the fetcher hung up, as it should


def _route_redirect(h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
    code = int(query.get("code", ["302"])[0])
    _send(h, code, headers={"Location": query["to"][0]})


def _route_hop(h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
    n = int(query["n"][0])
    if n <= 0:
        _send(h, 200, PNG, {"Content-Type": "image/png", "ETag": '"hop-end"'})
    else:
        _send(h, 301 if n % 2 else 307, headers={"Location": f"/hop?n={n - 1}"})


def _route_big_chunked(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        for _ in range(50):
            piece = PNG[:8] + b"\x00" * 992
            h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")
    except OSError:
        pass


def _route_big_close(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    # No Content-Length, no chunking: the body runs until the server closes.
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        h.wfile.write(PNG[:8] + b"\x00" * 50_000)
    except OSError:
        pass


def _route_big_declared(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "10000000")
    h.send_header("Connection", "close")
    h.end_headers()
    try:
        h.wfile.write(PNG[:8] + b"\x00" * 1000)
    except OSError:
        pass


def _route_drip_body(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    body = PNG[:8] + b"\x00" * 40
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    _drip(h, body)


def _route_drip_headers(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    _drip(h, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60 + b"\r\n\r\n")


def _route_gzip_png(h: BaseHTTPRequestHandler, _q: dict[str, list[str]]) -> None:
    _send(h, 200, gzip.compress(PNG), {"Content-Type": "image/png", "Content-Encoding": "gzip"})


ROUTES: dict[str, Callable[[BaseHTTPRequestHandler, dict[str, list[str]]], None]] = {
    "/png": lambda h, q: _send(h, 200, PNG, {"Content-Type": "text/plain", "ETag": '"png-1"'}),
    "/jpeg": lambda h, q: _send(h, 200, JPEG, {"Content-Type": "text/plain", "ETag": 'W/"jpeg-7"'}),
    "/mp4": lambda h, q: _send(h, 200, MP4, {"Content-Type": "application/octet-stream"}),
    "/html": lambda h, q: _send(h, 200, b"<!DOCTYPE html><html><body>hi</body></html>", {"Content-Type": "image/png"}),
    "/json": lambda h, q: _send(h, 200, b'{"image": "no"}', {"Content-Type": "image/jpeg"}),
    "/empty": lambda h, q: _send(h, 200, b"", {"Content-Type": "image/png"}),
    "/bomb": lambda h, q: _send(h, 200, _png_declaring(20000, 20000), {"Content-Type": "image/png"}),
    "/big-canvas": lambda h, q: _send(h, 200, _png_declaring(8000, 8000), {"Content-Type": "image/png"}),
    "/broken-png": lambda h, q: _send(h, 200, b"\x89PNG\r\n\x1a\n" + b"\xde\xad" * 40, {"Content-Type": "image/png"}),
    "/not-found": lambda h, q: _send(h, 404, b"nope"),
    "/error": lambda h, q: _send(h, 500, b"boom"),
    "/no-location": lambda h, q: _send(h, 302),
    "/loop": lambda h, q: _send(h, 302, headers={"Location": "/loop"}),
    "/redirect": _route_redirect,
    "/hop": _route_hop,
    "/big-declared": _route_big_declared,
    "/big-chunked": _route_big_chunked,
    "/big-close": _route_big_close,
    "/drip-body": _route_drip_body,
    "/drip-headers": _route_drip_headers,
    "/gzip-png": _route_gzip_png,
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.close_connection = True
        parts = urlsplit(self.path)
        self.server.hits.append(SimpleNamespace(path=self.path, host=self.headers.get("Host"),  # type: ignore[attr-defined]
                                                headers=dict(self.headers)))
        route = ROUTES.get(parts.path)
        if route is None:
            _send(self, 404, b"unknown route")
        else:
            route(self, parse_qs(parts.query))

    def log_message(self, *args: object) -> None:
        pass


class LocalServer:
    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.httpd = ThreadingHTTPServer((host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.hits = []  # type: ignore[attr-defined]
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port: int = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list[SimpleNamespace]:
        return self.httpd.hits  # type: ignore[attr-defined]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def servers() -> SimpleNamespace:
    main, other = LocalServer("127.0.0.1"), LocalServer("127.0.0.2")
    yield SimpleNamespace(main=main, other=other)
    main.close()
    other.close()


@pytest.fixture
def srv(servers: SimpleNamespace, connects: list[tuple[str, int]]) -> SimpleNamespace:
    servers.main.hits.clear()
    servers.other.hits.clear()
    return servers


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connect the process makes; only the two local test servers are really reachable."""
    seen: list[tuple[str, int]] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        host, port = address[0], address[1]  # type: ignore[index]
        seen.append((host, port))
        if host not in ("127.0.0.1", "127.0.0.2"):
            raise ConnectionRefusedError(f"test guard: no connections to {host}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return seen


FAKE_DNS: dict[str, list[str]] = {
    "evil.test": ["10.0.0.5"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "v6private.test": ["fd00::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "scoped.test": ["fe80::1%lo"],
    "nat64.test": ["64:ff9b::7f00:1"],
    "local.test": ["127.0.0.1"],
    "xn--bcher-kva.test": ["127.0.0.1"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    if host in FAKE_DNS:
        return list(FAKE_DNS[host])
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def limits(allow: bool = False, **overrides: object) -> FetchLimits:
    values: dict[str, object] = {
        "max_bytes": 4096, "timeout_s": 5.0, "max_redirects": 3, "max_pixels": MAX_PIXELS,
        "allow_networks": LOOPBACK_ONLY if allow else (),
    }
    values.update(overrides)
    return FetchLimits(**values)  # type: ignore[arg-type]


def refused(url: str, lim: FetchLimits, resolver: Callable[[str, int], list[str]] = fake_resolver) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        fetch(url, lim, resolver=resolver)
    exc = info.value
    assert exc.reason and exc.code and str(exc) == exc.reason
    return exc


# --------------------------------------------------------------------------- hostile URLs, fetched directly

# (id, url with {P} = port of the 127.0.0.1 server, expected code, allow 127.0.0.1/32?, resolver)
# With allow=True the URL would reach the live server if the check under test were missing.
DIRECT: list[tuple[str, str, str, bool, str]] = [
    ("decimal", "http://2130706433:{P}/png", "blocked-address", False, "fake"),
    ("octal", "http://0177.0.0.1:{P}/png", "blocked-address", False, "fake"),
    ("hex-dotted", "http://0x7f.0.0.1:{P}/png", "blocked-address", False, "fake"),
    ("hex-whole", "http://0x7F000001:{P}/png", "blocked-address", False, "fake"),
    ("short", "http://127.1:{P}/png", "blocked-address", False, "fake"),
    ("short-octal-hex", "http://0177.0x1:{P}/png", "blocked-address", False, "fake"),
    ("loopback", "http://127.0.0.1:{P}/png", "blocked-address", False, "fake"),
    ("loopback-trailing-dot", "http://127.0.0.1.:{P}/png", "blocked-address", False, "fake"),
    ("fullwidth-digits", "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{P}/png", "blocked-address", False, "fake"),
    ("ideographic-dots", "http://127\u30020\u30020\u30021:{P}/png", "blocked-address", False, "fake"),
    ("zero", "http://0.0.0.0:{P}/png", "blocked-address", False, "fake"),
    ("zero-short", "http://0:{P}/png", "blocked-address", False, "fake"),
    ("ten", "http://10.0.0.1/png", "blocked-address", False, "fake"),
    ("172-16", "http://172.16.0.1/png", "blocked-address", False, "fake"),
    ("172-31", "http://172.31.255.254/png", "blocked-address", False, "fake"),
    ("192-168", "http://192.168.1.1/png", "blocked-address", False, "fake"),
    ("cgnat", "http://100.64.0.1/png", "blocked-address", False, "fake"),
    ("metadata", "http://169.254.169.254/latest/meta-data/", "blocked-address", False, "fake"),
    ("multicast", "http://224.0.0.1/png", "blocked-address", False, "fake"),
    ("broadcast", "http://255.255.255.255/png", "blocked-address", False, "fake"),
    ("reserved-240", "http://240.0.0.1/png", "blocked-address", False, "fake"),
    ("benchmarking", "http://198.18.0.1/png", "blocked-address", False, "fake"),
    ("documentation", "http://192.0.2.1/png", "blocked-address", False, "fake"),
    ("v6-loopback", "http://[::1]:{P}/png", "blocked-address", False, "fake"),
    ("v6-unspecified", "http://[::]:{P}/png", "blocked-address", False, "fake"),
    ("v6-link-local", "http://[fe80::1]/png", "blocked-address", False, "fake"),
    ("v6-zone-id", "http://[fe80::1%25eth0]/png", "bad-url", False, "fake"),
    ("v6-unique-local", "http://[fc00::1]/png", "blocked-address", False, "fake"),
    ("v6-unique-local-fd", "http://[fd12:3456::1]/png", "blocked-address", False, "fake"),
    ("v6-site-local", "http://[fec0::1]/png", "blocked-address", False, "fake"),
    ("v6-multicast", "http://[ff02::1]/png", "blocked-address", False, "fake"),
    ("v4-mapped-loopback", "http://[::ffff:127.0.0.1]:{P}/png", "blocked-address", False, "fake"),
    ("v4-mapped-private", "http://[::ffff:10.0.0.1]/png", "blocked-address", False, "fake"),
    ("v4-mapped-long", "http://[0:0:0:0:0:ffff:7f00:1]:{P}/png", "blocked-address", False, "fake"),
    ("v4-compatible", "http://[::127.0.0.1]:{P}/png", "blocked-address", False, "fake"),
    ("v4-translated", "http://[::ffff:0:7f00:1]:{P}/png", "blocked-address", False, "fake"),
    ("nat64", "http://[64:ff9b::a00:1]/png", "blocked-address", False, "fake"),
    ("nat64-public", "http://[64:ff9b::808:808]/png", "blocked-address", False, "fake"),
    ("6to4", "http://[2002:7f00:1::1]/png", "blocked-address", False, "fake"),
    ("teredo", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/png", "blocked-address", False, "fake"),
    ("dns-private", "http://evil.test:{P}/png", "blocked-address", False, "fake"),
    ("dns-mixed", "http://mixed.test:{P}/png", "blocked-address", False, "fake"),
    ("dns-metadata", "http://meta.test/png", "blocked-address", False, "fake"),
    ("dns-v6-private", "http://v6private.test/png", "blocked-address", False, "fake"),
    ("dns-v4-mapped", "http://mapped.test:{P}/png", "blocked-address", False, "fake"),
    ("dns-scoped", "http://scoped.test/png", "blocked-address", False, "fake"),
    ("dns-nat64", "http://nat64.test/png", "blocked-address", False, "fake"),
    ("localhost", "http://localhost:{P}/png", "blocked-address", False, "system"),
    ("localhost-upper-dot", "http://LOCALHOST.:{P}/png", "blocked-address", False, "system"),
    ("localhost-fullwidth", "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{P}/png",
     "blocked-address", False, "system"),
    ("scheme-ftp", "ftp://127.0.0.1:{P}/png", "scheme", True, "fake"),
    ("scheme-file", "file:///etc/passwd", "scheme", True, "fake"),
    ("scheme-data", "data:image/png;base64,iVBORw0KGgo=", "scheme", True, "fake"),
    ("scheme-javascript", "javascript:alert(1)", "scheme", True, "fake"),
    ("scheme-gopher", "gopher://127.0.0.1:{P}/_GET%20/png", "scheme", True, "fake"),
    ("scheme-missing", "//127.0.0.1:{P}/png", "scheme", True, "fake"),
    ("credentials", "http://user:pass@127.0.0.1:{P}/png", "credentials", True, "fake"),
    ("credentials-user", "http://user@127.0.0.1:{P}/png", "credentials", True, "fake"),
    ("credentials-empty", "http://:@127.0.0.1:{P}/png", "credentials", True, "fake"),
    ("credentials-backslash", "http://example.com\\@127.0.0.1:{P}/png", "credentials", True, "fake"),
    ("empty", "", "bad-url", True, "fake"),
    ("blank", "   ", "bad-url", True, "fake"),
    ("oversized", "http://127.0.0.1:{P}/png?" + "a" * 4100, "bad-url", True, "fake"),
    ("port-too-big", "http://127.0.0.1:99999/png", "bad-url", True, "fake"),
    ("port-zero", "http://127.0.0.1:0/png", "bad-url", True, "fake"),
    ("port-signed", "http://127.0.0.1:+{P}/png", "bad-url", True, "fake"),
    ("port-letters", "http://127.0.0.1:8o/png", "bad-url", True, "fake"),
    ("no-host", "http:///png", "bad-url", True, "fake"),
    ("unclosed-bracket", "http://[::1/png", "bad-url", True, "fake"),
    ("five-parts", "http://1.2.3.4.5/png", "bad-url", True, "fake"),
    ("octet-overflow", "http://256.0.0.1/png", "bad-url", True, "fake"),
    ("bad-octal", "http://08.0.0.1/png", "bad-url", True, "fake"),
    ("space-in-host", "http://exa mple.com/png", "bad-url", True, "fake"),
    ("tab-in-host", "http://127.0.0.1\t:{P}/png", "bad-url", True, "fake"),
    ("empty-label", "http://a..b/png", "bad-url", True, "fake"),
    ("ipvfuture", "http://[v1.fe]/png", "bad-url", True, "fake"),
    ("v6-unbracketed", "http://::1/png", "bad-url", True, "fake"),
    ("unknown-name", "http://nowhere.test/png", "dns", True, "fake"),
]


@pytest.mark.parametrize(("url", "code", "allow", "resolver_name"),
                         [case[1:] for case in DIRECT], ids=[case[0] for case in DIRECT])
def test_hostile_url_is_refused_without_a_request(
    srv: SimpleNamespace, connects: list[tuple[str, int]], url: str, code: str, allow: bool, resolver_name: str
) -> None:
    resolver = system_resolver if resolver_name == "system" else fake_resolver
    exc = refused(url.replace("{P}", str(srv.main.port)), limits(allow=allow), resolver)
    assert exc.code == code, exc.reason
    assert srv.main.hits == [] and srv.other.hits == []
    assert connects == []


def test_refusal_names_the_host_the_address_and_the_kind(srv: SimpleNamespace) -> None:
    exc = refused("http://evil.test/x.jpg", limits())
    assert exc.reason == "refused: evil.test resolves to 10.0.0.5, a private address"
    exc = refused("http://169.254.169.254/", limits())
    assert "169.254.169.254" in exc.reason and "metadata" in exc.reason
    exc = refused("http://[2002:7f00:1::1]/", limits())
    assert "6to4" in exc.reason and "127.0.0.1" in exc.reason
    exc = refused("http://2130706433/", limits())
    assert exc.reason == "refused: 2130706433 means 127.0.0.1, a loopback address"


def test_numeric_hosts_never_reach_the_resolver(srv: SimpleNamespace) -> None:
    calls: list[tuple[str, int]] = []

    def liar(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["93.184.216.34"]

    for url in ("http://2130706433/", "http://0x7f.1/", "http://017700000001/", "http://[::1]/"):
        assert refused(url, limits(), liar).code == "blocked-address"
    assert calls == []


# --------------------------------------------------------------------------- hostile redirects

# (id, redirect target with {P}/{P2} = ports of the 127.0.0.1 / 127.0.0.2 servers, expected code)
REDIRECTS: list[tuple[str, str, str]] = [
    ("to-127.0.0.2", "http://127.0.0.2:{P2}/png", "blocked-address"),
    ("to-127.0.0.2-decimal", "http://2130706434:{P2}/png", "blocked-address"),
    ("to-127.0.0.2-mapped", "http://[::ffff:127.0.0.2]:{P2}/png", "blocked-address"),
    ("to-127.0.0.2-scheme-relative", "//127.0.0.2:{P2}/png", "blocked-address"),
    ("to-metadata", "http://169.254.169.254/latest/meta-data/", "blocked-address"),
    ("to-v6-loopback", "http://[::1]:{P}/png", "blocked-address"),
    ("to-private-name", "http://evil.test/png", "blocked-address"),
    ("to-10-net", "https://10.0.0.1/png", "blocked-address"),
    ("to-file", "file:///etc/passwd", "scheme"),
    ("to-gopher", "gopher://127.0.0.1:{P}/_png", "scheme"),
    ("to-ftp", "ftp://127.0.0.1:{P}/png", "scheme"),
    ("to-javascript", "javascript:alert(1)", "scheme"),
    ("to-credentials", "http://user:pw@127.0.0.1:{P}/png", "credentials"),
    ("to-zone-id", "http://[fe80::1%25lo]:{P}/png", "bad-url"),
    ("to-bad-port", "http://127.0.0.1:70000/png", "bad-url"),
]


@pytest.mark.parametrize("code_301_or_302", [302, 307])
@pytest.mark.parametrize(("target", "code"), [case[1:] for case in REDIRECTS], ids=[case[0] for case in REDIRECTS])
def test_hostile_redirect_target_is_never_contacted(
    srv: SimpleNamespace, connects: list[tuple[str, int]], target: str, code: str, code_301_or_302: int
) -> None:
    target = target.replace("{P2}", str(srv.other.port)).replace("{P}", str(srv.main.port))
    first = srv.main.url(f"/redirect?code={code_301_or_302}&to={quote(target, safe='')}")
    exc = refused(first, limits(allow=True))
    assert exc.code == code, exc.reason
    assert "redirect" in exc.reason
    assert len(srv.main.hits) == 1
    assert srv.other.hits == []
    assert connects == [("127.0.0.1", srv.main.port)]


def test_redirect_loop_stops_at_the_cap(srv: SimpleNamespace, connects: list[tuple[str, int]]) -> None:
    exc = refused(srv.main.url("/loop"), limits(allow=True, max_redirects=3))
    assert exc.code == "too-many-redirects"
    assert len(srv.main.hits) == 4  # the first request and three redirects followed


def test_redirect_chain_one_over_the_cap_is_refused(srv: SimpleNamespace) -> None:
    exc = refused(srv.main.url("/hop?n=3"), limits(allow=True, max_redirects=2))
    assert exc.code == "too-many-redirects"
    assert len(srv.main.hits) == 3


def test_zero_redirects_allowed_means_none_followed(srv: SimpleNamespace) -> None:
    assert refused(srv.main.url("/hop?n=1"), limits(allow=True, max_redirects=0)).code == "too-many-redirects"
    assert len(srv.main.hits) == 1


def test_redirect_without_location(srv: SimpleNamespace) -> None:
    assert refused(srv.main.url("/no-location"), limits(allow=True)).code == "http-status"


# --------------------------------------------------------------------------- hostile bodies

@pytest.mark.parametrize(("path", "code", "words"), [
    ("/html", "not-media", "HTML page"),
    ("/json", "not-media", "JSON data"),
    ("/empty", "not-media", "empty body"),
    ("/gzip-png", "not-media", "unknown type"),
    ("/bomb", "too-many-pixels", "too large"),
    ("/big-canvas", "too-many-pixels", "8000x8000"),
    ("/broken-png", "undecodable-header", "header"),
    ("/not-found", "http-status", "404"),
    ("/error", "http-status", "500"),
    ("/big-declared", "too-large", "10,000,000"),
    ("/big-chunked", "too-large", "4,096"),
    ("/big-close", "too-large", "4,096"),
])
def test_hostile_body_is_refused(srv: SimpleNamespace, path: str, code: str, words: str) -> None:
    exc = refused(srv.main.url(path), limits(allow=True))
    assert exc.code == code, exc.reason
    assert words in exc.reason
    assert len(srv.main.hits) == 1


def test_declared_oversize_is_refused_before_reading(srv: SimpleNamespace) -> None:
    started = time.monotonic()
    assert refused(srv.main.url("/big-declared"), limits(allow=True)).code == "too-large"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_slow_drip_hits_the_total_deadline(srv: SimpleNamespace, path: str) -> None:
    started = time.monotonic()
    exc = refused(srv.main.url(path), limits(allow=True, timeout_s=1.0))
    elapsed = time.monotonic() - started
    assert exc.code == "timeout", exc.reason
    assert 0.9 <= elapsed < 2.0


def test_deadline_covers_redirects_and_body_together(srv: SimpleNamespace) -> None:
    url = srv.main.url("/redirect?to=" + quote(srv.main.url("/drip-body"), safe=""))
    started = time.monotonic()
    assert refused(url, limits(allow=True, timeout_s=1.0)).code == "timeout"
    assert time.monotonic() - started < 2.0


def test_slow_dns_hits_the_deadline(srv: SimpleNamespace) -> None:
    def slow(host: str, port: int) -> list[str]:
        time.sleep(2.0)
        return ["127.0.0.1"]

    started = time.monotonic()
    assert refused("http://slow.test/png", limits(allow=True, timeout_s=0.3), slow).code == "timeout"
    assert time.monotonic() - started < 1.0


def test_dns_failures(srv: SimpleNamespace) -> None:
    assert refused("http://nowhere.test/", limits()).code == "dns"
    assert refused("http://empty.test/", limits(), lambda h, p: []).code == "dns"


def test_closed_port_is_a_connect_failure(srv: SimpleNamespace) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    assert refused(f"http://127.0.0.1:{port}/png", limits(allow=True)).code == "connect"


def test_connection_to_an_unchecked_peer_is_dropped(srv: SimpleNamespace) -> None:
    # Last line of defence: the socket must be connected to the address that was checked.
    sock = socket.create_connection(("127.0.0.1", srv.main.port))
    watchdog = Watchdog(Deadline(5.0))
    try:
        with pytest.raises(FetchRefused) as info:
            guarded_new_conn(SimpleNamespace(_credence_guard=Guard("127.0.0.2", watchdog)), sock)
        assert info.value.code == "blocked-address"
        assert sock.fileno() == -1
    finally:
        sock.close()
        watchdog.close()


# --------------------------------------------------------------------------- TLS

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A test CA and an HTTPS server whose certificate names only local.test."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make test certificates")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Credence Test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=local.test", cwd=d)
    (d / "leaf.ext").write_text("subjectAltName=DNS:local.test\nbasicConstraints=critical,CA:FALSE\n"
                                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                                "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(d / "leaf.pem", d / "leaf.key")
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    server = LocalServer("127.0.0.1", context)
    yield SimpleNamespace(server=server, ca=str(d / "ca.pem"), sni=sni)
    server.close()


@pytest.fixture
def trust_test_ca(tls: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr("worker.fetch.transport.certifi", SimpleNamespace(where=lambda: tls.ca))
    tls.server.hits.clear()
    tls.sni.clear()
    return tls


def test_https_connects_to_the_checked_address_with_sni_and_host(
    trust_test_ca: SimpleNamespace, connects: list[tuple[str, int]]
) -> None:
    port = trust_test_ca.server.port
    got = fetch(f"https://local.test:{port}/png", limits(allow=True), fake_resolver)
    assert got.mime == "image/png" and got.data == PNG
    assert trust_test_ca.sni == ["local.test"]
    assert trust_test_ca.server.hits[0].host == f"local.test:{port}"
    assert connects == [("127.0.0.1", port)]


@pytest.mark.parametrize("host", ["other.test", "127.0.0.1"])
def test_https_certificate_must_name_the_url_host(
    trust_test_ca: SimpleNamespace, connects: list[tuple[str, int]], host: str
) -> None:
    # The certificate is valid, and for local.test only; the address alone proves nothing.
    resolver = lambda h, p: ["127.0.0.1"]  # noqa: E731
    exc = refused(f"https://{host}:{trust_test_ca.server.port}/png", limits(allow=True), resolver)
    assert exc.code == "connect" and "TLS" in exc.reason
    assert trust_test_ca.server.hits == []


def test_https_untrusted_certificate_is_refused(tls: SimpleNamespace) -> None:
    tls.server.hits.clear()
    exc = refused(f"https://local.test:{tls.server.port}/png", limits(allow=True))  # certifi roots only
    assert exc.code == "connect" and "TLS" in exc.reason
    assert tls.server.hits == []


# --------------------------------------------------------------------------- what gets through

@pytest.mark.parametrize(("path", "mime", "data", "etag"), [
    ("/png", "image/png", PNG, '"png-1"'),
    ("/jpeg", "image/jpeg", JPEG, 'W/"jpeg-7"'),
    ("/mp4", "video/mp4", MP4, None),
])
def test_media_is_fetched_and_typed_from_its_bytes(
    srv: SimpleNamespace, path: str, mime: str, data: bytes, etag: str | None
) -> None:
    url = srv.main.url(path)
    got = fetch(url, limits(allow=True))
    assert isinstance(got, Fetched)
    assert (got.url, got.final_url, got.data, got.mime, got.etag, got.redirects) == (url, url, data, mime, etag, ())
    (hit,) = srv.main.hits
    assert hit.host == f"127.0.0.1:{srv.main.port}"
    assert hit.headers["Accept-Encoding"] == "identity"
    assert hit.headers["User-Agent"].startswith("Credence/")


def test_redirect_chain_within_the_cap_is_followed_and_recorded(srv: SimpleNamespace) -> None:
    start = srv.main.url("/hop?n=2")
    got = fetch(start, limits(allow=True, max_redirects=2))
    assert got.mime == "image/png" and got.data == PNG and got.etag == '"hop-end"'
    assert got.url == start
    assert got.redirects == (srv.main.url("/hop?n=1"), srv.main.url("/hop?n=0"))
    assert got.final_url == srv.main.url("/hop?n=0")
    assert [h.path for h in srv.main.hits] == ["/hop?n=2", "/hop?n=1", "/hop?n=0"]


def test_idn_host_is_encoded_resolved_once_and_sent_as_host(
    srv: SimpleNamespace, connects: list[tuple[str, int]]
) -> None:
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return fake_resolver(host, port)

    got = fetch(f"http://B\u00fccher.test:{srv.main.port}/png", limits(allow=True), resolver)
    assert got.mime == "image/png"
    assert got.final_url == f"http://xn--bcher-kva.test:{srv.main.port}/png"
    assert calls == [("xn--bcher-kva.test", srv.main.port)]
    assert srv.main.hits[0].host == f"xn--bcher-kva.test:{srv.main.port}"
    assert connects == [("127.0.0.1", srv.main.port)]


def test_rebinding_dns_is_asked_once(srv: SimpleNamespace, connects: list[tuple[str, int]]) -> None:
    answers = [["127.0.0.1"], ["10.0.0.5"], ["169.254.169.254"]]

    def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    got = fetch(f"http://rebind.test:{srv.main.port}/png", limits(allow=True), rebinding)
    assert got.data == PNG
    assert len(answers) == 2
    assert connects == [("127.0.0.1", srv.main.port)]


def test_path_and_query_are_sent_safely_encoded(srv: SimpleNamespace) -> None:
    refused(srv.main.url("/caf\u00e9 x?q=\u00e9"), limits(allow=True))  # unknown route -> 404
    assert srv.main.hits[0].path == "/caf%C3%A9%20x?q=%C3%A9"


def test_limits_from_settings() -> None:
    from server.config import Settings

    settings = Settings(fetch_max_bytes=1234, fetch_timeout_s=2.5, fetch_max_redirects=7, max_pixels=99,
                        fetch_allow_networks="127.0.0.1/32, ::1/128", video_max_bytes=5678, video_fetch_timeout_s=42)
    assert FetchLimits.from_settings(settings) == FetchLimits(
        max_bytes=1234, timeout_s=2.5, max_redirects=7, max_pixels=99,
        allow_networks=(ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
        video_max_bytes=5678, video_timeout_s=42,
    )
    assert FetchLimits.from_settings(Settings()).allow_networks == ()


# --------------------------------------------------------------------------- check_address

@pytest.mark.parametrize("ip", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8",
])
def test_public_addresses_pass(ip: str) -> None:
    check_address(ip)


@pytest.mark.parametrize("ip", [
    "0.0.0.0", "0.1.2.3", "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.0.1", "192.168.0.1",
    "100.64.0.1", "100.127.255.254", "169.254.169.254", "169.254.0.1", "192.0.0.8", "192.0.2.5", "198.51.100.7",
    "203.0.113.9", "198.18.0.1", "198.19.255.254", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "fe80::1", "febf::1", "fc00::1", "fd00::1", "fec0::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::7f00:1", "::ffff:0:a00:1",
    "64:ff9b::a00:1", "64:ff9b::808:808", "64:ff9b:1::1", "2002:7f00:1::1", "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1", "fe80::1%eth0", "not-an-ip", "",
])
def test_blocked_addresses_are_refused(ip: str) -> None:
    with pytest.raises(FetchRefused) as info:
        check_address(ip)
    assert info.value.code == "blocked-address"
    assert info.value.reason.startswith("refused: ")


def test_allow_networks_exempts_only_what_it_names() -> None:
    check_address("127.0.0.1", LOOPBACK_ONLY)
    check_address("::ffff:127.0.0.1", LOOPBACK_ONLY)
    with pytest.raises(FetchRefused):
        check_address("127.0.0.2", LOOPBACK_ONLY)
    with pytest.raises(FetchRefused):
        check_address("::1", LOOPBACK_ONLY)
