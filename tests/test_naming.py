"""Issue 21: people are named only where they should be. The audit log names who did what (a desk login,
an API key by the name it was given and its id, never its secret prefix); what leaves the instance (the
public feed, export files) names the instance; the media report shows where and when an image was seen
only as the sightings setting allows."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from server import models
from server.auth import create_key
from server.cli import main as cli_main
from server.exchange import identity
from server.users import create_user
from tests.conftest import env_for, settings_from
from tests.helpers import api_with_keys, check_in_process
from tests.images import jpeg_bytes, photo
from tests.test_desk import PASSWORD, login, post
from tests.test_exchange import Instance, confirmed_entry, make_instance, peer_id
from worker.exchange import peer_pull
from worker.stages import hashes

DESK_USER = "zoe-checker"  # a name that appears nowhere else in a page


def _desk_reviewer(inst: Instance):
    """A signed-in desk client of ``inst`` for the reviewer DESK_USER."""
    with inst.svc.db.session() as session:
        create_user(session, username=DESK_USER, password=PASSWORD, role="reviewer", actor="test")
    client = inst.client.application.test_client()
    login(client, DESK_USER)
    return client


def _submitted(inst: Instance, bank: str, seed: int, label: str, role: str = "reporter") -> str:
    h = hashes.compute(photo(seed))
    return inst.call("POST", f"/api/v1/banks/{bank}/entries", role, json={
        "label": label, "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()["id"]


def _secrets(inst: Instance) -> list[str]:
    """What must never leave the instance: the desk login, actor kinds, every key and its prefix."""
    return [DESK_USER, "desk:", "key:", "cred_", *inst.keys.values(), *(k[:12] for k in inst.keys.values())]


@pytest.fixture
def shared_alpha(tmp_path: Path) -> tuple[Instance, dict[str, str]]:
    """alpha with a shared bank: one entry confirmed on the desk, one confirmed then retracted by a key,
    one still pending."""
    inst = make_instance("alpha", tmp_path / "alpha")
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    desk = _desk_reviewer(inst)
    ids = {"desk": _submitted(inst, "debunked", 201, "confirmed on the desk"),
           "key": _submitted(inst, "debunked", 202, "confirmed by a key, then retracted"),
           "pending": _submitted(inst, "debunked", 203, "waiting")}
    assert post(desk, f"/desk/entries/{ids['desk']}/decide", action="confirm", note="checked").status_code == 302
    assert inst.call("POST", f"/api/v1/entries/{ids['key']}/review", "reviewer",
                     json={"action": "confirm", "note": "ok"}).status_code == 200
    assert inst.call("POST", f"/api/v1/entries/{ids['key']}/retract", "reviewer",
                     json={"note": "it was real"}).status_code == 200
    return inst, ids


def test_feed_events_name_the_instance_never_a_desk_login_or_a_key(shared_alpha) -> None:
    inst, ids = shared_alpha
    page = inst.call("GET", "/api/v1/exchange/feed?since=0&v=2").get_json()
    events = json.loads(page["signed"])["events"]
    published = [(e["payload"]["kind"], e["payload"]["entry"]["id"], e["payload"]["entry"]["reviewed_by"])
                 for e in events]
    assert published == [("entry", ids["desk"], "alpha"), ("entry", ids["key"], "alpha"),
                         ("retraction", ids["key"], "alpha")]
    for secret in _secrets(inst):
        assert secret not in page["signed"], secret
    # Inside the instance the audit log still says who: the desk user, and the key by its name.
    history = inst.call("GET", f"/api/v1/entries/{ids['desk']}", "reader").get_json()["history"]
    assert [h["actor"].split(" (")[0] for h in history] == ["key:reporter", f"desk:{DESK_USER}"]


def test_exports_name_the_instance_never_a_desk_login_or_a_key(shared_alpha) -> None:
    inst, ids = shared_alpha
    text = inst.call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data(as_text=True)
    people = {r["id"]: (r["submitted_by"], r["reviewed_by"]) for r in map(json.loads, text.splitlines()[1:])}
    assert people == {ids["desk"]: ("alpha", "alpha"), ids["key"]: ("alpha", "alpha"), ids["pending"]: ("alpha", None)}
    for secret in _secrets(inst):
        assert secret not in text, secret


def _cli(inst: Instance, data_dir: Path, *args: str):
    """The CLI in this process, on the instance's database."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CREDENCE_")}
    env.update(env_for(data_dir, instance_name="alpha", database_url=inst.svc.settings.database_url))
    return CliRunner().invoke(cli_main, list(args), env=env)


def _actor_of_submission(inst: Instance, key: str, seed: int) -> str:
    h = hashes.compute(photo(seed))
    made = inst.client.post("/api/v1/banks/debunked/entries", headers={"Authorization": f"Bearer {key}"},
                            json={"label": f"by key {seed}", "pdq": h.pdq, "pdq_quality": h.pdq_quality})
    assert made.status_code == 201, made.get_json()
    entry = inst.call("GET", f"/api/v1/entries/{made.get_json()['id']}", "reader").get_json()
    assert entry["submitted_by"] == entry["history"][0]["actor"]
    return entry["submitted_by"]


def test_a_key_is_named_in_the_audit_log_by_its_name_and_id_never_its_prefix(tmp_path, pg_factory) -> None:
    """PostgreSQL, whose 200-character actor columns refuse a longer actor."""
    data_dir = tmp_path / "alpha"
    inst = make_instance("alpha", data_dir, pg_factory())
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    by_api = inst.call("POST", "/api/v1/keys", "admin", json={"name": "Newsroom CMS", "role": "reporter"}).get_json()
    assert _actor_of_submission(inst, by_api["key"], 211) == f"key:Newsroom CMS ({by_api['id']})"

    made = _cli(inst, data_dir, "keys", "create", "--role", "reporter", "--name", "Night desk bot")
    assert made.exit_code == 0, made.output
    cli_key = made.stdout.strip()
    cli_id = next(k["id"] for k in inst.call("GET", "/api/v1/keys", "admin").get_json()["keys"]
                  if k["name"] == "Night desk bot")
    assert _actor_of_submission(inst, cli_key, 212) == f"key:Night desk bot ({cli_id})"

    # A name that looks like a peer stays a key; a long, multi-line name is cut to fit.
    peerish, row = create_key(inst.svc.db, role="reporter", name="peer:beta")
    actor = _actor_of_submission(inst, peerish, 213)
    assert actor == f"key:peer:beta ({row.id})"
    long_key, long_row = create_key(inst.svc.db, role="reporter", name="  line one\n  line two " + "x" * 170)
    actor = _actor_of_submission(inst, long_key, 214)
    assert actor == f"key:line one line two {'x' * 102} ({long_row.id})" and len(actor) <= 200

    with inst.svc.db.session() as session:
        actors = set(session.scalars(select(models.AuditLog.actor)))
        keys = session.scalars(select(models.ApiKey)).all()
        assert not any(e.is_feed_copy for e in session.scalars(select(models.BankEntry)))
    for key in keys:
        assert not any(key.prefix in a for a in actors), key.name


def test_events_published_with_peoples_names_before_are_still_read(tmp_path, pg_factory) -> None:
    """History is not rewritten: an event signed with a desk login or a key prefix (as published before
    this change) still verifies and applies, and the copy keeps the signature of that payload."""
    a = make_instance("alpha", tmp_path / "a", pg_factory(), serve=True)
    b = make_instance("beta", tmp_path / "b", pg_factory(), serve=True)
    try:
        a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
        entries = [confirmed_entry(a, "debunked", photo(220 + i), f"old {i}") for i in range(2)]
        old = {entries[0]["id"]: "desk:rev", entries[1]["id"]: "key:cred_oxKNRfl"}
        with a.svc.db.session() as session:  # the events as an older version of alpha published them
            me = identity.get_or_create(session, "alpha")
            for event in session.scalars(select(models.FeedEvent)):
                payload = json.loads(json.dumps(event.payload))
                payload["entry"]["reviewed_by"] = old[event.entry_id]
                event.payload, event.signature = payload, identity.sign(me, identity.canonical(payload))
        assert b.call("POST", "/api/v1/peers", "admin", json={
            "name": "alpha", "url": a.base, "public_key": a.public_key, "trust": "trusted"}).status_code == 201
        summary = peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))
        assert summary["error"] is None and summary["events"] == 2
        with a.svc.db.session() as session:
            payloads = {e.entry_id: e.payload for e in session.scalars(select(models.FeedEvent))}
        with b.svc.db.session() as session:
            for entry in entries:
                copy = session.scalars(select(models.BankEntry).filter_by(origin_entry_id=entry["id"])).one()
                assert copy.status == "confirmed"
                assert identity.verify(a.public_key, identity.canonical(payloads[entry["id"]]), copy.origin_signature)
        # What alpha publishes from now on names alpha.
        confirmed_entry(a, "debunked", photo(222), "new")
        latest = json.loads(a.call("GET", "/api/v1/exchange/feed?since=2&v=2").get_json()["signed"])["events"]
        assert [e["payload"]["entry"]["reviewed_by"] for e in latest] == ["alpha"]
        assert peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))["error"] is None
    finally:
        a.server.close()
        b.server.close()


@pytest.mark.parametrize("sightings", ["true", "false"])
def test_the_media_report_shows_where_and_when_only_as_the_sightings_setting_allows(
        data_dir, media_server, sightings) -> None:
    svc, call = api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute", desk_sightings=sightings)))
    url = media_server.add("/sighted.jpg", jpeg_bytes(photo(230), 85))
    check_in_process(svc, call, url)
    with svc.db.session() as session:
        sha = session.scalars(select(models.Media.sha256)).one()
    anonymous = call("GET", f"/api/v1/media/{sha}")
    assert anonymous.status_code == 200
    assert (anonymous.get_json()["urls"], anonymous.get_json()["first_seen"]) == ([], None)
    assert "sighted" not in anonymous.get_data(as_text=True)
    for role in ("reader", "admin"):
        keyed = call("GET", f"/api/v1/media/{sha}", role)
        report = keyed.get_json()
        if sightings == "true":
            assert [u["url"] for u in report["urls"]] == [url] and report["first_seen"]
        else:
            assert (report["urls"], report["first_seen"]) == ([], None)
            assert "sighted" not in keyed.get_data(as_text=True)
