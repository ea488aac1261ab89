"""Support for the extension's end-to-end tests: a recording proxy in front of the real server,
the test page and its images, and a copy of the extension pointed at the proxy.

To add a level to the e2e (signed, tampered, banked fake...), add a ``Fixture`` with its bytes and
expected level to ``main_fixtures``; the page, the expectations and the probes follow from it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import http.client
import io
import json
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import requests
from PIL import Image

from tests.helpers import ROOT, MediaServer

EXTENSION = ROOT / "extension"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Record:
    """One request the extension (or a browser tab) sent to the server, or a phase marker."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    status: int | None = None  # the server's answer
    response: bytes = b""

    def text(self) -> str:
        """Everything that went over the wire, for leak checks."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}\n{head}\n\n{self.body.decode('utf-8', 'replace')}"


class RecordingProxy:
    """A reverse proxy on loopback that forwards to the real Credence server and records everything.

    The extension is configured with the proxy's URL as its server, so every byte it sends to
    "the server" is in ``records``. ``GET /__mark/<name>`` adds a phase marker (not forwarded).
    ``hold``: the server's answer to a request it accepts is kept back (marker ``held``) until
    ``GET /__release`` (marker ``released``), or ``HOLD_LIMIT_S`` at most: a run can show what the extension
    does while that one answer is out, with no timing assumed.
    """

    HOLD_LIMIT_S = 60.0

    def __init__(self, backend: str, hold: Callable[[Record], bool] | None = None) -> None:
        parts = urlsplit(backend)
        self.backend_host, self.backend_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.hold = hold
        self.released = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                if self.path.startswith("/__mark/") or self.path == "/__release":
                    release = self.path == "/__release"
                    outer._add(Record("MARK", "released" if release else self.path[len("/__mark/"):]))
                    if release:
                        outer.released.set()
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                record = Record(self.command, self.path, headers, body)
                outer._add(record)
                conn = http.client.HTTPConnection(outer.backend_host, outer.backend_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
                        self._stream(record, response)
                        return
                    payload = response.read()
                    record.status, record.response = response.status, payload
                    if outer.hold is not None and outer.hold(record):
                        outer._add(Record("MARK", "held"))
                        outer.released.wait(outer.HOLD_LIMIT_S)
                    self.send_response(response.status)
                    for key, value in response.getheaders():
                        if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser closed the tab (a report page) before the answer
                finally:
                    conn.close()

            def _stream(self, record: Record, response: http.client.HTTPResponse) -> None:
                """A server-sent-events stream goes on chunk by chunk as it arrives (buffered whole, no
                event would reach the extension before the stream ends); recorded as it goes."""
                record.status, record.response = response.status, b""
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := response.read1(65536):
                    with outer.lock:
                        record.response += chunk
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            do_GET = do_POST = do_OPTIONS = do_DELETE = do_PUT = do_HEAD = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)

    def api(self, method: str | None = None, prefix: str = "/api/") -> list[Record]:
        """Recorded API requests (no markers, no preflights unless asked for)."""
        with self.lock:
            return [r for r in self.records if r.path.startswith(prefix) and (method is None or r.method == method)]

    def between(self, start: str | None, end: str | None) -> list[Record]:
        """Records after marker ``start`` (or the beginning) and before marker ``end`` (or the end).

        A missing ``start`` marker is an error; a missing ``end`` marker means "up to now"."""
        with self.lock:
            records = list(self.records)
        names = [r.path if r.method == "MARK" else None for r in records]
        lo = names.index(start) + 1 if start else 0
        hi = names.index(end) if end is not None and end in names else len(records)  # no marker: to the end
        return [r for r in records[lo:hi] if r.method != "MARK"]

    def close(self) -> None:
        self.released.set()  # a held answer goes now
        self.httpd.shutdown()
        self.httpd.server_close()


def dark_jpeg(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A distinct plain JPEG: smooth dark blobs, every pixel far from every badge colour (pixel probes).

    Not a flat colour: flat images all share one perceptual hash, so one banked flat fake would make
    every flat image a near-duplicate "known fake".
    """
    rng = random.Random(index)
    small = Image.new("RGB", (8, 6))
    small.putdata([(rng.randint(10, 55), rng.randint(20, 60), rng.randint(60, 120)) for _ in range(48)])
    buf = io.BytesIO()
    small.resize(size, Image.BILINEAR).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def textured_jpeg(index: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """dark_jpeg's colours in finer blobs: enough texture for a usable PDQ (quality >= 50), so that a copy can be
    found by its perceptual hash (the manifest repository skips flat images)."""
    rng = random.Random(index)
    small = Image.new("RGB", (48, 36))
    small.putdata([(rng.randint(10, 55), rng.randint(20, 60), rng.randint(60, 120)) for _ in range(48 * 36)])
    buf = io.BytesIO()
    small.resize(size, Image.BILINEAR).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def stripped(data: bytes) -> bytes:
    """What a platform serves of an upload: the pixels re-encoded, no metadata (no Content Credentials)."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


BROKEN = b"<!doctype html><title>not an image</title><p>This is a web page, not a picture.</p>"


@dataclass
class Fixture:
    """One image of the test page: where it is served, what the server should say, where it sits."""

    id: str
    path: str
    body: bytes
    ctype: str
    expected: str  # a verdict level, or "none" for images the extension must skip
    section: str  # initial | dynamic | lazy | skipped
    markup: str | None = None  # custom HTML (srcset, picture); default a plain <img>
    extra: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # other routes it needs
    delay: float = 0.0  # seconds the image host takes to answer (browser and server alike)
    bank: bool = False  # confirm its SHA-256 in a fakes bank before the run


@dataclass
class Signing:
    """Two test CAs: one the server trusts (its root is a user anchor), one it does not."""

    trusted: object
    untrusted: object
    anchors: Path


def make_signing(folder: Path) -> Signing:
    from tests.c2pa_kit import make_ca

    trusted, untrusted = make_ca(), make_ca()
    anchors = folder / "e2e-trust-anchors.pem"
    anchors.write_bytes(trusted.root_pem)
    return Signing(trusted, untrusted, anchors)


def level_fixtures(prefix: str, signing: Signing, seed: int) -> list[Fixture]:
    """One image per level the pipeline can decide today: real C2PA signatures, a banked fake, a stripped copy
    of a signed photo (its credentials recovered from the repository)."""
    import c2pa

    from tests.c2pa_kit import sign

    newsroom = signing.trusted.leaf("Wire Camera 3", "Trusted Wire")
    stranger = signing.untrusted.leaf("Somebody's Camera", "Unknown Org")
    verified, _ = sign(textured_jpeg(seed + 50), newsroom)
    signed, _ = sign(dark_jpeg(seed + 51), stranger)
    generated, _ = sign(dark_jpeg(seed + 52), stranger,
                        {"title": "generated.jpg", "claim_generator_info": [{"name": "ImageGen", "version": "3"}]},
                        intent=(c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA))
    tampered = bytearray(sign(dark_jpeg(seed + 53), newsroom)[0])
    scan = tampered.rfind(b"\xff\xda") + 400  # a byte of the signed pixels, not a marker
    while tampered[scan] in (0x00, 0xFE, 0xFF) or tampered[scan - 1] == 0xFF:
        scan += 1
    tampered[scan] ^= 0x01
    return [
        Fixture("fake", f"/{prefix}/fake.jpg", dark_jpeg(seed + 54), "image/jpeg", "known-fake", "initial", bank=True),
        Fixture("tampered", f"/{prefix}/tampered.jpg", bytes(tampered), "image/jpeg", "tampered", "initial"),
        Fixture("ai", f"/{prefix}/ai.jpg", generated, "image/jpeg", "ai-declared", "initial"),
        Fixture("verified", f"/{prefix}/verified.jpg", verified, "image/jpeg", "verified", "initial"),
        Fixture("signed", f"/{prefix}/signed.jpg", signed, "image/jpeg", "signed-untrusted", "initial"),
        # The verified photo as a platform serves it, stripped of its credentials; added after the first
        # badges, when the original's (checked above) are in the manifest repository.
        Fixture("recovered", f"/{prefix}/recovered.jpg", stripped(verified), "image/jpeg", "recovered", "dynamic"),
    ]


def main_fixtures(prefix: str, signing: Signing | None = None) -> list[Fixture]:
    """The main page's images. ``prefix`` keeps each browser's URLs (and bytes) distinct."""
    seed = sum(map(ord, prefix)) * 7
    fx: list[Fixture] = level_fixtures(prefix, signing, seed) if signing else []
    for i in range(15):
        fx.append(Fixture(f"plain{i}", f"/{prefix}/plain{i}.jpg", dark_jpeg(seed + i), "image/jpeg",
                          "no-evidence", "initial"))
    # The same image twice on the page: one request, two badges.
    fx.append(Fixture("dup", f"/{prefix}/plain0.jpg", b"", "image/jpeg", "no-evidence", "initial"))
    fx.append(Fixture(
        "srcset", f"/{prefix}/srcset-1x.jpg", dark_jpeg(seed + 20), "image/jpeg", "no-evidence", "initial",
        markup=(f'<img id="srcset" src="/{prefix}/srcset-fallback.html" width="120" height="90" '
                f'srcset="/{prefix}/srcset-1x.jpg 1x, /{prefix}/srcset-2x.jpg 2x" alt="">'),
        extra={f"/{prefix}/srcset-2x.jpg": (dark_jpeg(seed + 21), "image/jpeg"),
               f"/{prefix}/srcset-fallback.html": (BROKEN, "text/html")}))
    fx.append(Fixture(
        "picture", f"/{prefix}/picture.jpg", dark_jpeg(seed + 22), "image/jpeg", "no-evidence", "initial",
        markup=(f'<picture><source srcset="/{prefix}/picture.jpg" type="image/jpeg">'
                f'<img id="picture" src="/{prefix}/picture-fallback.html" width="120" height="90" alt=""></picture>'),
        extra={f"/{prefix}/picture-fallback.html": (BROKEN, "text/html")}))
    fx.append(Fixture("broken", f"/{prefix}/broken.jpg", BROKEN, "text/html", "unavailable", "initial"))
    # Slower than the first answer's long-poll: its verdict comes through polling.
    fx.append(Fixture("slow", f"/{prefix}/slow.jpg", dark_jpeg(seed + 25), "image/jpeg", "no-evidence", "initial",
                      delay=2.5))
    fx.append(Fixture("tiny", f"/{prefix}/tiny.jpg", dark_jpeg(seed + 23, (8, 8)), "image/jpeg", "none", "skipped",
                      markup=f'<img id="tiny" src="/{prefix}/tiny.jpg" width="8" height="8" alt="">'))
    fx.append(Fixture("hidden", f"/{prefix}/hidden.jpg", dark_jpeg(seed + 24), "image/jpeg", "none", "skipped",
                      markup=(f'<img id="hidden" src="/{prefix}/hidden.jpg" width="120" height="90" alt="" '
                              'style="visibility:hidden">')))
    for i in range(4):
        fx.append(Fixture(f"dyn{i}", f"/{prefix}/dyn{i}.jpg", dark_jpeg(seed + 30 + i), "image/jpeg",
                          "no-evidence", "dynamic"))
    for i in range(4):
        fx.append(Fixture(f"lazy{i}", f"/{prefix}/lazy{i}.jpg", dark_jpeg(seed + 40 + i), "image/jpeg",
                          "no-evidence", "lazy",
                          markup=(f'<img id="lazy{i}" src="/{prefix}/lazy{i}.jpg" loading="lazy" '
                                  'width="120" height="90" alt="">')))
    return fx


PAGE_STYLE = """
body { margin: 0; padding: 12px 16px; background: #1f2933; color: #e0e6eb; font: 14px system-ui, sans-serif; }
h1 { font-size: 16px; margin: 0 0 8px; }
.grid img, .grid picture { display: inline-block; margin: 0 10px 10px 0; vertical-align: top; }
#spacer { height: 3200px; }
"""

PAGE_SCRIPT = """
window.addImages = () => {
  const box = document.getElementById('dynamic');
  for (const [id, src] of DYNAMIC) {
    const img = document.createElement('img');
    img.id = id; img.src = src; img.width = 120; img.height = 90; img.alt = '';
    box.append(img);
  }
};
// A hostile page: everything a page script can do to badges through the DOM it can reach.
window.attackBadges = () => {
  const known = new Set(['HEAD', 'BODY']);
  const hosts = [...document.documentElement.children].filter((el) => !known.has(el.tagName));
  const report = { hosts: hosts.map((h) => h.localName), shadowRoots: hosts.map((h) => h.shadowRoot === null ? null : 'visible') };
  report.attachShadowBlocked = hosts.every((h) => { try { h.attachShadow({ mode: 'open' }); return false; } catch { return true; } });
  report.buttonsReachable = document.querySelectorAll('button, [role=tooltip]').length;
  for (const h of hosts) {
    h.style.setProperty('display', 'none', 'important');
    h.style.setProperty('opacity', '0', 'important');
    h.setAttribute('hidden', '');
    h.className = 'gone';
  }
  const style = document.createElement('style');
  style.id = 'attack';
  style.textContent = hosts.map((h) => h.localName).join(',') + ' { display: none !important; visibility: hidden !important; opacity: 0 !important; }'
    + ' html > :last-child { transform: translateX(-99999px) !important; }'
    + ' button, .badge, .wrap { display: none !important; } * { --fill: #000 !important; }';
  document.head.append(style);
  hosts.forEach((h) => h.animate([{ opacity: 0 }], { duration: 100000, fill: 'forwards' }));
  hosts.forEach((h) => h.remove());
  report.removed = hosts.length;
  return report;
};
window.endAttack = () => document.getElementById('attack').remove();  // the page's own layout back
window.inspectBadges = () => {
  const known = new Set(['HEAD', 'BODY']);
  const hosts = [...document.documentElement.children].filter((el) => !known.has(el.tagName));
  return { hosts: hosts.map((h) => h.localName), shadowRoots: hosts.map((h) => h.shadowRoot === null ? null : 'visible'),
           attributes: hosts.map((h) => h.getAttributeNames()),
           order: [...document.documentElement.children].map((el) => el.localName),
           bodyTransform: getComputedStyle(document.body).transform,
           hostTransform: hosts.map((h) => getComputedStyle(h).transform) };
};
"""


def build_main_page(media: MediaServer, prefix: str, fixtures: list[Fixture]) -> str:
    """Serve the fixtures and their page; returns the page URL."""
    for f in fixtures:
        if f.body:
            media.add(f.path, f.body, f.ctype, delay=f.delay)
        for path, (body, ctype) in f.extra.items():
            media.add(path, body, ctype)

    def tag(f: Fixture) -> str:
        return f.markup or f'<img id="{f.id}" src="{f.path}" width="120" height="90" alt="">'

    sections = {s: "".join(tag(f) for f in fixtures if f.section == s) for s in ("initial", "skipped", "lazy")}
    dynamic = json.dumps([[f.id, f.path] for f in fixtures if f.section == "dynamic"])
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence test page</title>
<style>{PAGE_STYLE}</style><script>const DYNAMIC = {dynamic};{PAGE_SCRIPT}</script></head><body>
<h1>Credence extension test page ({html.escape(prefix)})</h1>
<div class="grid">{sections['initial']}{sections['skipped']}</div>
<div class="grid" id="dynamic"></div>
<div id="spacer"></div>
<div class="grid" id="lazy">{sections['lazy']}</div>
</body></html>"""
    return media.add(f"/{prefix}/index.html", page.encode(), "text/html; charset=utf-8")


def build_privacy_page(media: MediaServer, prefix: str) -> tuple[str, dict[str, bytes], str]:
    """A page for privacy mode: a known image, an unknown one and a data: image.

    Returns (page URL, {id: bytes served by URL}, the data: image's bytes as base64).
    """
    seed = sum(map(ord, prefix)) * 11
    known, unknown, inline = dark_jpeg(seed), dark_jpeg(seed + 1), dark_jpeg(seed + 2, (160, 120))
    media.add(f"/{prefix}/known.jpg", known)
    media.add(f"/{prefix}/unknown.jpg", unknown)
    data = base64.b64encode(inline).decode()
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence privacy test</title>
<style>{PAGE_STYLE}</style></head><body><h1>Privacy mode ({html.escape(prefix)})</h1><div class="grid">
<img id="known" src="/{prefix}/known.jpg" width="120" height="90" alt="">
<img id="unknown" src="/{prefix}/unknown.jpg" width="120" height="90" alt="">
<img id="inline" src="data:image/jpeg;base64,{data}" width="120" height="90" alt="">
</div></body></html>"""
    url = media.add(f"/{prefix}/private-page.html", page.encode(), "text/html; charset=utf-8")
    return url, {"known": known, "unknown": unknown}, data


def build_uploads_page(media: MediaServer, prefix: str, count: int = 4) -> tuple[str, dict[str, bytes]]:
    """A page of ``count`` images the server has never seen, for privacy mode's uploads: (page URL, {id: bytes})."""
    seed = sum(map(ord, prefix)) * 13
    served = {f"u{i}": dark_jpeg(seed + i) for i in range(count)}
    tags = []
    for name, data in served.items():
        media.add(f"/{prefix}/{name}.jpg", data)
        tags.append(f'<img id="{name}" src="/{prefix}/{name}.jpg" width="120" height="90" alt="">')
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence uploads test</title>
<style>{PAGE_STYLE}</style></head><body><h1>Uploads ({html.escape(prefix)})</h1><div class="grid">
{"".join(tags)}
</div></body></html>"""
    return media.add(f"/{prefix}/uploads-page.html", page.encode(), "text/html; charset=utf-8"), served


def make_keys(env: dict[str, str], roles: tuple[str, ...]) -> dict[str, str]:
    """API keys for the running server, made in one process with the server's own settings."""
    code = ("import json, sys; from server.auth import create_key; from server.config import Settings; "
            "from server.db import Database; db = Database(Settings().sqlalchemy_url); "
            "print(json.dumps({r: create_key(db, role=r, name='e2e-' + r)[0] for r in sys.argv[1:]}))")
    out = subprocess.run([sys.executable, "-c", code, *roles], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


def bank_fakes(base: str, keys: dict[str, str], fixtures: list[Fixture]) -> None:
    """Confirm the SHA-256 of each ``bank`` fixture as a known fake: created, submitted, reviewed."""
    def call(method: str, path: str, role: str, **kwargs: object) -> requests.Response:
        return requests.request(method, base + path, headers={"Authorization": f"Bearer {keys[role]}"},
                                timeout=30, **kwargs)

    made = call("POST", "/api/v1/banks", "admin", json={"name": "e2e-fakes", "kind": "fake"})
    assert made.status_code in (201, 409), made.text
    for f in fixtures:
        if not f.bank:
            continue
        sha = hashlib.sha256(f.body).hexdigest()
        entry = call("POST", "/api/v1/banks/e2e-fakes/entries", "reporter",
                     json={"label": "Staged photo (e2e)", "sha256": sha})
        assert entry.status_code == 201, entry.text
        review = call("POST", f"/api/v1/entries/{entry.json()['id']}/review", "reviewer",
                      json={"action": "confirm", "note": "confirmed by the e2e"})
        assert review.status_code == 200, review.text


def prepare_extension(dest: Path, source: Path = EXTENSION / "src", **settings: object) -> Path:
    """A copy of ``source`` (extension/src) whose built-in defaults are ``settings`` (e.g. the proxy as server).

    The content script is built from the modules (extension/build.mjs), so it is built again for the
    copy: its bundle holds its own copy of the defaults. A copy from before the bundle is left as it is.
    """
    shutil.copytree(source, dest)
    original = (source / "lib" / "defaults.js").read_text()
    keys = re.findall(r"^\s+(\w+):", original, re.M)
    values = dict(re.findall(r"^\s+(\w+): (.+?),(?:\s*//.*)?$", original, re.M))
    defaults = {k: json.loads(values[k].replace("'", '"')) for k in keys}
    unknown = set(settings) - set(defaults)
    assert not unknown, f"not extension settings: {unknown}"
    defaults.update(settings)
    (dest / "lib" / "defaults.js").write_text(
        "// Written by tests/extension_support.py for one e2e run.\n"
        f"export const DEFAULTS = Object.freeze({json.dumps(defaults)});\n")
    subprocess.run([shutil.which("node") or "node", "build.mjs", str(dest)], cwd=EXTENSION, check=True, timeout=60)
    return dest


POSTER_LEVEL = "ai-declared"  # the video page's poster (build_video_page)


@dataclass
class VideoPage:
    """The video test page: its URL and the paths of what it serves (see build_video_page)."""

    url: str
    paths: dict[str, str]  # name -> path on the media server


VIDEO_SCRIPT = """
const P = %(prefix)s;
// A blob: video from an in-memory file, and one fed through MediaSource: both only exist in this page.
fetch(P + '/blob.webm').then((r) => r.blob()).then((b) => { document.getElementById('vblob').src = URL.createObjectURL(b); });
(() => {
  const v = document.getElementById('vmse');
  const ms = new MediaSource();
  ms.addEventListener('sourceopen', async () => {
    const buffer = ms.addSourceBuffer('video/webm; codecs="vp9"');
    buffer.addEventListener('updateend', () => { try { ms.endOfStream(); } catch {} }, { once: true });
    buffer.appendBuffer(await (await fetch(P + '/mse.webm')).arrayBuffer());
  }, { once: true });
  v.src = URL.createObjectURL(ms);
})();
window.addVideo = () => {
  const v = document.createElement('video');
  v.id = 'vdyn'; v.muted = true; v.width = 320; v.height = 180; v.src = P + '/dyn.webm';
  document.getElementById('more').append(v);
};
// The player switches to another file (as a quality switch or a playlist does): the new one is checked.
window.swapSource = () => { const v = document.getElementById('vsrc'); v.src = P + '/swap.mp4'; v.load(); };
window.playVideo = async () => {
  const v = document.getElementById('vsrc');
  v.loop = true;
  try { await v.play(); } catch (error) { return { error: String(error) }; }
  await new Promise((resolve) => setTimeout(resolve, 800));
  return { paused: v.paused, currentTime: v.currentTime, readyState: v.readyState, currentSrc: v.currentSrc };
};
// A player's own fullscreen button makes its box, not the bare <video>, the fullscreen element.
window.addEventListener('click', (event) => {
  if (event.target.id === 'full') {
    document.getElementById('player').requestFullscreen().catch((error) => { window.fullscreenError = String(error); });
  }
});
window.videoStates = () => Object.fromEntries([...document.querySelectorAll('video')].map((v) => [v.id, {
  currentSrc: v.currentSrc.slice(0, 200), readyState: v.readyState, error: v.error ? v.error.code : null }]));
"""


def build_video_page(media: MediaServer, prefix: str, signing: Signing) -> VideoPage:
    """A page of videos: <video src> with a poster, <video> with <source> children (the first of a
    type no browser plays), a blob: video, a MediaSource video; more are added and swapped by script.

    Real clips made with PyAV: H.264 in MP4 and VP9 in WebM (Debian's chromium and firefox-esr play both).
    The poster is an AI-declared image (C2PA, trained algorithmic media): its badge's level is not the
    video's (``POSTER_LEVEL``).
    """
    from tests.clips import make_clip

    seed = sum(map(ord, prefix)) * 13
    poster = next(f.body for f in level_fixtures(f"{prefix}-poster", signing, seed) if f.id == "ai")
    files = {
        "mp4": ("clip.mp4", make_clip(seed, seconds=3, fmt="mp4"), "video/mp4"),
        "webm": ("clip.webm", make_clip(seed + 1, seconds=2, fmt="webm"), "video/webm"),
        "poster": ("poster.jpg", poster, "image/jpeg"),
        "unplayable": ("nope.mkv", b"not a video at all", "video/x-matroska"),
        "blob": ("blob.webm", make_clip(seed + 3, seconds=2, fmt="webm"), "video/webm"),
        "mse": ("mse.webm", make_clip(seed + 4, seconds=2, fmt="webm"), "video/webm"),
        "dynamic": ("dyn.webm", make_clip(seed + 5, seconds=2, fmt="webm"), "video/webm"),
        "swap": ("swap.mp4", make_clip(seed + 6, seconds=2, fmt="mp4"), "video/mp4"),
    }
    paths = {}
    for name, (file, body, ctype) in files.items():
        paths[name] = f"/{prefix}/{file}"
        media.add(paths[name], body, ctype)
    p = paths
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence video test</title>
<style>{PAGE_STYLE} video {{ display: inline-block; margin: 0 10px 10px 0; vertical-align: top; background: #000; }}
#vspacer {{ height: 1200px; }}</style></head><body>
<h1>Videos ({html.escape(prefix)})</h1>
<p><button id="full" type="button">Full screen</button></p>
<div class="grid">
<div id="player" style="display: inline-block"><video id="vsrc" src="{p['mp4']}" poster="{p['poster']}" width="320" height="180" muted preload="metadata"></video></div>
<video id="vsources" width="320" height="180" muted preload="metadata"><source src="{p['unplayable']}" type="video/x-credence-unplayable"><source src="{p['webm']}" type="video/webm"></video>
<video id="vblob" width="320" height="180" muted></video>
<video id="vmse" width="320" height="180" muted></video>
</div>
<div class="grid" id="more"></div>
<div id="vspacer"></div>
<script>{VIDEO_SCRIPT % {"prefix": json.dumps(f"/{prefix}")}}</script>
</body></html>"""
    return VideoPage(media.add(f"/{prefix}/videos.html", page.encode(), "text/html; charset=utf-8"), paths)


@dataclass
class HardeningPages:
    """The pages of the hardening run (see build_hardening_pages): URLs and what each spot should show."""

    url: str  # shadow root, iframes, CSS background, slider, a badge the page covers
    hostile_url: str  # a page that removes every node it did not create
    expected: dict[str, str]  # spot id -> level once everything is checked
    hostile_expected: dict[str, str]
    image_urls: dict[str, str]  # spot id -> the image's URL


HARDENING_SCRIPT = """
// Rects (viewport px) of each probed spot; a frame's image fills the frame from its top-left corner.
window.spots = () => {
  const r = (el) => { const b = el.getBoundingClientRect(); return { left: b.left, top: b.top, width: b.width, height: b.height }; };
  const slider = document.getElementById('slider');
  const s1 = r(document.getElementById('slide1')), s2 = r(document.getElementById('slide2'));
  return {
    shadow: r(document.getElementById('shost').shadowRoot.getElementById('simg')),
    same: r(document.getElementById('fsame')), cross: r(document.getElementById('fcross')),
    bg: r(document.getElementById('bg')), cov: r(document.getElementById('cov')),
    slide1: s1, slide2: s2,
    // Where slide 1's badge would be once the slider moved it partly out: the container's left edge.
    slide1part: { ...s1, left: r(slider).left },
  };
};
// The slider moves by 70 px: slide 1 is partly out on the left, slide 2 partly in. (Slide 2 starts
// 5 px right of the slider's edge: nothing of it touches the viewport before, not even an edge.)
window.slide = () => { document.getElementById('slider').scrollLeft = 70; };
// A fake green badge over a real one, from the top layer (a popover), where z-index cannot win.
window.cover = () => {
  const b = document.getElementById('cov').getBoundingClientRect();
  const fake = document.createElement('div');
  fake.id = 'fake';
  fake.popover = 'manual';
  fake.setAttribute('style', `position: fixed; inset: auto; left: ${b.left + 4}px; top: ${b.top + 4}px; margin: 0;`
    + ' padding: 0; border: 0; width: 22px; height: 22px; background: #2e7d32; border-radius: 6px;');
  document.body.append(fake);
  fake.showPopover();
};
"""

HOSTILE_SCRIPT = """
// Removes every node it did not create from <html> and <body>, as the issue's hostile page did.
const mine = new Set([...document.documentElement.childNodes, ...document.body.childNodes]);
window.removals = 0;
new MutationObserver((records) => {
  for (const r of records) for (const node of r.addedNodes) {
    if (!mine.has(node) && node.parentNode) { node.remove(); window.removals += 1; }
  }
}).observe(document.documentElement, { childList: true });
new MutationObserver((records) => {
  for (const r of records) for (const node of r.addedNodes) {
    if (!mine.has(node) && node.parentNode) { node.remove(); window.removals += 1; }
  }
}).observe(document.body, { childList: true });
window.spots = () => Object.fromEntries([...document.images].map((img) => {
  const b = img.getBoundingClientRect();
  return [img.id, { left: b.left, top: b.top, width: b.width, height: b.height }];
}));
"""


def build_hardening_pages(media: MediaServer, other: MediaServer, prefix: str, signing: Signing) -> HardeningPages:
    """Images a reader sees that are not plain <img> of the document, and two hostile pages.

    ``other`` serves the cross-origin iframe (another port: another origin).
    """
    seed = sum(map(ord, prefix)) * 17
    levels = {f.id: f for f in level_fixtures(prefix, signing, seed)}
    files = {
        "shadow": (f"/{prefix}/shadow.jpg", levels["ai"].body, "ai-declared"),
        "bg": (f"/{prefix}/bg.jpg", levels["verified"].body, "verified"),
        "same": (f"/{prefix}/same.jpg", levels["signed"].body, "signed-untrusted"),
        "cross": (f"/{prefix}/cross.jpg", dark_jpeg(seed + 1, (200, 150)), "no-evidence"),
        "slide1": (f"/{prefix}/slide1.jpg", dark_jpeg(seed + 2), "no-evidence"),
        "slide2": (f"/{prefix}/slide2.jpg", dark_jpeg(seed + 3), "no-evidence"),
        "cov": (f"/{prefix}/cov.jpg", dark_jpeg(seed + 4), "no-evidence"),
    }
    urls = {}
    for spot, (path, body, _) in files.items():
        urls[spot] = (other if spot == "cross" else media).add(path, body, "image/jpeg")
    frame = '<!doctype html><body style="margin:0"><img src="{}" width="200" height="150" style="display:block" alt="">'
    media.add(f"/{prefix}/frame-same.html", frame.format(files["same"][0]).encode(), "text/html")
    cross_page = other.add(f"/{prefix}/frame-cross.html", frame.format(files["cross"][0]).encode(), "text/html")
    f = {spot: path for spot, (path, _, _) in files.items()}
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence hardening test</title>
<style>{PAGE_STYLE} iframe {{ border: 0; display: inline-block; margin: 0 10px 10px 0; vertical-align: top; }}
#slider {{ width: 125px; height: 90px; overflow: hidden; white-space: nowrap; display: inline-block; vertical-align: top;
  margin: 0 10px 10px 0; }}
#cov {{ display: block; margin-top: 10px; }}
#slider img {{ margin: 0 10px 0 0; vertical-align: top; }}</style>
<script>{HARDENING_SCRIPT}</script></head><body>
<h1>Hardening ({html.escape(prefix)})</h1>
<div class="grid">
<div id="shost" style="display: inline-block; vertical-align: top; margin: 0 10px 10px 0"></div>
<iframe id="fsame" src="/{prefix}/frame-same.html" width="200" height="150"></iframe>
<iframe id="fcross" src="{cross_page}" width="200" height="150"></iframe>
<div id="bg" style="display: inline-block; vertical-align: top; width: 160px; height: 120px; margin: 0 10px 10px 0;
  background: url({f['bg']}) center / cover"></div>
<div id="slider"><img id="slide1" src="{f['slide1']}" width="120" height="90" alt=""><img id="slide2" src="{f['slide2']}" width="120" height="90" alt=""></div>
<img id="cov" src="{f['cov']}" width="120" height="90" alt="">
</div>
<script>
document.getElementById('shost').attachShadow({{ mode: 'open' }}).innerHTML =
  '<img id="simg" src="{f['shadow']}" width="120" height="90" alt="" style="display: block">';
</script></body></html>"""
    url = media.add(f"/{prefix}/hardening.html", page.encode(), "text/html; charset=utf-8")

    hostile_files = {f"h{i}": (f"/{prefix}/hostile{i}.jpg", dark_jpeg(seed + 10 + i)) for i in range(3)}
    for path, body in hostile_files.values():
        media.add(path, body, "image/jpeg")
    imgs = "".join(f'<img id="{i}" src="{p}" width="120" height="90" alt="">' for i, (p, _) in hostile_files.items())
    hostile = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence hostile test</title>
<style>{PAGE_STYLE}</style></head><body><h1>Hostile ({html.escape(prefix)})</h1><div class="grid">{imgs}</div>
<script>{HOSTILE_SCRIPT}</script></body></html>"""
    hostile_url = media.add(f"/{prefix}/hostile.html", hostile.encode(), "text/html; charset=utf-8")
    for i, (path, _) in hostile_files.items():
        urls[i] = media.url(path)
    return HardeningPages(url, hostile_url, {spot: level for spot, (_, _, level) in files.items()},
                          {i: "no-evidence" for i in hostile_files}, urls)


@dataclass
class CloakSite:
    """A site that gives Credence's fetcher other bytes than a reader's browser (issue 18, cloaking)."""

    url: str  # the page: sets the reader's cookie, shows the four images
    expected: dict[str, str]  # image id -> the level of what the browser shows
    marked: list[str]  # ids whose badge must say "you see different bytes"
    seen: dict[str, bytes]  # image id -> the bytes a browser gets
    fetched: dict[str, bytes]  # image id -> the bytes Credence's fetcher gets
    server: ThreadingHTTPServer
    referers: list[str | None]  # the Referer of each request for referer.jpg, in order
    other: ThreadingHTTPServer  # another origin, serving ua.jpg to the page
    ua_referers: list[tuple[bool, str | None]]  # each request for ua.jpg: (from Credence's fetcher?, Referer)

    def close(self) -> None:
        for server in (self.server, self.other):
            server.shutdown()
            server.server_close()


def build_cloak_site(prefix: str, signing: Signing) -> CloakSite:
    """``ua.jpg``: an AI-declared image for browsers, a plain photo for a User-Agent saying Credence;
    ``cookie.jpg``: the AI image with the cookie the page sets, the photo without it; ``referer.jpg``: the AI
    image to a request whose Referer is the page (as the page's own load sends it), the photo to any other
    (Credence's fetcher sends none); ``plain.jpg``: the same bytes to everyone (no marker). The page sets its
    referrer policy only in a ``Referrer-Policy: same-origin`` response header (no meta), and loads ``ua.jpg``
    from another origin (another port): neither its load nor the extension's read of it may send a Referer."""
    seed = sum(map(ord, prefix)) * 23
    ai_ua = next(f.body for f in level_fixtures(f"{prefix}-ua", signing, seed) if f.id == "ai")
    ai_cookie = next(f.body for f in level_fixtures(f"{prefix}-ck", signing, seed + 100) if f.id == "ai")
    ai_referer = next(f.body for f in level_fixtures(f"{prefix}-rf", signing, seed + 200) if f.id == "ai")
    seen = {"ua": ai_ua, "cookie": ai_cookie, "referer": ai_referer, "plain": dark_jpeg(seed + 3)}
    fetched = {"ua": dark_jpeg(seed + 1), "cookie": dark_jpeg(seed + 2), "referer": dark_jpeg(seed + 4),
               "plain": seen["plain"]}
    referers: list[str | None] = []
    ua_referers: list[tuple[bool, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            if self.path == f"/{prefix}/page.html":
                body, ctype = page, "text/html; charset=utf-8"
                extra = {"Set-Cookie": "reader=yes; Path=/", "Referrer-Policy": "same-origin"}
            elif name.endswith(".jpg") and name[:-4] in seen:
                spot = name[:-4]
                fetcher = "Credence" in (self.headers.get("User-Agent") or "")
                reader = "reader=yes" in (self.headers.get("Cookie") or "")
                from_page = self.headers.get("Referer") == url  # same origin: the page's full address
                if spot == "referer":
                    referers.append(self.headers.get("Referer"))
                if spot == "ua":
                    ua_referers.append((fetcher, self.headers.get("Referer")))
                cloaked = {"ua": fetcher, "cookie": not reader, "referer": not from_page}.get(spot, False)
                body, ctype, extra = (fetched if cloaked else seen)[spot], "image/jpeg", {"Cache-Control": "no-store"}
            else:
                body, ctype, extra = b"", "text/plain", {}
                self.send_response(404)
            if body:
                self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    server, other = (ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2))
    for each in (server, other):
        threading.Thread(target=each.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{prefix}/page.html"
    origin_of = {"ua": f"http://127.0.0.1:{other.server_address[1]}"}
    imgs = "".join(f'<img id="{i}" src="{origin_of.get(i, "")}/{prefix}/{i}.jpg" width="160" height="120" alt="">'
                   for i in seen)
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Credence cloaking test</title>'
            f'<style>{PAGE_STYLE}</style></head><body><h1>Cloaking ({html.escape(prefix)})</h1>'
            f'<div class="grid">{imgs}</div>'
            # A turned image (issue 18): its badge belongs on its own top-left corner, here the box's top-right.
            f'<div style="margin: 40px 60px"><img id="rot" src="/{prefix}/plain.jpg" width="160" height="120" alt=""'
            f' style="transform: rotate(90deg)"></div>'
            # Turned 30° by its ancestors alone, 15° each: its badge too belongs on its own corner.
            f'<div style="margin: 70px 80px; width: 160px; transform: rotate(15deg)">'
            f'<div style="transform: rotate(15deg)"><img id="prot" src="/{prefix}/plain.jpg" width="160" height="120"'
            f' alt="" style="display: block"></div></div>'
            # Seen through perspective (a cover-flow slide): its box's corner lies off the image.
            f'<div style="position: absolute; left: 760px; top: 230px; width: 200px; perspective: 300px">'
            f'<img id="persp" src="/{prefix}/plain.jpg" width="200" height="150" alt=""'
            f' style="display: block; transform: rotateY(-45deg)"></div>'
            f'</body></html>').encode()
    return CloakSite(url, {"ua": "ai-declared", "cookie": "ai-declared", "referer": "ai-declared",
                           "plain": "no-evidence"}, ["ua", "cookie", "referer"], seen, fetched, server, referers,
                     other, ua_referers)
