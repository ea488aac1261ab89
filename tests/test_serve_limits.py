"""The HTTP servers under a bounded slowloris on loopback, and `credence serve`'s process tree.

Issue 15: 105 idle sockets took `credence serve` (waitress, default connection_limit 100) down, and a
SIGKILLed serve left its Celery worker and beat running. The attack here is bounded: a fixed number of
sockets, each sending a partial header a few bytes at a time, for a fixed time, then closed.
"""
from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from server.app import create_app
from server.migrate import upgrade
from tests.conftest import IN_CI, env_for, settings_from
from tests.helpers import ROOT, free_port

SOCKETS = 300
ATTACK_S = 20.0
DRIP_S = 2.0
HEALTH_TIMEOUT_S = 10.0


class Slowloris:
    """SOCKETS connections, each sending an unfinished request header a line at a time; stops by itself."""

    def __init__(self, port: int, sockets: int = SOCKETS, duration_s: float = ATTACK_S) -> None:
        self.port, self.count, self.duration_s = port, sockets, duration_s
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conns: list[socket.socket] = []
        try:
            for i in range(self.count):
                try:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                    sock.sendall(f"GET /healthz?{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
                    conns.append(sock)
                    self.opened += 1
                except OSError:
                    pass
            deadline = time.monotonic() + self.duration_s
            n = 0
            while time.monotonic() < deadline:
                time.sleep(DRIP_S)
                n += 1
                for sock in conns:
                    try:
                        sock.send(f"X-Slow-{n}: a\r\n".encode())
                    except OSError:
                        pass  # the server dropped it: that is what it should do with idle sockets
        finally:
            for sock in conns:
                sock.close()

    def __enter__(self) -> "Slowloris":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.thread.join(timeout=self.duration_s + 60)


def probe_during(base: str, attack: Slowloris) -> list[tuple[int | str, float]]:
    """/healthz once a second while the attack runs: (status or error, seconds taken)."""
    answers: list[tuple[int | str, float]] = []
    time.sleep(3)  # let the attack open its sockets first
    while attack.thread.is_alive():
        started = time.monotonic()
        try:
            status: int | str = requests.get(base + "/healthz", timeout=HEALTH_TIMEOUT_S).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        answers.append((status, time.monotonic() - started))
        time.sleep(1)
    return answers


def wait_listening(proc: subprocess.Popen, log: Path, base: str, marker: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        if marker in log.read_text(errors="replace"):
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.3)
    raise TimeoutError(log.read_text(errors="replace")[-3000:])


def assert_healthy_throughout(answers: list[tuple[int | str, float]], attack: Slowloris) -> None:
    assert attack.opened >= SOCKETS * 0.9, f"only {attack.opened} attack sockets opened"
    bad = [a for a in answers if a[0] != 200]
    assert not bad, f"/healthz failed during the attack: {bad} of {len(answers)}"
    assert len(answers) >= 5, answers  # answered promptly, so probed many times


def test_credence_serve_answers_health_under_slowloris(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(data_dir, port=str(port))
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--no-worker"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_listening(proc, log_path, base, "listening on")
            with Slowloris(port) as attack:
                answers = probe_during(base, attack)
            assert_healthy_throughout(answers, attack)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        message = "nginx is not installed (the production shape puts it in front of gunicorn); .ci/run installs it"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def nginx_conf_for(tmp_path: Path, listen_port: int, upstream_port: int) -> Path:
    """deploy/nginx.conf as shipped, with only its addresses and file paths moved into this test."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    temp = "\n".join(f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"  # ignored unless root
    for old, new in {"server api:8080 ": f"server 127.0.0.1:{upstream_port} ",
                     "listen 8080;": f"listen 127.0.0.1:{listen_port};",
                     "pid /tmp/nginx.pid;": f"pid {tmp_path / 'nginx.pid'};\n{user}",
                     "http {\n": f"http {{\n{temp}\n"}.items():
        assert text.count(old) == 1, f"deploy/nginx.conf changed shape: {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def compose_api_argv(port: int) -> list[str]:
    """docker-compose.yml's api command, bound to a loopback port."""
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]["command"]
    assert command[0] == "gunicorn" and command.count("0.0.0.0:8080") == 1, command
    return [sys.executable, "-m", *[f"127.0.0.1:{port}" if a == "0.0.0.0:8080" else a for a in command]]


@contextmanager
def production_shape(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """gunicorn as docker-compose.yml runs it, behind nginx with deploy/nginx.conf: nginx's URL and port."""
    nginx = nginx_binary()
    upgrade(settings_from(env).sqlalchemy_url)
    api_port, port = free_port(), free_port()
    (tmp_path / "metrics").mkdir()  # as tests/test_gunicorn_metrics.py: server.metrics writes there on import
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    conf = nginx_conf_for(tmp_path, port, api_port)
    api_log, nginx_log = tmp_path / "gunicorn.log", tmp_path / "nginx.log"
    procs: list[subprocess.Popen] = []
    try:
        with open(api_log, "wb") as log:
            procs.append(subprocess.Popen(compose_api_argv(api_port), env=env, cwd=ROOT, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        wait_listening(procs[0], api_log, f"http://127.0.0.1:{api_port}", "Booting worker")
        with open(nginx_log, "wb") as log:
            procs.append(subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr",
                                           "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        base = f"http://127.0.0.1:{port}"
        wait_listening(procs[1], nginx_log, base, "")
        yield base, port
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def test_gunicorn_production_shape_answers_health_under_slowloris(data_dir: Path, tmp_path: Path) -> None:
    """gunicorn's threads read headers themselves, so alone it goes down under a few dozen slow sockets; the
    production shape puts nginx in front (https://gunicorn.org/deploy) and must stay up under the attack."""
    with production_shape(env_for(data_dir, trusted_proxies="1"), tmp_path) as (base, port):
        with Slowloris(port) as attack:
            answers = probe_during(base, attack)
        assert_healthy_throughout(answers, attack)


def lookup_from(port: int, source: str, headers: dict[str, str] | None = None) -> int:
    """An anonymous POST /api/v1/lookup sent from a given loopback address: the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/api/v1/lookup", body=json.dumps({"sha256": ["0" * 64]}),
                     headers={"Content-Type": "application/json", **(headers or {})})
        return conn.getresponse().status
    finally:
        conn.close()


def test_behind_nginx_rate_limits_key_on_the_client_address(data_dir: Path, tmp_path: Path, redis_url: str) -> None:
    """Every request reaches gunicorn from nginx's address; the limit must still be per client, and a client's
    own X-Forwarded-For must not buy it a fresh one."""
    env = env_for(data_dir, trusted_proxies="1", redis_url=redis_url, rate_limit="3/minute")
    with production_shape(env, tmp_path) as (_, port):
        assert [lookup_from(port, "127.0.0.2") for _ in range(3)] == [200, 200, 200]
        assert lookup_from(port, "127.0.0.2") == 429
        assert lookup_from(port, "127.0.0.2", {"X-Forwarded-For": "203.0.113.7"}) == 429
        assert lookup_from(port, "127.0.0.3") == 200


def test_sigkill_of_serve_takes_its_worker_and_beat_down(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(data_dir, port=str(port), worker_concurrency="1")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_listening(proc, log_path, base, " ready.")
            children = psutil.Process(proc.pid).children(recursive=True)
            names = " ".join(" ".join(c.cmdline()) for c in children)
            assert "celery" in names and "--beat" in names, names
            proc.send_signal(signal.SIGKILL)  # serve alone, not its process group
            proc.wait(timeout=10)
            _, alive = psutil.wait_procs(children, timeout=60)
            assert not alive, f"orphans left: {[(p.pid, p.cmdline()) for p in alive if p.is_running()]}"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_keys_create_on_a_fresh_data_dir_migrates_the_embedded_database(data_dir: Path) -> None:
    env = env_for(data_dir)
    assert not (data_dir / "credence.db").exists()
    done = _cli(env, "keys", "create", "--role", "admin", "--name", "first")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert len(key) >= 20
    listed = _cli(env, "users", "list")
    assert "Traceback" not in listed.stderr, listed.stderr
    # The CLI lists and revokes keys through the API's service: the revoked key is refused by the API.
    (row,) = json.loads(_cli(env, "keys", "list").stdout)
    assert row["name"] == "first" and row["role"] == "admin" and row["revoked_at"] is None
    assert key.startswith(row["prefix"]) and "key_hash" not in row
    client = create_app(settings_from(env)).test_client()
    assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 200
    assert json.loads(_cli(env, "keys", "revoke", row["id"]).stdout)["revoked_at"]
    assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 401
    missing = _cli(env, "keys", "revoke", "no-such-id")
    assert missing.returncode != 0 and "no such key" in missing.stderr
    long_name = _cli(env, "keys", "create", "--role", "reader", "--name", "n" * 201)  # the API's schema refuses it too
    assert long_name.returncode != 0 and "Traceback" not in long_name.stderr and "200 characters" in long_name.stderr


def test_schema_commands_on_an_unmigrated_database_say_what_to_run(data_dir: Path, pg_url: str) -> None:
    env = env_for(data_dir, database_url=pg_url)
    for args in (("keys", "create", "--role", "admin"), ("banks", "list"), ("peers", "list")):
        done = _cli(env, *args)
        assert done.returncode != 0, (args, done.stdout)
        assert "Traceback" not in done.stderr, done.stderr
        assert "run `credence db upgrade`" in done.stderr, done.stderr
