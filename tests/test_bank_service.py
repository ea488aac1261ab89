"""The banks domain as one service (server/banks/service.py): the API, the CLI and the desk validate with the
same schemas, list in the same order, decide through the same function and send the same re-match; the
worker hashes a submitted file by the one fingerprint rule."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from server import models
from server.app import create_app
from server.auth import create_key
from server.banks import service as banks
from server.cli import main as cli_main
from server.migrate import upgrade
from server.schemas import EntryDelete, EntrySubmit, RetractRequest, ReviewRequest
from server.users import create_user
from tests.conftest import env_for, settings_from
from tests.helpers import ROLES
from tests.images import jpeg_bytes, photo
from worker.banks import jobs as bank_jobs

PASSWORD = "correct horse battery"
SHA = "ab" * 32


class Recorded:
    """Jobs (server.banks.service.Jobs) that only note what they were asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def hash_entry(self, entry_id: str) -> None:
        self.calls.append(("hash_entry", entry_id))

    def rematch(self, entry_id: str) -> None:
        self.calls.append(("rematch", entry_id))

    def rematch_removed(self, hashes: dict) -> None:
        self.calls.append(("rematch_removed", hashes["id"]))


@pytest.fixture
def fronts(data_dir: Path, monkeypatch):
    """One instance seen through its three front ends: API keys, a desk reviewer, the CLI (same env)."""
    env = env_for(data_dir, rate_limit="10000/minute")
    for key, value in env.items():
        if key.startswith("CREDENCE_"):
            monkeypatch.setenv(key, value)
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    keys = {role: create_key(svc.db, role=role, name=role)[0] for role in ROLES}
    with svc.db.session() as session:
        create_user(session, username="rita", password=PASSWORD, role="reviewer", actor="test")
        banks.create_bank(session, name="debunked", kind="fake", actor="test")
    api = app.test_client()

    def call(method: str, path: str, role: str, **kwargs):
        return api.open(path, method=method, headers={"Authorization": f"Bearer {keys[role]}"}, **kwargs)

    desk = app.test_client()
    html = desk.get("/desk/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    signed_in = desk.post("/desk/login", data={"username": "rita", "password": PASSWORD, "csrf_token": csrf})
    assert signed_in.status_code == 302
    return svc, call, desk


def _csrf(desk) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', desk.get("/desk/").get_data(as_text=True)).group(1)


def _desk_post(desk, path: str, **data):
    return desk.post(path, data={**data, "csrf_token": _csrf(desk)}, headers={"Accept": "application/json"})


def _entry(svc, label: str, **hashes: str) -> str:
    with svc.db.session() as session:
        entry = banks.submit_entry(session, banks.get_bank(session, "debunked"), actor="test", label=label,
                                   **(hashes or {"sha256": SHA}))
        return entry.id


def test_every_front_end_lists_entries_oldest_first(fronts) -> None:
    svc, call, desk = fronts
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    made = {label: _entry(svc, label) for label in ("second", "third", "first")}  # made out of order
    with svc.db.session() as session:
        for minutes, label in enumerate(("first", "second", "third")):
            session.get(models.BankEntry, made[label]).submitted_at = t0 + timedelta(minutes=minutes)
    expected = ["first", "second", "third"]

    listed = call("GET", "/api/v1/banks/debunked/entries", "reader").get_json()["entries"]
    assert [e["label"] for e in listed] == expected
    page = call("GET", "/api/v1/banks/debunked/entries?offset=1&limit=1", "reader").get_json()["entries"]
    assert [e["label"] for e in page] == ["second"]
    cli = CliRunner().invoke(cli_main, ["banks", "entries", "debunked"])
    assert cli.exit_code == 0, cli.output
    assert [e["label"] for e in json.loads(cli.output)] == expected
    queue = desk.get("/desk/curation?bank=debunked").get_data(as_text=True)
    assert re.findall(r"<strong>(first|second|third)</strong>", queue) == expected


def test_a_desk_note_follows_the_api_rule(fronts) -> None:
    """The desk once cut notes to 2000 characters while the API took 5000: the schema is the one rule now."""
    svc, call, desk = fronts
    kept = _entry(svc, "kept")
    note = "n" * 3000
    assert _desk_post(desk, f"/desk/entries/{kept}/decide", action="reject", note=note).status_code == 302
    with svc.db.session() as session:
        assert session.get(models.BankEntry, kept).review_note == note

    too_long = "n" * 5001
    refused = _entry(svc, "refused")
    by_desk = _desk_post(desk, f"/desk/entries/{refused}/decide", action="confirm", note=too_long)
    by_api = call("POST", f"/api/v1/entries/{refused}/review", "reviewer", json={"action": "confirm", "note": too_long})
    assert by_desk.status_code == by_api.status_code == 400
    assert by_desk.get_json()["error"] == by_api.get_json()["error"] == "request body is invalid"
    assert by_api.get_json()["details"][0]["loc"] == ["note"]
    page = desk.get(f"/desk/entries/{refused}").get_data(as_text=True)
    assert 'maxlength="5000"' in page  # the form says the limit before anyone types past it
    with svc.db.session() as session:
        assert session.get(models.BankEntry, refused).status == "pending"


def test_the_cli_refuses_with_the_api_message_and_its_details(fronts) -> None:
    svc, _, _ = fronts
    entry_id = _entry(svc, "cli")
    runner = CliRunner()
    refused = runner.invoke(cli_main, ["banks", "review", entry_id, "--confirm", "--note", "n" * 5001])
    assert refused.exit_code == 1
    assert "request body is invalid; note: String should have at most 5000 characters" in refused.output
    too_long_label = runner.invoke(cli_main, ["banks", "submit", "debunked", "--label", "x" * 301, "--sha256", SHA])
    assert too_long_label.exit_code == 1 and "label: String should have at most 300 characters" in too_long_label.output
    done = runner.invoke(cli_main, ["banks", "review", entry_id, "--confirm", "--note", "ok"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["status"] == "confirmed" and result["bank"] == "debunked" and result["rematched_changed"] == 0


def test_the_rematch_follows_every_decision_that_changes_what_matches(fronts) -> None:
    svc, _, _ = fronts
    jobs = Recorded()
    rejected, confirmed, pending = _entry(svc, "rejected"), _entry(svc, "confirmed"), _entry(svc, "pending")
    rejection = banks.review(svc, rejected, ReviewRequest(action="reject", note="no"), actor="t", jobs=jobs)
    assert rejection["status"] == "rejected"
    banks.review(svc, confirmed, ReviewRequest(action="confirm", note="yes"), actor="t", jobs=jobs)
    banks.review(svc, confirmed, RetractRequest(note="wrong"), actor="t", jobs=jobs)
    assert jobs.calls == [("rematch", confirmed), ("rematch", confirmed)]
    banks.delete_entry(svc, pending, EntryDelete(), actor="t", jobs=jobs)
    banks.delete_entry(svc, confirmed, EntryDelete(note="gone"), actor="t", jobs=jobs)
    assert jobs.calls[2:] == [("rematch_removed", confirmed)]


def test_queued_jobs_are_sent_by_task_name_to_the_cpu_queue() -> None:
    """What the API and the desk send: the workers' task names (server.queue), never worker code."""
    sent = []

    class Broker:
        def send_task(self, name: str, args: list, queue: str) -> None:
            sent.append((name, args, queue))

    queued = banks.Queued(lambda send, arg: send(Broker(), arg))
    queued.hash_entry("e1")
    queued.rematch("e2")
    queued.rematch_removed({"id": "e3"})
    assert sent == [("credence.hash_entry", ["e1"], "cpu"), ("credence.rematch", ["e2"], "cpu"),
                    ("credence.rematch_removed", [{"id": "e3"}], "cpu")]


def test_the_api_and_the_desk_queue_the_same_rematch(fronts, monkeypatch) -> None:
    svc, call, desk = fronts
    sent = []
    record = lambda send, arg: sent.append((send.__name__, arg))  # noqa: E731
    monkeypatch.setattr("server.api.banks.enqueue", record)
    monkeypatch.setattr("server.desk.curation.enqueue", record)
    by_api, by_desk = _entry(svc, "api"), _entry(svc, "desk")
    confirmed = call("POST", f"/api/v1/entries/{by_api}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    assert confirmed.status_code == 200
    assert _desk_post(desk, f"/desk/entries/{by_desk}/decide", action="confirm", note="ok").status_code == 302
    assert sent == [("enqueue_rematch", by_api), ("enqueue_rematch", by_desk)]


def test_an_uploaded_entry_is_hashed_by_the_one_fingerprint_rule(fronts) -> None:
    """The worker hashes the stored upload as the CLI hashes a file (its identity PDQ), by the same rule."""
    svc, _, _ = fronts
    data = jpeg_bytes(photo(6))
    jobs = Recorded()
    made = banks.submit(svc, "debunked", EntrySubmit(label="upload"), actor="t", jobs=jobs, upload=data)
    assert jobs.calls == [("hash_entry", made["id"])] and made["hash_state"] == "pending"
    assert bank_jobs.hash_entry(svc, made["id"]) == "ready"
    cli_values = banks.file_hashes(data, svc.settings)
    with svc.db.session() as session:
        entry = session.get(models.BankEntry, made["id"])
        stored = {"media_kind": entry.media_kind, "sha256": entry.sha256, "pdq": entry.pdq,
                  "pdq_quality": entry.pdq_quality, "phash": entry.phash}
    assert stored == cli_values and len(stored["pdq"]) == 64


def test_the_worker_hashes_within_the_configured_decode_budget(data_dir: Path) -> None:
    """As the pipeline does for checked media: the entry's file is refused by the same budget."""
    settings = settings_from(env_for(data_dir, max_decode_bytes="1024"))
    upgrade(settings.sqlalchemy_url)
    svc = create_app(settings).extensions["credence"]
    with svc.db.session() as session:
        banks.create_bank(session, name="debunked", kind="fake", actor="test")
    made = banks.submit(svc, "debunked", EntrySubmit(label="big"), actor="t", jobs=Recorded(),
                        upload=jpeg_bytes(photo(6)))
    assert bank_jobs.hash_entry(svc, made["id"]) == "failed"
    with svc.db.session() as session:
        assert "limit" in session.get(models.BankEntry, made["id"]).hash_error


def test_a_desk_submission_from_a_report_follows_the_api_label_rule(fronts) -> None:
    """The report page's "submit to a bank" once cut labels to 300 characters silently: the API's schema
    refuses them with its message, and a label within the rule is kept whole with the stored hashes."""
    svc, call, desk = fronts
    with svc.db.session() as session:
        session.add(models.Media(sha256=SHA, mime="image/jpeg", size=10, pdq="0f" * 32, pdq_quality=90,
                                 phash="1" * 16))
    too_long = _desk_post(desk, f"/desk/media/{SHA}/submit", bank="debunked", label="x" * 301)
    by_api = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={"label": "x" * 301, "sha256": SHA})
    assert too_long.status_code == by_api.status_code == 400
    assert too_long.get_json()["error"] == by_api.get_json()["error"] == "request body is invalid"
    assert too_long.get_json()["problems"] == ["label: String should have at most 300 characters"]
    page = desk.post(f"/desk/media/{SHA}/submit", data={"bank": "debunked", "label": "x" * 301,
                                                          "csrf_token": _csrf(desk)})
    assert page.status_code == 400 and "label: String should have at most 300 characters" in page.get_data(as_text=True)
    label = "y" * 300
    assert _desk_post(desk, f"/desk/media/{SHA}/submit", bank="debunked", label=label).status_code == 302
    (entry,) = [e for e in banks_listed(call) if e["label"] == label]
    assert entry["pdq"] == "0f" * 32 and entry["status"] == "pending" and entry["hash_state"] == "ready"
    missing = _desk_post(desk, f"/desk/media/{'cd' * 32}/submit", bank="debunked", label="z")
    assert missing.status_code == 404


def banks_listed(call) -> list[dict]:
    return call("GET", "/api/v1/banks/debunked/entries", "reader").get_json()["entries"]
