"""The verdict clock (issue 17): completing checks moves it, and a request waiting for verdicts wakes on it
instead of on a timer. Embedded (a file) and Redis alike, with the real jobs completing real checks."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from server.checks import clock, records, service
from server.checks.clock import VerdictClock
from server.migrate import upgrade
from server.services import Services
from server.checks.urls import normalise, url_key
from tests.conftest import env_for, settings_from
from tests.helpers import make_jpeg
from worker import jobs


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_every_tick_moves_the_reading_even_when_the_file_starts_again(backend, tmp_path, redis_url) -> None:
    client = redis.Redis.from_url(redis_url) if backend == "redis" else None
    if client is not None:
        client.delete(clock.KEY)
    c = VerdictClock(client, None if client else tmp_path / "data" / "verdict-clock")
    readings = [c.read()]
    for _ in range(clock.MAX_FILE_BYTES + 3):  # past the file's restart
        c.tick()
        readings.append(c.read())
    assert all(a != b for a, b in zip(readings, readings[1:])), "a tick the clock did not show"
    if client is None:
        assert (tmp_path / "data" / "verdict-clock").stat().st_size <= clock.MAX_FILE_BYTES
    else:
        client.delete(clock.KEY)
        client.close()


def test_a_broken_redis_or_folder_costs_latency_never_an_error(tmp_path) -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    VerdictClock(dead, None).tick()
    assert VerdictClock(dead, None).read() is None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    VerdictClock(None, blocked / "verdict-clock").tick()
    assert VerdictClock(None, blocked / "verdict-clock").read() is None


@pytest.fixture(params=["embedded", "redis"])
def ctx(request, data_dir: Path, redis_url: str) -> Services:
    extra = {"redis_url": redis_url} if request.param == "redis" else {}
    settings = settings_from(env_for(data_dir, stale_check_s="60", detect="false", max_wait_s="60", **extra))
    upgrade(settings.sqlalchemy_url)
    return Services(settings)


def test_completing_checks_moves_the_clock_and_wakes_a_waiting_request(ctx: Services, media_server,
                                                                       monkeypatch) -> None:
    # Without news the waiter would look at the database only after a minute: only the clock can wake it, and
    # it must answer once every check it waits for is done, not at the end of its 20 s.
    monkeypatch.setattr(service, "POLL_INTERVAL_S", 60.0)
    url = normalise(media_server.add("/clock.jpg", make_jpeg(seed=11)))
    with ctx.db.session() as session:
        check_id = records.create_check(session, source="url", url=url, url_hash=url_key(url)).id
    sha256 = jobs.fetch_check(ctx, check_id)
    results = [service.result(url, "pending", check_id, None)]
    before = ctx.clock.read()

    def analyse_soon() -> None:
        time.sleep(0.5)  # the waiter is asleep by then
        jobs.analyze_media(ctx, sha256, owner="clock-test")

    worker = threading.Thread(target=analyse_soon)
    started = time.monotonic()
    worker.start()
    service.wait(ctx, results, wait_s=20)
    worker.join()
    assert results[0]["status"] == "done" and results[0]["verdict"]["sha256"] == sha256
    assert ctx.clock.read() != before
    assert time.monotonic() - started < 15, "the waiter slept through the completion"


def test_a_content_seen_before_completes_a_new_check_and_moves_the_clock(ctx: Services, media_server) -> None:
    body = make_jpeg(seed=12)
    ids = []
    for name in ("/a.jpg", "/b.jpg"):
        url = normalise(media_server.add(name, body))
        with ctx.db.session() as session:
            ids.append(records.create_check(session, source="url", url=url, url_hash=url_key(url)).id)
    jobs.analyze_media(ctx, jobs.fetch_check(ctx, ids[0]), owner="t")
    before = ctx.clock.read()
    jobs.fetch_check(ctx, ids[1])  # completed from the record
    assert ctx.clock.read() != before
    with ctx.db.session() as session:
        assert records.checks_by_id(session, [ids[1]])[ids[1]][0].status == "done"
