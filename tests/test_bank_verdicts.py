"""Verdicts follow the banks both ways, end to end on real PostgreSQL, Redis and Celery workers:
a retraction re-runs what the known-fake match had skipped (detection on the gpu queue included) and
says which entry was retracted, when and by whom; a peer's dispute shows wherever the match shows
(API verdict, media report, desk report, JSON and PDF exports, the extension's tooltip)."""
from __future__ import annotations

import io
import json
import subprocess
import time

import pytest
from pypdf import PdfReader

from server import models
from server.exchange import identity
from server.app import create_app
from server.auth import create_key
from server.users import create_user
from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import ROOT, ServedApp, WorkerProcess, wait_done
from tests.images import jpeg_bytes, photo
from tests.test_desk import PASSWORD, login
from tests.test_detect_stage import MODELS
from tests.test_exchange import ROLES, Instance, confirmed_entry, make_instance, peer_id
from worker.exchange import peer_pull

pytestmark = pytest.mark.integration


def eventually(predicate, timeout: float = 90, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def check_url(client, url: str, timeout: float = 90) -> dict:
    """POST /api/v1/checks as the extension does, waiting for the verdict."""
    result = client.post("/api/v1/checks", json={"urls": [url], "wait": 3}).get_json()["results"][0]
    if result["status"] == "pending":
        result = wait_done(client, [result["check_id"]], timeout=timeout)[result["check_id"]]
    return result["verdict"]


def kinds(verdict: dict) -> list[str]:
    return [e["kind"] for e in verdict["evidence"]]


def test_retraction_reruns_detection_and_says_which_entry_was_retracted(data_dir, pg_url, redis_url, media_server,
                                                                         tmp_path) -> None:
    env = env_for(data_dir, database_url=pg_url, redis_url=redis_url, detect="true", models_dir=str(MODELS),
                  detect_batch_wait_s="0.2", rate_limit="100000/minute")
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    client = app.test_client()
    db = app.extensions["credence"].db
    keys = {r: {"Authorization": f"Bearer {create_key(db, role=r, name=r)[0]}"} for r in ("reporter", "reviewer", "admin")}
    image = photo(6)
    served = jpeg_bytes(image.resize((800, 600)), 75)
    url = media_server.add("/storm.jpg", served)
    cpu = WorkerProcess(env, tmp_path / "cpu.log", queues="fetch,cpu")  # no gpu worker until asked for
    gpu = None
    try:
        cpu.wait_ready()
        assert client.post("/api/v1/banks", json={"name": "debunked", "kind": "fake"}, headers=keys["admin"]).status_code == 201
        entry = client.post("/api/v1/banks/debunked/entries", headers=keys["reporter"], data={
            "label": "Recycled 2019 storm photo", "file": (io.BytesIO(jpeg_bytes(image, 92)), "orig.jpg")}).get_json()
        eventually(lambda: client.get(f"/api/v1/entries/{entry['id']}", headers=keys["reporter"]).get_json()
                   ["hash_state"] == "ready", what="the entry's hashes")
        assert client.post(f"/api/v1/entries/{entry['id']}/review", headers=keys["reviewer"],
                           json={"action": "confirm", "note": "verified with the agency"}).status_code == 200

        # Checked while the entry is confirmed: known fake, and detection skipped for it.
        first = check_url(client, url)
        assert first["level"] == "known-fake"
        assert first["versions"]["detect"] == "skipped" and "detection-skipped" in kinds(first)
        sha = first["sha256"]

        note = "the agency found the original, taken in 2024"
        assert client.post(f"/api/v1/entries/{entry['id']}/retract", headers=keys["reviewer"],
                           json={"note": note}).get_json()["status"] == "retracted"
        retracted = client.get(f"/api/v1/entries/{entry['id']}", headers=keys["reporter"]).get_json()

        def report() -> dict:
            return client.get(f"/api/v1/media/{sha}").get_json()

        # The cpu worker analyses the stored bytes again; detection now waits on the gpu queue.
        eventually(lambda: report()["verdict"]["level"] != "known-fake", what="the re-analysis")
        interim = report()["verdict"]
        assert interim["versions"]["detect"] == "pending"
        assert "detection-skipped" not in kinds(interim) and "detection-rerun-pending" in kinds(interim)
        assert "known-fake" not in kinds(interim) and "bank-entry-retracted" in kinds(interim)

        # A re-upload of the same bytes waits for the detectors rather than taking the interim verdict.
        upload = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(served), "again.jpg")}).get_json()
        (pending,) = upload["results"]
        assert pending["status"] == "pending", pending

        gpu = WorkerProcess(env, tmp_path / "gpu.log", queues="gpu", concurrency=1)
        gpu.wait_ready(120)
        final = wait_done(client, [pending["check_id"]], timeout=240)[pending["check_id"]]["verdict"]
        by_url = check_url(client, url)
    finally:
        cpu.stop()
        if gpu is not None:
            gpu.stop()

    for verdict in (final, by_url, report()["verdict"]):
        assert verdict["level"] != "known-fake"
        assert verdict["versions"]["detect"] == "ran", verdict["versions"]
        scored = [e for e in verdict["evidence"] if e["stage"] == "detect" and e.get("score") is not None]
        assert scored, kinds(verdict)  # the detectors answered
        assert "detection-skipped" not in kinds(verdict) and "detection-rerun-pending" not in kinds(verdict)
        assert "Detection was skipped" not in json.dumps(verdict)
        (gone,) = [e for e in verdict["evidence"] if e["kind"] == "bank-entry-retracted"]
        assert gone["supports"] is None
        # Who retracted it is said as the feed says it (this instance), never the reviewer's key (the audit log's).
        assert gone["details"]["entry_id"] == entry["id"] and gone["details"]["retracted_by"] == settings.instance_name
        assert retracted["reviewed_by"].startswith("key:") and retracted["reviewed_by"] not in json.dumps(verdict)
        summary = gone["summary"]
        assert entry["id"] in summary and "debunked" in summary and "Recycled 2019 storm photo" in summary
        assert f"retracted on {retracted['reviewed_at'][:10]} by {settings.instance_name}" in summary
        assert note in summary
    assert media_server.hits["/storm.jpg"] == 1  # re-analysed from the stored bytes, never refetched


NOTE = "Not fake: the photo is from the 2026 flood, we reached the photographer"


@pytest.fixture
def alpha_with_worker(tmp_path, pg_factory, redis_url):
    """Alpha: served over loopback (beta pulls its feed), with a real Celery worker on Redis that pulls
    beta's feed and re-matches; desk users to read its reports."""
    env = env_for(tmp_path / "a", instance_name="alpha", database_url=pg_factory(), redis_url=redis_url,
                  rate_limit="100000/minute")
    (tmp_path / "a").mkdir()
    settings = settings_from(env)
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    with svc.db.session() as session:
        identity.get_or_create(session, "alpha")
        create_user(session, username="rosa", password=PASSWORD, role="reader", actor="test")
    a = Instance("alpha", svc, app.test_client(), {r: create_key(svc.db, role=r, name=r)[0] for r in ROLES})
    a.server = ServedApp(app)
    a.base = f"http://127.0.0.1:{a.server.effective_port}"
    worker = WorkerProcess(env, tmp_path / "alpha-worker.log", queues="fetch,cpu")
    b = make_instance("beta", tmp_path / "b", pg_factory(), serve=True)
    try:
        worker.wait_ready()
        yield a, b, app
    finally:
        worker.stop()
        for inst in (a, b):
            inst.server.close()


def tooltip(verdict: dict) -> dict:
    """The extension's own code (compact + describe) over the API's verdict, as the content script runs it."""
    script = ("import { compact, describe } from './extension/src/lib/describe.js';\n"
              "let text = ''; process.stdin.on('data', (c) => { text += c; });\n"
              "process.stdin.on('end', () => { console.log(JSON.stringify(describe(compact(JSON.parse(text))))); });")
    done = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(verdict), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_peer_dispute_shows_wherever_the_match_shows(alpha_with_worker, media_server) -> None:
    a, b, app = alpha_with_worker
    assert a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True}).status_code == 201
    original = photo(11)
    entry = confirmed_entry(a, "debunked", original, "Fake flood, 2026")
    url = media_server.add("/flood.jpg", jpeg_bytes(original.resize((640, 480)), 70))
    before = check_url(a.client, url)
    assert before["level"] == "known-fake" and "disputed" not in before["summary"]
    assert tooltip(before)["title"].startswith("Known fake: ")

    # Beta imports alpha's entry, then retracts its copy: a dispute on beta's feed.
    assert b.call("POST", "/api/v1/peers", "admin", json={
        "name": "alpha", "url": a.base, "public_key": a.public_key, "trust": "trusted"}).status_code == 201
    assert peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))["error"] is None
    with b.svc.db.session() as session:
        copy_id = session.query(models.BankEntry.id).filter_by(origin_entry_id=entry["id"]).scalar()
    assert b.call("POST", f"/api/v1/entries/{copy_id}/retract", "reviewer", json={"note": NOTE}).status_code == 200

    # Alpha's worker pulls beta's feed (as the beat would) and re-matches what the entry touches.
    assert a.call("POST", "/api/v1/peers", "admin", json={
        "name": "beta", "url": b.base, "public_key": b.public_key}).status_code == 201
    assert a.call("POST", "/api/v1/peers/beta/pull", "admin").status_code == 202
    eventually(lambda: "disputed" in check_url(a.client, url)["summary"], what="the dispute in the verdict")

    verdict = check_url(a.client, url)
    assert verdict["level"] == "known-fake"  # confirmed here; the dispute is the peer's opinion, and it is shown
    assert f"This entry is disputed by beta: “{NOTE}”." in verdict["summary"]
    (match,) = [e for e in verdict["evidence"] if e["kind"] == "known-fake"]
    assert match["details"]["disputed"] is True
    assert [(d["by"], d["reason"]) for d in match["details"]["disputes"]] == [("beta", NOTE)]

    report = a.call("GET", f"/api/v1/media/{verdict['sha256']}").get_json()
    assert "disputed by beta" in report["verdict"]["summary"]
    (cited,) = report["bank_entries"]
    assert (cited["id"], cited["status"], cited["disputed"]) == (entry["id"], "confirmed", True)
    assert [(d["by"], d["reason"]) for d in cited["disputes"]] == [("beta", NOTE)]

    lines = tooltip(verdict)
    assert lines["title"].startswith(f"Known fake, but disputed: beta (“{NOTE}”) disputes the matched entry."), lines
    assert f"disputed by beta: “{NOTE}”" in lines["evidence"]

    desk = app.test_client()
    login(desk, "rosa")
    sha = verdict["sha256"]
    page = desk.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'class="entry-status">confirmed, <strong class="disputed">disputed</strong>' in page
    assert f'class="dispute">beta: {NOTE}' in page
    anonymous = app.test_client().get(f"/desk/media/{sha}").get_data(as_text=True)
    assert f'class="dispute">beta: {NOTE}' in anonymous  # published on beta's feed: no secret

    exported = desk.get(f"/desk/media/{sha}/export.json").get_json()
    (banked,) = exported["bank_matches"]
    assert banked["entry"]["disputed"] is True
    assert [(d["by"], d["reason"]) for d in banked["entry"]["disputes"]] == [("beta", NOTE)]
    assert "disputed by beta" in banked["evidence"]["summary"]

    pdf = desk.get(f"/desk/media/{sha}/export.pdf")
    assert pdf.status_code == 200
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "confirmed, disputed" in text
    assert "Disputed by beta: Not fake" in text and "reached the photographer" in text
