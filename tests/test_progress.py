"""Progress that tells the truth (issue 21): the workers' per-stage events, stored in Redis or (embedded, no
Redis) in files, and the desk's status built from them: nothing "running" before a worker said so, and each
stage's start and end in order, with real worker processes too."""
from __future__ import annotations

import io
import time
from types import SimpleNamespace
from datetime import datetime

import pytest
import redis

from server.checks import progress
from server.checks.progress import ProgressLog
from server.users import create_user
from server.vocabulary import Stage
from tests.conftest import env_for, settings_from
from tests.helpers import WorkerProcess
from tests.images import jpeg_bytes, photo
from tests.test_desk import PASSWORD, login, make_app, token
from worker import jobs
from worker.detection import jobs as detect_jobs

ORDER = ("fetch", "provenance", "hashes", "banks", "recovery")


def at(value: str | None) -> float:
    assert value, "a time was expected"
    return datetime.fromisoformat(value).timestamp()


def assert_in_order(check: dict, stages: tuple[str, ...] = ORDER) -> None:
    """Every stage started and ended, each after the one before it, all after the check was queued."""
    by_key = {s["key"]: s for s in check["stages"]}
    last = at(check["queued_at"]) - 0.01
    for key in stages:
        stage = by_key[key]
        start, end = at(stage["started_at"]), at(stage["ended_at"])
        assert last <= start <= end, (key, check["stages"])
        last = end
    if check.get("done_at"):
        assert at(check["done_at"]) >= last


# ---------------------------------------------------------------------------- the store

@pytest.mark.parametrize("backend", ["files", "redis"])
def test_log_appends_reads_restarts_and_ignores_bad_keys(backend, tmp_path, redis_url) -> None:
    client = redis.Redis.from_url(redis_url) if backend == "redis" else None
    log = ProgressLog(client, None if client else tmp_path / "progress", ttl_s=60)
    log.add("check", "c1", "fetch", progress.START)
    log.add("check", "c1", "fetch", progress.END, ms=12.5)
    log.add("media", "a" * 64, "analysis", progress.PLAN, rules=["media-type"])
    log.add("check", "../../etc/passwd", "fetch", progress.START)  # not a key: dropped
    log.add("other", "c1", "fetch", progress.START)
    read = log.read_many([("check", "c1"), ("media", "a" * 64), ("check", "nothing"), ("check", "../x")])
    assert [(e["stage"], e["event"]) for e in read[("check", "c1")]] == [("fetch", "start"), ("fetch", "end")]
    assert read[("check", "c1")][1]["ms"] == 12.5 and read[("check", "c1")][0]["at"] <= read[("check", "c1")][1]["at"]
    assert read[("media", "a" * 64)][0]["rules"] == ["media-type"]
    assert read[("check", "nothing")] == [] and ("check", "../x") not in read
    log.restart("media", "a" * 64)
    assert log.read_many([("media", "a" * 64)])[("media", "a" * 64)] == []
    if client is not None:
        assert 0 < client.ttl(f"{progress.PREFIX}progress:check-c1") <= 60, "Redis lists expire"
        client.close()
    else:
        assert not (tmp_path / "progress" / "check-..").exists()


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_events_held_and_written_together_keep_their_order_and_their_own_times(backend, tmp_path, redis_url) -> None:
    """A rule's end is written with the next rule's start (worker/jobs.py): one write, each event as it happened."""
    client = redis.Redis.from_url(redis_url) if backend == "redis" else None
    log = ProgressLog(client, None if client else tmp_path / "progress", ttl_s=60)
    log.restart("media", "c" * 64)
    first = progress.event_of("decode", progress.END, ms=4.0)
    time.sleep(0.01)
    second = progress.event_of("hashes", progress.START)
    log.add_many("media", "c" * 64, [first, second])
    log.add_many("media", "c" * 64, [])
    read = log.read_many([("media", "c" * 64)])[("media", "c" * 64)]
    assert [(e["stage"], e["event"]) for e in read] == [("decode", "end"), ("hashes", "start")]
    assert read[0]["ms"] == 4.0 and read[0]["at"] < read[1]["at"]
    if client is not None:
        client.close()


@pytest.mark.parametrize("backend", ["files", "redis"])
def test_a_task_holds_its_events_briefly_and_the_timer_writes_them_if_the_task_does_not(backend, tmp_path,
                                                                                        redis_url) -> None:
    """worker/jobs.py's HeldProgress: a restart writes at once and forgets the earlier run; later events wait
    (one write for several), and the background timer writes them when the task does not (a long step)."""
    client = redis.Redis.from_url(redis_url) if backend == "redis" else None
    log = ProgressLog(client, None if client else tmp_path / "progress", ttl_s=60)
    key = ("media", "d" * 64)
    log.add(*key, "decode", progress.START)  # an earlier run's
    held = jobs.HeldProgress(SimpleNamespace(progress=log), *key)
    held.restart("analysis", progress.PLAN, rules=["decode"])

    def read() -> list[tuple[str, str]]:
        return [(e["stage"], e["event"]) for e in log.read_many([key])[key]]

    assert read() == [("analysis", "plan")]
    held("decode", progress.START, None)
    held("decode", progress.END, 3.5)
    held.flush()
    assert read() == [("analysis", "plan"), ("decode", "start"), ("decode", "end")]
    held("hashes", progress.START, None)  # and then a step that takes long: the task writes nothing
    deadline = time.monotonic() + 20
    while len(read()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read()[-1] == ("hashes", "start"), "a held event was never written"
    events = log.read_many([key])[key]
    assert events[2]["ms"] == 3.5 and [e["at"] for e in events] == sorted(e["at"] for e in events)
    if client is not None:
        client.close()


def test_a_broken_redis_never_fails_a_writer_or_a_reader() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    log = ProgressLog(dead, None)
    log.add("check", "c1", "fetch", progress.START)
    log.restart("media", "b" * 64)
    assert log.read_many([("check", "c1")]) == {("check", "c1"): []}


def test_stage_progress_follows_the_plan() -> None:
    plan = {"stage": "analysis", "event": progress.PLAN, "at": 1.0,
            "rules": ["media-type", "decode", "keyframes", "c2pa", "ai-metadata", "watermark", "hashes"]}
    provenance = (Stage.C2PA, Stage.AI_METADATA, Stage.WATERMARK)
    hashes = (Stage.HASHES, Stage.KEYFRAMES, Stage.VIDEO_HASHES)
    events = [plan, {"stage": "keyframes", "event": "start", "at": 2.0},
              {"stage": "keyframes", "event": "end", "at": 3.0, "ms": 1000.0}]
    assert progress.stage_progress(provenance, events)["state"] == "waiting"
    assert progress.stage_progress(hashes, events)["state"] == "running", "hashes still has a rule to come"
    events += [{"stage": "c2pa", "event": "start", "at": 3.1}]
    assert progress.stage_progress(provenance, events)["state"] == "running"
    events += [{"stage": "c2pa", "event": "end", "at": 3.2, "ms": 100.0},
               {"stage": "ai-metadata", "event": "skip", "at": 3.2}, {"stage": "watermark", "event": "skip", "at": 3.2}]
    done = progress.stage_progress(provenance, events)
    assert done["state"] == "done" and done["ms"] == 100.0 and at(done["started_at"]) == 3.1
    assert progress.stage_progress((Stage.BANK_MATCH,), events) is None, "not in the plan: nothing to say"
    assert progress.stage_progress((Stage.DETECT,), [plan, {"stage": "detect-gate", "event": "start", "at": 4}]) is None


# ---------------------------------------------------------------------------- the desk, in-process

def test_a_queued_check_shows_nothing_running_then_each_stage_in_order(data_dir) -> None:
    app, svc = make_app(data_dir)
    client = app.test_client()
    login(client, "rosa")
    data = jpeg_bytes(photo(12, (320, 240)))
    response = client.post("/desk/checks", data={"files": (io.BytesIO(data), "queued.jpg")},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    (check,) = response.get_json()["checks"]
    states = {s["key"]: s["state"] for s in check["stages"]}
    assert states == {"fetch": "done", "provenance": "waiting", "hashes": "waiting", "banks": "waiting",
                      "recovery": "waiting", "detection": "waiting"}, "uploaded and queued: no stage runs before a worker takes it"
    assert check["phase"] == "waiting" and check["queued_at"]
    page = client.get(f"/desk/checks/{check['check_id']}").get_data(as_text=True)
    assert f'data-live-check="{check["check_id"]}"' in page and "<noscript><meta http-equiv" in page

    jobs.analyze_media(svc, check["sha256"], owner="test")
    (done,) = client.get(f"/desk/api/checks?ids={check['check_id']}").get_json()["checks"]
    assert done["status"] == "done"
    assert_in_order(done, ORDER[1:])
    assert {s["key"]: s["state"] for s in done["stages"]}["detection"] == "skipped"

    # Another check of the same bytes is answered from the record: the old run's times are not its own.
    time.sleep(1.1)  # past the slack allowed for clocks of different hosts
    again = client.post("/desk/checks", data={"files": (io.BytesIO(data), "again.jpg")},
                        headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    (second,) = client.get(f"/desk/api/checks?ids={again.get_json()['checks'][0]['check_id']}").get_json()["checks"]
    assert second["status"] == "done" and all("started_at" not in s for s in second["stages"])


def test_detection_reports_queued_running_and_done(data_dir, monkeypatch) -> None:
    app, svc = make_app(data_dir)
    client = app.test_client()
    login(client, "rosa")
    data = jpeg_bytes(photo(13, (320, 240)))
    response = client.post("/desk/checks", data={"files": (io.BytesIO(data), "detect.jpg")},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    (check,) = response.get_json()["checks"]
    sha = check["sha256"]
    # As the cpu analysis leaves it when detection is due: handed to the gpu queue, the check still pending.
    svc.progress.add("media", sha, Stage.DETECT, progress.QUEUED)

    def status() -> dict:
        (found,) = client.get(f"/desk/api/checks?ids={check['check_id']}").get_json()["checks"]
        return found

    queued = status()
    assert {s["key"]: s["state"] for s in queued["stages"]}["detection"] == "queued"
    assert queued["phase"] == "in the queue"

    seen: list[str] = []

    def fake_detection(settings, contents, store):
        seen.append({s["key"]: s["state"] for s in status()["stages"]}["detection"])
        return [[] for _ in contents], [{"detect": "ran"} for _ in contents], 5.0

    monkeypatch.setattr(detect_jobs, "run_detection", fake_detection)
    detect_jobs.detect_batch(svc, [(sha, {"evidence": [], "versions": {}, "timings": {}})])
    assert seen == ["running"], "the detection job said it started"
    (done,) = client.get(f"/desk/api/checks?ids={check['check_id']}").get_json()["checks"]
    detection = {s["key"]: s for s in done["stages"]}["detection"]
    assert done["status"] == "done" and detection["state"] == "done"
    assert at(detection["started_at"]) <= at(detection["ended_at"]) <= at(done["done_at"])


# ---------------------------------------------------------------------------- real workers

@pytest.mark.integration
def test_real_workers_report_each_stage_start_and_end_in_order(data_dir, pg_url, redis_url, media_server,
                                                               tmp_path) -> None:
    from server.app import create_app
    from server.migrate import upgrade

    env = env_for(data_dir, database_url=pg_url, redis_url=redis_url, detect="false", rate_limit="10000/minute")
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    with app.extensions["credence"].db.session() as session:
        create_user(session, username="rosa", password=PASSWORD, role="reader", actor="test")
    client = app.test_client()
    login(client, "rosa")
    url = media_server.add("/slow.jpg", jpeg_bytes(photo(14, (640, 480))), delay=1.5)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        response = client.post("/desk/checks", data={"urls": url},
                               headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
        (check,) = response.get_json()["checks"]
        snapshots = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (now,) = client.get(f"/desk/api/checks?ids={check['check_id']}").get_json()["checks"]
            snapshots.append(now)
            if now["status"] == "done":
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    final = snapshots[-1]
    assert final["status"] == "done" and final["verdict"]["level"] == "no-evidence", worker.log_path.read_text()[-2000:]
    assert_in_order(final)
    fetching = [s for s in snapshots if {x["key"]: x["state"] for x in s["stages"]}["fetch"] == "running"
                and not s["stages"][0].get("queued")]
    assert fetching, "the slow fetch was seen running"
    for snap in fetching:
        states = {x["key"]: x["state"] for x in snap["stages"]}
        assert snap["stages"][0]["started_at"] and "ended_at" not in snap["stages"][0]
        assert states["provenance"] == states["hashes"] == states["banks"] == "waiting", states
        assert snap["phase"] == "working: fetch"
    rank = {"waiting": 0, "queued": 0, "running": 1, "done": 2, "skipped": 2}
    for key in ORDER:
        seen = [rank[{x["key"]: x["state"] for x in s["stages"]}[key]] for s in snapshots]
        assert seen == sorted(seen), (key, seen)
