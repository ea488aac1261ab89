"""Task bodies without a broker: idempotent, deduplicated, and nothing is ever dropped."""
from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from server import models
from server.checks import records
from server.migrate import upgrade
from server.services import Services
from server.checks.urls import normalise, url_key
from worker import jobs
from worker.lease import Heartbeat
from tests.conftest import env_for, settings_from
from tests.helpers import CliResult, credence, make_jpeg


@pytest.fixture
def ctx(data_dir: Path) -> Services:
    # The cpu task bodies alone: detection (a hand-off to the gpu queue) is tested in test_detect_stage.py.
    settings = settings_from(env_for(data_dir, stale_check_s="60", detect="false"))
    upgrade(settings.sqlalchemy_url)
    return Services(settings)


def url_check(ctx: Services, url: str) -> str:
    url = normalise(url)
    with ctx.db.session() as session:
        return records.create_check(session, source="url", url=url, url_hash=url_key(url))


def queued(ctx: Services) -> list[dict]:
    folder = ctx.settings.resolved_data_dir / "broker"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.msg"))]


def test_fetch_then_analyze_is_idempotent(ctx: Services, media_server) -> None:
    url = media_server.add("/x.jpg", make_jpeg(seed=3))
    check_id = url_check(ctx, url)
    sha = jobs.fetch_check(ctx, check_id)
    assert len(sha) == 64 and len(queued(ctx)) == 1  # analysis enqueued
    assert jobs.analyze_media(ctx, sha, owner="t1") == "no-evidence"
    assert jobs.analyze_media(ctx, sha, owner="t2") == "cached"  # a redelivered task does no work twice
    assert jobs.fetch_check(ctx, check_id) == "skipped"
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(models.Verdict)) == 1
        assert session.get(models.Check, check_id).status == "done"


def test_second_url_with_same_bytes_is_not_analysed_again(ctx: Services, media_server) -> None:
    body = make_jpeg(seed=4)
    first, second = url_check(ctx, media_server.add("/1.jpg", body)), url_check(ctx, media_server.add("/2.jpg", body))
    jobs.analyze_media(ctx, jobs.fetch_check(ctx, first), owner="t")
    before = len(queued(ctx))
    jobs.fetch_check(ctx, second)
    assert len(queued(ctx)) == before  # completed from the record, no analysis queued
    with ctx.db.session() as session:
        assert session.get(models.Check, second).status == "done"


def test_refused_fetch_records_an_unavailable_verdict(ctx: Services) -> None:
    check_id = url_check(ctx, "http://169.254.169.254/latest/meta-data")
    assert jobs.fetch_check(ctx, check_id) == "unavailable"
    with ctx.db.session() as session:
        found = records.checks_by_id(session, [check_id])
    check, body = found[check_id]
    assert check.status == "done" and body["level"] == "unavailable"
    assert "link-local" in body["summary"] and body["evidence"][0]["kind"] == "blocked-address"


def test_missing_bytes_complete_the_waiting_checks(ctx: Services) -> None:
    sha = "ab" * 32
    with ctx.db.session() as session:
        records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
        check_id = records.create_check(session, source="upload", sha256=sha)
    assert jobs.analyze_media(ctx, sha, owner="t") == "missing"
    with ctx.db.session() as session:
        assert records.checks_by_id(session, [check_id])[check_id][1]["level"] == "unavailable"


def test_sweeper_requeues_stale_checks_and_gives_up_eventually(ctx: Services, media_server) -> None:
    fresh = url_check(ctx, media_server.add("/fresh.jpg", make_jpeg()))
    stale_url = url_check(ctx, media_server.add("/stale.jpg", make_jpeg(seed=9)))
    with ctx.db.session() as session:
        stale_sha = records.create_check(session, source="upload", sha256="cd" * 32)
        hopeless = records.create_check(session, source="url", url="http://x.test/", url_hash="0" * 64)
        old = models.utcnow() - timedelta(seconds=600)
        session.execute(update(models.Check).where(models.Check.id.in_([stale_url, stale_sha]))
                        .values(updated_at=old))
        session.execute(update(models.Check).where(models.Check.id == hopeless)
                        .values(updated_at=old, attempts=jobs.MAX_ATTEMPTS))
    assert jobs.sweep(ctx) == {"refetch": 1, "reanalyze": 1, "given_up": 1}
    tasks = sorted((m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued(ctx))
    assert tasks == [("credence.analyze", repr(["cd" * 32])), ("credence.fetch", repr([stale_url]))]
    with ctx.db.session() as session:
        assert session.get(models.Check, fresh).status == "pending"
        assert records.checks_by_id(session, [hopeless])[hopeless][1]["summary"].startswith("Could not check: gave up")
    assert jobs.sweep(ctx) == {"refetch": 0, "reanalyze": 0, "given_up": 0}  # touched: not re-sent at once


def test_a_heartbeat_renews_at_once_only_a_lease_that_has_aged(ctx: Services) -> None:
    """A task starting right after its check was touched leaves the lease as it is (no write); one whose check
    waited in the queue for part of a term has it renewed at once, before the first periodic beat."""
    with ctx.db.session() as session:
        fresh = records.create_check(session, source="upload", sha256="ab" * 32)
        aged = records.create_check(session, source="upload", sha256="cd" * 32)
        session.execute(update(models.Check).where(models.Check.id == aged)
                        .values(updated_at=models.utcnow() - timedelta(seconds=ctx.settings.stale_check_s / 2)))
    with ctx.db.session() as session:
        before = {c.id: c.updated_at for c in session.scalars(select(models.Check))}
    for sha in ("ab" * 32, "cd" * 32):
        with Heartbeat(ctx, sha256=sha):
            pass
    with ctx.db.session() as session:
        after = {c.id: c.updated_at for c in session.scalars(select(models.Check))}
    assert after[fresh] == before[fresh]
    assert after[aged] > before[aged] + timedelta(seconds=ctx.settings.stale_check_s / 4)


def test_the_lease_thread_renews_every_running_block_and_none_after_it_ends(data_dir: Path) -> None:
    """One thread per process keeps every open Heartbeat's lease (two blocks at once here), at each quarter of
    the lease, and forgets a block once it ends."""
    settings = settings_from(env_for(data_dir, stale_check_s="2", detect="false"))  # a beat every 0.5 s
    upgrade(settings.sqlalchemy_url)
    ctx = Services(settings)
    with ctx.db.session() as session:
        ids = [records.create_check(session, source="upload", sha256=c * 64) for c in "ab"]

    def stamps() -> dict[str, object]:
        with ctx.db.session() as session:
            return {c.id: c.updated_at for c in session.scalars(select(models.Check).where(models.Check.id.in_(ids)))}

    before = stamps()
    with Heartbeat(ctx, sha256="a" * 64, renewed=True), Heartbeat(ctx, check_id=ids[1], renewed=True):
        deadline = time.monotonic() + 30
        while any(stamps()[i] == before[i] for i in ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(stamps()[i] > before[i] for i in ids), "a running block's lease was not renewed"
    time.sleep(0.2)  # a renewal already under way at the block's end may still commit
    ended = stamps()
    time.sleep(1.6)  # three beats' time
    assert stamps() == ended, "a lease was renewed after its block ended"


def test_the_analysis_lock_is_not_extended_at_the_start_but_at_each_beat(data_dir: Path, redis_url: str) -> None:
    """analyze_media takes its lock with a full term just before its heartbeat starts: extending it then is a
    wasted round trip. The beats extend it."""
    settings = settings_from(env_for(data_dir, redis_url=redis_url, stale_check_s="8", detect="false"))  # beats: 2 s
    upgrade(settings.sqlalchemy_url)
    ctx = Services(settings)
    key = "analyzing:" + "e" * 64
    assert ctx.cache.claim(key, "me", ttl_s=8) is None
    ctx.cache.client.pexpire(f"credence:{key}", 5000)  # as if the term had partly run
    with Heartbeat(ctx, sha256="e" * 64, lock_key=key):
        assert ctx.cache.client.pttl(f"credence:{key}") <= 5000, "extended at the start"
        deadline = time.monotonic() + 30
        while ctx.cache.client.pttl(f"credence:{key}") <= 5000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ctx.cache.client.pttl(f"credence:{key}") > 5000, "a beat did not extend the lock"
    ctx.cache.release(key)


def run_cli(*args: str) -> CliResult:
    # The cpu verdict alone; `credence check` with the detectors is tested in test_detect_stage.py.
    return credence({"CREDENCE_DETECT": "false"}, *args)


def test_cli_check_file_json_and_text(tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(make_jpeg(seed=8))
    out = json.loads(run_cli("check", str(image), "--json").stdout)
    assert out["level"] == "no-evidence" and len(out["sha256"]) == 64 and out["evidence"]
    text = run_cli("check", str(image)).stdout
    assert text.startswith("no-evidence: No evidence either way") and "does not mean" in text
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    assert json.loads(run_cli("check", str(broken), "--json").stdout)["level"] == "unavailable"


def test_cli_check_url_goes_through_the_guard_and_bad_targets_are_usage_errors() -> None:
    out = json.loads(run_cli("check", "http://127.0.0.1:9/x.jpg", "--json").stdout)
    assert out["level"] == "unavailable" and "loopback" in out["summary"]
    missing = run_cli("check", "/no/such/file.jpg")
    assert missing.returncode == 2 and "neither a file nor" in missing.stderr


def test_cli_db_upgrade_and_keys_create(tmp_path: Path) -> None:
    env_dir = tmp_path / "d"
    env = {"CREDENCE_DATA_DIR": str(env_dir)}
    up = credence(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    made = credence(env, "keys", "create", "--role", "reviewer")
    assert made.returncode == 0 and made.stdout.strip().startswith("cred_")
    assert "role reviewer" in made.stderr
