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
        check_id = records.create_check(session, source="url", url=url, url_hash=url_key(url))
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
            ids.append(records.create_check(session, source="url", url=url, url_hash=url_key(url)))
    jobs.analyze_media(ctx, jobs.fetch_check(ctx, ids[0]), owner="t")
    before = ctx.clock.read()
    jobs.fetch_check(ctx, ids[1])  # completed from the record
    assert ctx.clock.read() != before
    with ctx.db.session() as session:
        assert records.checks_by_id(session, [ids[1]])[ids[1]][0].status == "done"


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_many_waiters_share_one_reader_and_all_wake_on_a_tick(backend, tmp_path, redis_url) -> None:
    """Each waiting request used to read the clock every 10 ms itself: 100 GETs a second per open stream."""
    client = redis.Redis.from_url(redis_url) if backend == "redis" else None
    c = VerdictClock(client, None if client else tmp_path / "data" / "verdict-clock")
    reads = 0
    read = c.read

    def counted() -> object:
        nonlocal reads
        reads += 1
        return read()

    c.read = counted
    woke: list[float] = []
    seen = c.reading()

    def wait() -> None:
        c.wait_for_news(seen, time.monotonic(), time.monotonic() + 30)
        woke.append(time.monotonic())

    waiters = [threading.Thread(target=wait) for _ in range(50)]
    for t in waiters:
        t.start()
    time.sleep(0.5)
    assert not woke, "a waiter woke without news"
    reads_while_waiting = reads
    ticked = time.monotonic()
    c.tick()
    for t in waiters:
        t.join(10)
    assert len(woke) == 50 and max(woke) - ticked < 5, "a waiter slept through the tick"
    # One reader every 10 ms for 0.5 s: about 50 reads (50 waiters reading for themselves: about 2,500).
    assert reads_while_waiting < 200, reads_while_waiting
    if client is not None:
        client.close()


def test_a_stream_pushes_a_verdict_when_the_clock_moves_not_at_its_next_look(ctx: Services, media_server,
                                                                             monkeypatch) -> None:
    monkeypatch.setattr(service, "STREAM_POLL_S", 60.0)  # without news, its next look would be a minute away
    monkeypatch.setattr(ctx.settings, "max_stream_s", 120)
    url = normalise(media_server.add("/stream.jpg", make_jpeg(seed=13)))
    with ctx.db.session() as session:
        check_id = records.create_check(session, source="url", url=url, url_hash=url_key(url))
    sha256 = jobs.fetch_check(ctx, check_id)

    def analyse_soon() -> None:
        time.sleep(0.5)  # the stream has looked once and waits by then
        jobs.analyze_media(ctx, sha256, owner="stream-test")

    worker = threading.Thread(target=analyse_soon)
    started = time.monotonic()
    worker.start()
    stream = service.events(ctx, [check_id])
    kind, body = next(stream)
    worker.join()
    assert kind == "result" and body["status"] == "done" and body["verdict"]["sha256"] == sha256
    assert time.monotonic() - started < 15, "the stream slept through the completion"
    assert next(stream) == ("done", [])
