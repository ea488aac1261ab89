"""Detection through a real Celery gpu worker: the queue batches (celery-batches).

`credence serve` end to end with the default (committed) baseline, images and a video: tests/test_embedded.py.
"""
from __future__ import annotations

import time
from pathlib import Path

from server.checks import records
from server.migrate import upgrade
from server.services import Services
from tests.conftest import env_for, settings_from
from tests.helpers import WorkerProcess
from tests.test_detect_stage import MODELS, jpeg_bytes, photo
from worker import jobs


def test_gpu_worker_gathers_pending_items_into_one_batch(data_dir: Path, redis_url: str, tmp_path: Path) -> None:
    env = env_for(data_dir, detect="true", models_dir=str(MODELS), redis_url=redis_url, detect_batch_size="8",
                  detect_batch_wait_s="0.5")
    ctx = Services(settings_from(env))
    upgrade(ctx.settings.sqlalchemy_url)
    shas, checks = [], []
    for i in range(6):
        data = jpeg_bytes(photo(10 + i))
        sha = ctx.store.put(data)
        with ctx.db.session() as session:
            records.record_media(session, sha256=sha, mime="image/jpeg", size=len(data))
            checks.append(records.create_check(session, source="upload", sha256=sha))
        assert jobs.analyze_media(ctx, sha, owner=f"t{i}") == jobs.DETECTING  # six detect tasks wait on "gpu"
        shas.append(sha)
    worker = WorkerProcess(env, tmp_path / "gpu.log", queues="gpu", concurrency=1)
    try:
        worker.wait_ready(90)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with ctx.db.session() as session:
                rows = {sha: records.current_verdict(session, sha, ctx.detectors_stamp()) for sha in shas}
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
    served = _celery_argv(["fetch", "cpu", "gpu"], 2, True, hold_batches=True)  # `credence serve`'s only worker
    assert served[served.index("--prefetch-multiplier") + 1] == str(get_settings().detect_batch_size)


def test_the_worker_timer_wakes_in_time_to_flush_a_batch_that_did_not_fill() -> None:
    """celery-batches flushes on the worker's timer, which at Celery's default precision (1 s) flushed a
    half-empty batch once a second whatever CREDENCE_DETECT_BATCH_WAIT_S said (issue 17)."""
    from server.config import Settings
    from server.queue import celery_config

    assert celery_config(Settings(detect_batch_wait_s=0.05))["worker_timer_precision"] <= 0.05
    assert celery_config(Settings(detect_batch_wait_s=5))["worker_timer_precision"] <= 1.0
