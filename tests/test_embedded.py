"""The README's first command: `credence serve` on the embedded default, as a real process tree.

Nothing is configured beyond the data dir and port, as after `make run`: SQLite, the filesystem broker,
no Redis, and detection with the committed baseline (models/) on the bundled worker's gpu queue.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.clips import make_clip
from tests.conftest import env_for
from tests.helpers import ROOT, free_port, make_jpeg, make_png, metric, wait_done


@pytest.fixture
def embedded(data_dir: Path, tmp_path: Path):
    port = free_port()
    env = env_for(data_dir, port=str(port), stale_check_s="20")
    for name in ("DATABASE_URL", "REDIS_URL", "MODELS_DIR", "DETECT"):
        env.pop(f"CREDENCE_{name}", None)  # the defaults, as `make run` has them
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (tmp_path / "serve.log").read_text(errors="replace")
        if f"listening on {base}" in text and " ready." in text:
            break
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.2)
    else:
        raise TimeoutError((tmp_path / "serve.log").read_text()[-3000:])
    yield base, proc, tmp_path / "serve.log"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def assert_baseline_ran(verdict: dict) -> dict:
    """The final verdict carries the committed baseline's score with its band, consistent with the level."""
    [score] = [e for e in verdict["evidence"] if e["stage"] == "detect"]
    assert score["kind"] == "synthetic-score" and 0.0 <= score["score"] <= 1.0
    assert score["details"]["detector"] == "baseline"
    # `make run` never paints likely-synthetic with the committed baseline: it has no validation record.
    assert score["details"]["band"] == "experimental" and score["supports"] is None
    assert verdict["level"] != "likely-synthetic"
    versions = verdict["versions"]
    assert versions["detect"] == "ran" and versions["detector:baseline"].startswith("credence-baseline/")
    return score


def test_embedded_serve_checks_records_and_caches(embedded, data_dir: Path, media_server) -> None:
    base, proc, log = embedded
    urls = [media_server.add("/e1.jpg", make_jpeg(seed=5)), media_server.add("/e2.png", make_png(seed=3)),
            media_server.url("/gone.jpg")]
    first = requests.post(f"{base}/api/v1/checks", json={"urls": urls, "wait": 3}, timeout=30).json()["results"]
    ids = [r["check_id"] for r in first]
    done = wait_done(base, ids, timeout=90)
    # The committed baseline is experimental (no validation record): its scores never give a level.
    assert [done[i]["verdict"]["level"] for i in ids] == ["no-evidence", "no-evidence", "unavailable"]
    for i in ids[:2]:
        assert_baseline_ran(done[i]["verdict"])
    assert (data_dir / "credence.db").exists()
    again = requests.post(f"{base}/api/v1/checks", json={"urls": urls[:2]}, timeout=30).json()["results"]
    assert [(r["status"], r["check_id"]) for r in again] == [("done", None), ("done", None)]

    upload = requests.post(f"{base}/api/v1/checks/upload", files={"file": ("x.jpg", make_jpeg(seed=77))},
                           data={"wait": "5"}, timeout=30).json()["results"][0]
    result = wait_done(base, [upload["check_id"]], timeout=60)[upload["check_id"]]
    report = requests.get(f"{base}/api/v1/media/{result['verdict']['sha256']}", timeout=10).json()
    assert report["verdict"]["level"] == "no-evidence" and report["urls"] == []
    score = assert_baseline_ran(report["verdict"])
    assert "heatmap" not in score["details"], "made on demand when the desk opens the report (test_heatmaps.py)"

    clip = requests.post(f"{base}/api/v1/checks/upload", files={"file": ("c.mp4", make_clip(seed=21, seconds=3.0))},
                         data={"wait": "5"}, timeout=30).json()["results"][0]
    video = wait_done(base, [clip["check_id"]], timeout=60)[clip["check_id"]]["verdict"]
    frames = assert_baseline_ran(video)["details"]["frames"]  # detection over the keyframes, aggregated
    assert len(frames) >= 2 and all(0.0 <= f["score"] <= 1.0 for f in frames)
    assert requests.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"
    # one scrape of the API's /metrics shows the bundled worker's processes too
    scrape = f"{base}/metrics"
    assert metric(scrape, "credence_checks_created_total", 5) >= 5
    assert metric(scrape, "credence_verdicts_total", 4, level="no-evidence") == 4  # 2 URLs, a photo, a clip
    assert metric(scrape, "credence_verdicts_total", 1, level="unavailable") == 1
    assert metric(scrape, "credence_fetch_refused_total", 1) == 1  # the 404
    assert metric(scrape, "credence_rule_seconds_count", 4, rule="detect") == 4
    assert metric(scrape, "credence_worker_tasks_total", 3, task="credence.fetch", outcome="success") == 3  # URLs

    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the worker runs under serve"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "stopping serve stops its worker"
