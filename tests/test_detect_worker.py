"""Detection through real Celery workers: the gpu queue batches (celery-batches), `credence serve` end to end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from server import records
from server.migrate import upgrade
from server.services import Services
from tests.conftest import env_for, settings_from
from tests.helpers import ROOT, WorkerProcess, free_port, make_jpeg, wait_done
from tests.test_detect_stage import MODELS, jpeg_bytes, photo
from worker import jobs


def test_gpu_worker_gathers_pending_items_into_one_batch(data_dir: Path, redis_url: str, tmp_path: Path) -> None:
    env = env_for(data_dir, models_dir=str(MODELS), redis_url=redis_url, detect_batch_size="8",
                  detect_batch_wait_s="0.5")
    ctx = Services(settings_from(env))
    upgrade(ctx.settings.sqlalchemy_url)
    shas, checks = [], []
    for i in range(6):
        data = jpeg_bytes(photo(10 + i))
        sha = ctx.store.put(data)
        with ctx.db.session() as session:
            records.record_media(session, sha256=sha, mime="image/jpeg", size=len(data))
            checks.append(records.create_check(session, source="upload", sha256=sha).id)
        assert jobs.analyze_media(ctx, sha, owner=f"t{i}") == jobs.DETECTING  # six detect tasks wait on "gpu"
        shas.append(sha)
    worker = WorkerProcess(env, tmp_path / "gpu.log", queues="gpu", concurrency=1)
    try:
        worker.wait_ready(90)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with ctx.db.session() as session:
                rows = {sha: records.current_verdict(session, sha) for sha in shas}
            if all(rows.values()):
                break
            time.sleep(0.3)
        else:
            raise TimeoutError((tmp_path / "gpu.log").read_text()[-3000:])
    finally:
        worker.stop()
    sizes = set()
    for row in rows.values():
        [score] = [e for e in row.body["evidence"] if e["kind"] == "synthetic-score"]
        sizes.add(score["details"]["batch_size"])
    assert max(sizes) >= 4, sizes  # the six were prefetched together and ran as (nearly) one batch
    with ctx.db.session() as session:
        assert all(records.checks_by_id(session, checks)[c][0].status == "done" for c in checks)
    from server.cli import _celery_argv
    from server.config import get_settings

    argv = _celery_argv(["gpu"], 1, False)  # a gpu-only worker prefetches a whole batch; a mixed one does not
    assert argv[argv.index("--prefetch-multiplier") + 1] == str(get_settings().detect_batch_size)
    assert "--prefetch-multiplier" not in _celery_argv(["fetch", "cpu", "gpu"], 2, True)


def test_embedded_serve_runs_detection_on_its_gpu_queue(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = env_for(data_dir, port=str(port), models_dir=str(MODELS))
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while " ready." not in (tmp_path / "serve.log").read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.2)
        ids = []
        for body in (jpeg_bytes(photo(3)), make_jpeg(seed=9, width=300, height=200)):
            up = requests.post(f"{base}/api/v1/checks/upload", files={"file": ("x.jpg", body)}, data={"wait": "1"},
                               timeout=30).json()["results"][0]
            ids.append(up["check_id"])
        done = wait_done(base, ids, timeout=120)
        for i in ids:
            verdict = done[i]["verdict"]
            assert verdict["versions"]["detect"] == "ran", verdict
            assert [e["kind"] for e in verdict["evidence"] if e["stage"] == "detect"] == ["synthetic-score"]
            assert verdict["level"] in ("no-evidence", "likely-synthetic")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
