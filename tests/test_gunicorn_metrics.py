"""The production API runs as several gunicorn processes: /metrics must show all their requests, whichever
process answers the scrape (docker-compose.yml's command and server/gunicorn_conf.py, as shipped)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import yaml

from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import ROOT, free_port, metric


def test_metrics_sum_every_gunicorn_process(data_dir: Path, tmp_path: Path) -> None:
    env = env_for(data_dir)
    upgrade(settings_from(env).sqlalchemy_url)
    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    argv = list(api["command"])
    port = free_port()
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index("--workers") + 1] = "3"
    argv[argv.index("--threads") + 1] = "1"  # one request at a time per process: concurrent ones spread out
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier run")  # wiped on start
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", *argv], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # Not /healthz: a probe that timed out on our side may still be served, and counted.
                requests.get(f"{base}/metrics", timeout=5)
                break
            except requests.RequestException:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        sent = 0
        deadline = time.monotonic() + 60
        while len(list(metrics_dir.glob("histogram_*.db"))) < 2:  # until a second process has answered
            assert time.monotonic() < deadline, "the requests were all served by one process"
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: requests.get(f"{base}/healthz", headers={"Connection": "close"},
                                                             timeout=10).status_code, range(40)))
            assert codes == [200] * 40
            sent += 40
        for _ in range(3):  # every scrape, whichever process answers it, counts every request
            assert metric(f"{base}/metrics", "credence_http_request_seconds_count", sent, timeout=0,
                          endpoint="/healthz", status="200") == sent
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_a_missing_metrics_folder_is_made_at_start(tmp_path: Path) -> None:
    """Compose points PROMETHEUS_MULTIPROC_DIR at a folder nothing creates: starting must make it, not crash."""
    folder = tmp_path / "not-yet" / "metrics"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    run = subprocess.run([sys.executable, "-c", "from server.gunicorn_conf import on_starting; on_starting(None)"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert folder.is_dir()
