"""Test helpers: real images, a real local HTTP server, real worker processes."""
from __future__ import annotations

import importlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from PIL import Image
from waitress import wasyncore
from waitress.server import create_server

from server.cli import main as cli_main
from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"
# The workshop's trust lists (../shared/trust), which a clone alone does not have; CI does.
SHARED_TRUST = Path(os.environ.get("CREDENCE_TEST_TRUST_DIR") or ROOT.parent / "shared" / "trust")


def need_shared(path: Path, what: str, setting: str) -> Path:
    """``path`` from the workshop's shelf: outside CI a missing one skips and says how to get it; in CI it fails."""
    if not path.exists():
        message = f"{what} is missing ({path}): set {setting} to where you have it (CI has it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message, allow_module_level=True)
    return path


def need_module(name: str, how: str):
    """An optional test tool (e.g. Meta's vpdq): outside CI a missing one skips and says how to get it; in CI,
    which installs it, it fails."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"the {name} package is not installed: {how}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def training_data(*parts: str) -> Path:
    """A folder of the detectors' training data (CREDENCE_TRAINING_DATA_DIR)."""
    return need_shared(Settings().training_data_dir.joinpath(*parts), "the detectors' training data",
                       "CREDENCE_TRAINING_DATA_DIR")


def shared_trust() -> Path:
    """The C2PA trust lists the trust tests read instead of downloading them (CREDENCE_TEST_TRUST_DIR)."""
    return need_shared(SHARED_TRUST / "C2PA-TRUST-LIST.pem", "the C2PA trust list", "CREDENCE_TEST_TRUST_DIR").parent


def make_jpeg(width: int = 64, height: int = 48, seed: int = 0, quality: int = 90) -> bytes:
    img = Image.new("RGB", (width, height))
    img.putdata([((x * 7 + seed * 31) % 256, (y * 5 + seed * 17) % 256, (x * y + seed) % 256)
                 for y in range(height) for x in range(width)])
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_png(width: int = 32, height: int = 32, seed: int = 0) -> bytes:
    img = Image.new("RGB", (width, height), ((seed * 40) % 256, 100, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    """A WSGI app served by waitress on a thread of its own, as `credence serve` serves it. Stopped from inside its
    loop: closing its sockets from another thread while its poll() waited on them failed that poll (EBADF, an
    unhandled exception in the server's thread at teardown)."""

    def __init__(self, app: object, threads: int = 4) -> None:
        self.server = create_server(app, host="127.0.0.1", port=free_port(), threads=threads)
        self.effective_port = self.server.effective_port
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))  # the loop ends, map empty
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


# How a route answers a Range header (see MediaServer.add): the default ignores it, as before.
RANGE_MODES = ("none", "bytes", "ignore", "wrong-total", "wrong-start", "short")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` (or ``a-``) range clipped to the body, or None."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start, end = int(first), min(int(last) if last else size - 1, size - 1)
    return (start, end) if start <= end else None


class MediaServer:
    """A local HTTP server with routes path -> (body, content type, delay seconds); counts hits.

    Routes may answer Range requests (``ranges``), or misanswer them on purpose; every request's
    Range header and the body bytes sent per path are recorded for tests of partial fetching.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str, float]] = {}
        self.options: dict[str, dict[str, object]] = {}
        self.hits: Counter[str] = Counter()
        self.ranges_seen: list[tuple[str, str | None]] = []
        self.bytes_sent: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.hits[self.path] += 1
                    outer.ranges_seen.append((self.path, self.headers.get("Range")))
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, ctype, delay = route
                options = outer.options.get(self.path, {})
                mode = str(options.get("ranges", "none"))
                time.sleep(delay)
                wanted = parse_range(self.headers.get("Range"), len(body)) if mode != "none" else None
                if wanted is not None and options.get("range_location"):
                    self.send_response(302)  # range requests are sent elsewhere (a CDN, or an attack)
                    self.send_header("Location", str(options["range_location"]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if wanted is not None and mode != "ignore":
                    self._partial(body, ctype, wanted, mode)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                if options.get("length", True):
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.close_connection = True
                if mode != "none":
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                self._write(body)

            def _partial(self, body: bytes, ctype: str, wanted: tuple[int, int], mode: str) -> None:
                start, end = wanted
                shown_start = start + 1 if mode == "wrong-start" else start
                total = len(body) + 1000 if mode == "wrong-total" else len(body)
                part = body[start:end + 1]
                if mode == "short":
                    part = part[:len(part) // 2]
                self.send_response(206)
                self.send_header("Content-Type", ctype)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Range", f"bytes {shown_start}-{end}/{total}")
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                self._write(part)

            def _write(self, data: bytes) -> None:
                pause = float(outer.options.get(self.path, {}).get("chunk_delay", 0.0))
                try:
                    for i in range(0, len(data), 64 * 1024):  # counted as sent, so tests see what was read
                        if i and pause:
                            self.wfile.flush()
                            time.sleep(pause)
                        self.wfile.write(data[i:i + 64 * 1024])
                        with outer.lock:
                            outer.bytes_sent[self.path] += len(data[i:i + 64 * 1024])
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, ctype: str = "image/jpeg", delay: float = 0.0, *,
            ranges: str = "none", length: bool = True, range_location: str | None = None,
            chunk_delay: float = 0.0) -> str:
        """Serve ``body`` at ``path``. ``ranges``: one of RANGE_MODES (``bytes`` honours Range; ``ignore``
        advertises it and sends 200 anyway; the others misanswer). ``length=False``: no Content-Length.
        ``range_location``: Range requests get a 302 to this URL instead. ``chunk_delay``: a pause between
        64 KiB chunks of the body (a slow origin)."""
        assert ranges in RANGE_MODES, ranges
        self.routes[path] = (body, ctype, delay)
        self.options[path] = {"ranges": ranges, "length": length, "range_location": range_location,
                              "chunk_delay": chunk_delay}
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def total_hits(self) -> int:
        return sum(self.hits.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class WorkerProcess:
    """A real Celery worker (``credence worker``) in its own process group."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "fetch,cpu,gpu",
                 concurrency: int = 2, beat: bool = False) -> None:
        argv = [sys.executable, "-m", "server.cli", "worker", "-Q", queues, "-c", str(concurrency)]
        if beat:
            argv.append("--beat")
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole group: the host died, nothing gets to clean up."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill()
        self.log.close()


def wait_done(base_or_client, check_ids: list[str], timeout: float = 60) -> dict[str, dict]:
    """Poll the batch status endpoint until every check is done."""
    deadline = time.monotonic() + timeout
    results: dict[str, dict] = {}
    while time.monotonic() < deadline:
        path = f"/api/v1/checks?ids={','.join(check_ids)}"
        if isinstance(base_or_client, str):
            body = requests.get(base_or_client + path, timeout=10).json()
        else:
            body = base_or_client.get(path).get_json()
        results = {r["check_id"]: r for r in body["results"]}
        if all(r["status"] == "done" for r in results.values()):
            return results
        time.sleep(0.25)
    raise TimeoutError(f"checks not done: {[(k, v['status']) for k, v in results.items()]}")


def metric(url: str, name: str, at_least: float, timeout: float = 15, **labels: str) -> float:
    """A sample's value from a Prometheus endpoint, once it reaches ``at_least`` (counters are bumped just
    after a check completes, so a scrape may come a moment early)."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    value = 0.0
    while True:
        text = requests.get(url, timeout=10).text
        value = sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                    if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def check_in_process(svc, call, url: str) -> dict:
    """What a reader's extension sees (POST /checks), with the worker's jobs run in-process when pending."""
    from worker import jobs

    result = call("POST", "/api/v1/checks", json={"urls": [url]}).get_json()["results"][0]
    if result["status"] == "pending":
        sha = jobs.fetch_check(svc, result["check_id"])
        if len(sha) == 64:
            jobs.analyze_media(svc, sha, owner="test")
        result = call("GET", f"/api/v1/checks/{result['check_id']}").get_json()
    return result["verdict"]


ROLES = ("reader", "reporter", "reviewer", "admin")


def api_with_keys(settings) -> tuple:
    """A migrated app on ``settings`` with one API key per role: (services, call(method, path, role, ...))."""
    from server.app import create_app
    from server.auth import create_key
    from server.migrate import upgrade

    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    keys = {role: create_key(svc.db, role=role, name=role)[0] for role in ROLES}
    client = app.test_client()

    def call(method: str, path: str, role: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
        return client.open(path, method=method, headers=headers, **kwargs)

    return svc, call


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def credence(env: Mapping[str, str], *args: str) -> CliResult:
    """The `credence` CLI run in this process with ``env``'s CREDENCE_ settings only (the others unset).

    The same click commands as the installed entry point, without a second interpreter importing everything
    again (about 2 s a call). Commands whose point is their own process (serve, worker) still get one. A crash
    inside a command is raised here, with its traceback, rather than read as exit status 1."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CREDENCE_")}
    clean.update({k: v for k, v in env.items() if k.startswith("CREDENCE_")})
    result = CliRunner().invoke(cli_main, list(args), env=clean)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)
