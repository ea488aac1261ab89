"""Bounded analysis (issue 15, blocker): budgets enforced before native code, time limits, and leases.

The hostile files are the ones the attack used (tests/hostile_media.py); the workers are real Celery
workers on real Redis and PostgreSQL.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from server import models
from server.checks import records
from server.migrate import upgrade
from server.queue import enqueue_analyze
from server.services import Services
from tests.conftest import env_for, settings_from
from tests.helpers import WorkerProcess, make_jpeg
from tests.hostile_media import (flat_png, many_box_mp4, many_chunk_png, many_scan_jpeg, nested_mp4,
                                 progressive_jpeg)
from worker import jobs
from worker.stages import budget
from worker.stages.c2pa_read import read_c2pa
from worker.stages.decode import DecodeError, decode

LIMITS = budget.Limits()


# --------------------------------------------------------------------------- the walks

def test_box_walk_counts_top_level_and_nested_boxes_and_stops_early() -> None:
    assert budget.count_boxes(many_box_mp4(10), 100) == 11  # ftyp + 10 free
    assert budget.count_boxes(nested_mp4(5), 100) == 6  # ftyp + moov x5, each inside the last
    assert budget.count_boxes(many_box_mp4(100_000), 4096) == 4097  # stops one past the limit


def test_many_box_mp4_is_refused_before_c2pa_reads_it() -> None:
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(many_box_mp4(20_000), LIMITS)
    assert refused.value.code == "too-many-boxes" and "more than 4,096 boxes" in refused.value.reason
    budget.check_structure(many_box_mp4(100), LIMITS)  # a few boxes: read


def test_deeply_nested_boxes_are_refused() -> None:
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(nested_mp4(5000), LIMITS)
    assert refused.value.code == "too-deeply-nested"
    budget.check_structure(nested_mp4(8), LIMITS)


def test_jpeg_scans_are_counted_and_many_are_refused() -> None:
    assert budget.count_jpeg_scans(progressive_jpeg(), 1000) == 10  # libjpeg's standard progression
    assert budget.count_jpeg_scans(make_jpeg(), 1000) == 1  # baseline
    assert budget.count_jpeg_scans(many_scan_jpeg(350), 1000) == 350
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(many_scan_jpeg(350), LIMITS)
    assert refused.value.code == "too-many-scans" and "more than 100 scans" in refused.value.reason


def test_a_jpeg_of_millions_of_tiny_segments_is_refused_by_a_bounded_walk() -> None:
    """6 million 4-byte comment segments (24 MB) took 1.9 s to walk, and Pillow walks markers in Python too."""
    hostile = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 6_000_000 + b"\xff\xd9"
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(hostile, LIMITS)
    assert refused.value.code == "too-many-segments" and "more than 10,000 marker segments" in refused.value.reason
    fine = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 9_000 + b"\xff\xd9"  # under the bound: walked, no scan
    assert budget.count_jpeg_scans(fine, 100) == 0


def test_png_chunks_are_counted_and_many_are_refused() -> None:
    counts = budget.count_png_chunks(many_chunk_png(600, b"tEXt"), 100_000)
    assert (counts.chunks, counts.idat, counts.text) == (603, 1, 600)  # IHDR, 600 tEXt, IDAT, IEND
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(many_chunk_png(20_000), LIMITS)
    assert refused.value.code == "too-many-chunks" and "more than 10,000 chunks" in refused.value.reason
    with pytest.raises(budget.OverBudget) as refused:
        budget.check_structure(many_chunk_png(600, b"tEXt"), LIMITS)
    assert "600 text chunks" in refused.value.reason
    budget.check_structure(many_chunk_png(300), LIMITS)


def test_decode_memory_counts_channels_and_sample_size() -> None:
    assert budget.decode_bytes(7000, 7000, "L") == 196_000_000  # 1 byte, plus the 3-byte RGB copy
    assert budget.decode_bytes(7000, 7000, "RGB") == 294_000_000
    assert budget.decode_bytes(1000, 1000, "I;16") == 5_000_000


# --------------------------------------------------------------------------- the stages

def test_decode_refuses_a_small_png_that_would_take_hundreds_of_megabytes() -> None:
    data = flat_png(7000, 7000)  # 143 KB, under the 50 MP pixel cap: peaked at 1.1 GB RSS
    assert len(data) < 200_000
    with pytest.raises(DecodeError) as refused:
        decode(data, 50_000_000)
    assert refused.value.code == "too-much-memory" and "280 MiB, over the 256 MiB limit" in refused.value.reason
    assert decode(data, 50_000_000, budget.Limits(max_decode_bytes=300_000_000)).width == 7000  # setting raised


def test_decode_refuses_many_scans_and_many_chunks() -> None:
    with pytest.raises(DecodeError) as refused:
        decode(many_scan_jpeg(350), 50_000_000)
    assert refused.value.code == "too-many-scans"
    with pytest.raises(DecodeError) as refused:
        decode(many_chunk_png(20_000), 50_000_000)
    assert refused.value.code == "too-many-chunks"
    assert decode(progressive_jpeg(), 50_000_000).width == 256


def test_c2pa_is_not_handed_a_many_box_file() -> None:
    started = time.monotonic()
    result = read_c2pa(many_box_mp4(20_000), "video/mp4", None)
    assert result.status == "unreadable" and "more than 4,096 boxes" in (result.error or "")
    assert time.monotonic() - started < 5  # generous: the library itself takes seconds on this file


@pytest.fixture
def ctx(data_dir: Path) -> Services:
    settings = settings_from(env_for(data_dir, detect="false"))
    upgrade(settings.sqlalchemy_url)
    return Services(settings)


def upload(ctx: Services, data: bytes, mime: str) -> tuple[str, str]:
    sha = ctx.store.put(data)
    with ctx.db.session() as session:
        records.record_media(session, sha256=sha, mime=mime, size=len(data))
        return sha, records.create_check(session, source="upload", sha256=sha)


@pytest.mark.parametrize("data, mime, words", [
    (many_box_mp4(20_000), "video/mp4", "more than 4,096 boxes"),
    (many_scan_jpeg(350), "image/jpeg", "more than 100 scans"),
    (many_chunk_png(20_000), "image/png", "more than 10,000 chunks"),
    (flat_png(7000, 7000), "image/png", "over the 256 MiB limit"),
])
def test_hostile_upload_gets_an_unavailable_verdict_that_says_why(ctx: Services, data: bytes, mime: str,
                                                                  words: str) -> None:
    sha, check_id = upload(ctx, data, mime)
    assert jobs.analyze_media(ctx, sha, owner="t") == "unavailable"
    with ctx.db.session() as session:
        check, body = records.checks_by_id(session, [check_id])[check_id]
    assert check.status == "done" and body["level"] == "unavailable"
    assert body["summary"].startswith("Could not check:") and words in body["summary"]


def test_budgets_follow_the_settings(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, max_media_boxes="50000", max_jpeg_scans="400"))
    limits = budget.Limits.from_settings(settings)
    budget.check_structure(many_box_mp4(20_000), limits)
    budget.check_structure(many_scan_jpeg(350), limits)
    assert budget.Limits.from_settings(settings_from(env_for(data_dir))) == budget.Limits()  # defaults agree


# --------------------------------------------------------------------------- time limits and leases

def _stack(data_dir: Path, pg_url: str, redis_url: str, **overrides: str) -> tuple[dict, Services]:
    env = env_for(data_dir, database_url=pg_url, redis_url=redis_url, detect="false", **overrides)
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    return env, Services(settings)


def _wait_analysing(client: redis.Redis, sha: str, worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not client.exists(f"credence:analyzing:{sha}"):
        assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        time.sleep(0.1)


def _status(ctx: Services, check_id: str) -> tuple[str, dict | None]:
    with ctx.db.session() as session:
        check, body = records.checks_by_id(session, [check_id])[check_id]
    return check.status, body


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_slow_analysis_keeps_its_lease_and_its_time_limit_gives_a_verdict(data_dir, pg_url, redis_url,
                                                                          tmp_path) -> None:
    # Budgets raised so the 100k-box file (minutes in c2pa) reaches the library: only the time limit stops it.
    env, ctx = _stack(data_dir, pg_url, redis_url, max_media_boxes="1000000", stale_check_s="2",
                      analysis_soft_limit_s="8", analysis_hard_limit_s="12")
    sha, check_id = upload(ctx, many_box_mp4(100_000), "video/mp4")
    client = redis.Redis.from_url(redis_url)
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="cpu", concurrency=1)
    try:
        worker.wait_ready()
        enqueue_analyze(ctx.celery, sha)
        _wait_analysing(client, sha, worker)
        time.sleep(5)  # two and a half leases: a fixed-age sweeper would now send the check again
        assert client.exists(f"credence:analyzing:{sha}"), "its lock is gone: the analysis ended, or its lock expired while it ran"
        assert jobs.sweep(ctx) == {"refetch": 0, "reanalyze": 0, "given_up": 0}
        assert _status(ctx, check_id)[0] == "pending"
        deadline = time.monotonic() + 120
        while _status(ctx, check_id)[0] != "done":
            assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
            time.sleep(0.25)
        # The pool replaced the killed process: the worker still analyses ordinary files.
        plain_sha, plain_id = upload(ctx, make_jpeg(seed=5), "image/jpeg")
        enqueue_analyze(ctx.celery, plain_sha)
        deadline = time.monotonic() + 60
        while _status(ctx, plain_id)[0] != "done":
            assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
            time.sleep(0.25)
    finally:
        worker.stop()
    _, body = _status(ctx, check_id)
    assert body["level"] == "unavailable"
    assert body["summary"].startswith("Could not check: the analysis took longer than 12 s")
    assert _status(ctx, plain_id)[1]["level"] == "no-evidence"
    with ctx.db.session() as session:  # analysed once: one verdict, one attempt
        assert session.get(models.Check, check_id).attempts == 0
        assert len(session.scalars(select(models.Verdict).where(models.Verdict.sha256 == sha)).all()) == 1


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_killed_workers_check_is_sent_again_once_its_lease_runs_out(data_dir, pg_url, redis_url,
                                                                       tmp_path) -> None:
    env, ctx = _stack(data_dir, pg_url, redis_url, max_media_boxes="1000000", stale_check_s="2")
    sha, check_id = upload(ctx, many_box_mp4(100_000), "video/mp4")
    client = redis.Redis.from_url(redis_url)
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="cpu", concurrency=1)
    try:
        worker.wait_ready()
        enqueue_analyze(ctx.celery, sha)
        _wait_analysing(client, sha, worker)
        worker.kill()
    finally:
        worker.stop()
    deadline = time.monotonic() + 30
    counts = jobs.sweep(ctx)
    while counts["reanalyze"] == 0:  # the dead worker's lease runs out within one term
        assert time.monotonic() < deadline
        time.sleep(0.5)
        counts = jobs.sweep(ctx)
    assert counts == {"refetch": 0, "reanalyze": 1, "given_up": 0}
    assert _status(ctx, check_id)[0] == "pending"
