"""End to end on the production shape: real PostgreSQL, real Redis, real Celery worker processes."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from server import models
from server.app import create_app
from server.auth import create_key
from server.config import PIPELINE_VERSION
from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import MediaServer, WorkerProcess, free_port, make_jpeg, metric, wait_done

pytestmark = pytest.mark.integration


def make_stack(data_dir: Path, pg_url: str, redis_url: str, **overrides: str):
    # Fetch, cpu analysis, cache and recovery; detection on these stacks is tested in test_detect_worker.py.
    overrides.setdefault("detect", "false")
    env = env_for(data_dir, database_url=pg_url, redis_url=redis_url, **overrides)
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    return env, app, app.test_client()


def count(app, model, *where) -> int:
    with app.extensions["credence"].db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def post(client, urls: list[str], wait: float = 0) -> list[dict]:
    response = client.post("/api/v1/checks", json={"urls": urls, "wait": wait})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["results"]


def test_batch_flows_to_recorded_verdicts_and_then_cache(data_dir, pg_url, redis_url, media_server: MediaServer,
                                                         tmp_path) -> None:
    metrics_port = free_port()
    env, app, client = make_stack(data_dir, pg_url, redis_url, worker_metrics_port=str(metrics_port))
    same = make_jpeg(seed=1)
    urls = {
        "a": media_server.add("/a.jpg", same),
        "a_copy": media_server.add("/cdn/a-640.jpg", same, "text/plain"),  # header lies; bytes decide
        "b": media_server.add("/b.jpg", make_jpeg(seed=2, width=80)),
        "html": media_server.add("/page.html", b"<!doctype html><html><body>hi</body></html>", "image/jpeg"),
        "missing": media_server.url("/missing.jpg"),
        "private": "http://10.0.0.1/x.jpg",
        "broken": media_server.add("/broken.jpg", same[: len(same) // 3]),
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        first = post(client, list(urls.values()), wait=2)
        ids = [r["check_id"] for r in first]
        assert all(ids) and len(set(ids)) == len(ids)
        done = wait_done(client, ids)
        # the worker's own Prometheus endpoint sums its prefork processes
        scrape = f"http://127.0.0.1:{metrics_port}/metrics"
        assert metric(scrape, "credence_worker_tasks_total", 7, task="credence.fetch", outcome="success") == 7
        assert metric(scrape, "credence_verdicts_total", 2, level="no-evidence") == 2  # a (twice: once) and b
        assert metric(scrape, "credence_verdicts_total", 4, level="unavailable") == 4
        assert metric(scrape, "credence_fetch_refused_total", 1, code="blocked-address") == 1
        assert metric(scrape, "credence_rule_seconds_count", 3, rule="decode") == 3
    finally:
        worker.stop()
    by_name = {name: done[first[i]["check_id"]]["verdict"] for i, name in enumerate(urls)}
    assert {name: v["level"] for name, v in by_name.items()} == {
        "a": "no-evidence", "a_copy": "no-evidence", "b": "no-evidence", "html": "unavailable",
        "missing": "unavailable", "private": "unavailable", "broken": "unavailable",
    }
    assert by_name["a"]["sha256"] == by_name["a_copy"]["sha256"]
    decoded = [e for e in by_name["a"]["evidence"] if e["kind"] == "decoded"]
    assert decoded[0]["details"]["width"] == 64
    assert "HTML" in by_name["html"]["summary"]
    assert "404" in by_name["missing"]["summary"]
    assert "private" in by_name["private"]["summary"]
    assert "broken" in by_name["broken"]["summary"] or "truncated" in by_name["broken"]["summary"]
    for verdict in by_name.values():
        assert verdict["versions"]["pipeline"] == PIPELINE_VERSION
        assert {"stage", "kind", "summary", "details", "score"} <= set(verdict["evidence"][0])

    # Recorded in PostgreSQL: the same bytes behind two URLs were analysed once.
    sha_a = by_name["a"]["sha256"]
    assert count(app, models.Verdict, models.Verdict.sha256 == sha_a) == 1
    assert count(app, models.Media) == 3  # a, b, broken
    assert count(app, models.MediaUrl) == 4
    assert client.get(f"/api/v1/media/{sha_a}").get_json()["urls"] == []  # where it was seen: not for strangers
    reader_key = create_key(app.extensions["credence"].db, role="reader", name="reader")[0]
    report = client.get(f"/api/v1/media/{sha_a}", headers={"Authorization": f"Bearer {reader_key}"}).get_json()
    assert sorted(u["url"] for u in report["urls"]) == sorted([urls["a"], urls["a_copy"]])
    assert report["verdict"]["level"] == "no-evidence" and len(report["history"]) == 1
    assert "decode" in report["verdict"]["timings"]
    assert report["hashes"]["pdq"] and report["hashes"]["pdq_quality"] is not None and report["hashes"]["phash"]

    # Second request: served from the cache, nothing fetched again, no new checks.
    hits_before, checks_before = media_server.total_hits(), count(app, models.Check)
    again = post(client, [urls["a"], urls["a_copy"], urls["b"], urls["private"]])
    assert [r["status"] for r in again] == ["done"] * 4
    assert [r["check_id"] for r in again] == [None] * 4
    assert [r["verdict"]["level"] for r in again] == ["no-evidence"] * 3 + ["unavailable"]
    assert media_server.total_hits() == hits_before
    assert count(app, models.Check) == checks_before


def test_worker_killed_mid_batch_loses_no_check(data_dir, pg_url, redis_url, media_server, tmp_path) -> None:
    # Sweeper far away: redelivery of the unacknowledged tasks alone must finish the batch.
    env, app, client = make_stack(data_dir, pg_url, redis_url, visibility_timeout_s="3", stale_check_s="3600")
    urls = [media_server.add(f"/slow{i}.jpg", make_jpeg(seed=10 + i), delay=1.5) for i in range(6)]
    first = WorkerProcess(env, tmp_path / "first.log", concurrency=2)
    second = None
    try:
        first.wait_ready()
        ids = [r["check_id"] for r in post(client, urls)]
        deadline = time.monotonic() + 30
        while media_server.total_hits() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()
        assert count(app, models.Check, models.Check.status == "pending") == len(urls)
        second = WorkerProcess(env, tmp_path / "second.log", concurrency=2)
        second.wait_ready()
        done = wait_done(client, ids, timeout=120)
    finally:
        first.stop()
        if second:
            second.stop()
    assert [done[i]["verdict"]["level"] for i in ids] == ["no-evidence"] * len(urls)
    assert count(app, models.Check, models.Check.status == "done") == len(urls)


@pytest.fixture
def private_redis(tmp_path):
    """A real redis-server of our own, so the test can restart it without disturbing the machine's."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return proc
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    state = {"proc": start()}

    def restart() -> None:
        state["proc"].terminate()
        state["proc"].wait(timeout=10)
        state["proc"] = start()

    yield f"redis://127.0.0.1:{port}/0", restart
    state["proc"].terminate()
    state["proc"].wait(timeout=10)


def test_redis_restart_loses_no_verdict(data_dir, pg_url, private_redis, media_server, tmp_path) -> None:
    redis_url, restart = private_redis
    env, app, client = make_stack(data_dir, pg_url, redis_url)
    urls = [media_server.add(f"/r{i}.jpg", make_jpeg(seed=40 + i)) for i in range(3)]
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        ids = [r["check_id"] for r in post(client, urls)]
        before = wait_done(client, ids)
        verdicts_before = count(app, models.Verdict)
        restart()
        cached = lambda: redis.Redis.from_url(redis_url).keys("credence:*")  # noqa: E731
        assert cached() == []  # the cache is really gone (the worker may already re-declare its queues)
        hits = media_server.total_hits()
        after = post(client, urls)
        assert [r["status"] for r in after] == ["done"] * 3
        assert [r["verdict"]["sha256"] for r in after] == [before[i]["verdict"]["sha256"] for i in ids]
        assert media_server.total_hits() == hits and count(app, models.Verdict) == verdicts_before
        assert cached()  # read-through refilled it
        # The pipeline itself carries on over the new Redis.
        new = media_server.add("/after-restart.jpg", make_jpeg(seed=99))
        fresh = post(client, [new])[0]
        assert wait_done(client, [fresh["check_id"]], timeout=90)[fresh["check_id"]]["verdict"]["level"] == "no-evidence"
    finally:
        worker.stop()


def test_bank_review_changes_cached_verdicts_through_real_workers(data_dir, pg_url, redis_url, media_server,
                                                                  tmp_path) -> None:
    import io

    from server.auth import create_key
    from tests.images import jpeg_bytes, photo

    env, app, client = make_stack(data_dir, pg_url, redis_url)
    db = app.extensions["credence"].db
    keys = {r: {"Authorization": f"Bearer {create_key(db, role=r, name=r)[0]}"} for r in ("reporter", "reviewer", "admin")}
    image = photo(6)
    url = media_server.add("/shared-everywhere.jpg", jpeg_bytes(image.resize((800, 600)), 75))
    worker = WorkerProcess(env, tmp_path / "worker.log")

    def level_now() -> str:
        result = post(client, [url], wait=3)[0]
        if result["status"] == "pending":
            result = wait_done(client, [result["check_id"]])[result["check_id"]]
        return result["verdict"]["level"]

    def eventually(predicate, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.3)

    try:
        worker.wait_ready()
        assert client.post("/api/v1/banks", json={"name": "debunked", "kind": "fake"}, headers=keys["admin"]).status_code == 201
        assert level_now() == "no-evidence"
        entry = client.post("/api/v1/banks/debunked/entries", headers=keys["reporter"], data={
            "label": "Recycled 2019 storm photo", "file": (io.BytesIO(jpeg_bytes(image, 92)), "orig.jpg")}).get_json()
        eventually(lambda: client.get(f"/api/v1/entries/{entry['id']}", headers=keys["reporter"]).get_json()
                   ["hash_state"] == "ready")
        assert level_now() == "no-evidence"  # pending: no effect
        client.post(f"/api/v1/entries/{entry['id']}/review", headers=keys["reviewer"],
                    json={"action": "confirm", "note": "verified with the agency"})
        eventually(lambda: level_now() == "known-fake")  # the cached verdict was re-matched, not refetched
        client.post(f"/api/v1/entries/{entry['id']}/retract", headers=keys["reviewer"], json={"note": "mistake"})
        eventually(lambda: level_now() == "no-evidence")
    finally:
        worker.stop()
    assert media_server.hits["/shared-everywhere.jpg"] == 1
