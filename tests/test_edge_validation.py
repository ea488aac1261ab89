"""Issue 15: text and numbers from outside are checked at the edge (4xx, never a 500), admins can delete
one entry, sign-out ends the desk session, anonymous media reports hide where an image was seen."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from server import models
from server.banks import service as banks
from server.app import create_app
from server.users import create_user
from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import CliResult, api_with_keys, credence
from tests.helpers import check_in_process as check_url
from tests.images import jpeg_bytes, photo
from worker.banks import jobs as bank_jobs
from worker.exchange import peer_pull

SURROGATE = '"tag \\udfff"'  # a valid JSON escape for a lone surrogate: not a Unicode scalar value
SHA = "ab" * 32


@pytest.fixture
def env(data_dir: Path):
    return api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute")))


def raw(call, method: str, path: str, role: str | None, body: str):
    return call(method, path, role, data=body.encode("ascii"), content_type="application/json")


def make_bank(call, name: str = "debunked", shared: bool = False) -> None:
    assert call("POST", "/api/v1/banks", "admin", json={"name": name, "kind": "fake", "shared": shared}).status_code == 201


# -- lone surrogates and NUL in JSON bodies ------------------------------------------------------------

@pytest.mark.parametrize("method,path,role,body", [
    ("POST", "/api/v1/checks", None, '{"urls": ["https://example.org/a\\udfff.jpg"]}'),
    ("POST", "/api/v1/reports", "reporter", '{"url": "https://example.org/\\ud800.jpg"}'),
    ("POST", "/api/v1/banks", "admin", '{"name": "other", "kind": "fake", "description": "x\\udfff"}'),
    ("PATCH", "/api/v1/banks/debunked", "admin", '{"description": "\\udc00"}'),
    ("POST", "/api/v1/banks/debunked/entries", "reporter", '{"label": "x", "sha256": "' + SHA + '", "tags": [' + SURROGATE + "]}"),
    ("POST", "/api/v1/banks/debunked/entries", "reporter", '{"label": "x\\u0000y", "sha256": "' + SHA + '"}'),
    ("POST", "/api/v1/lookup", None, '{"sha256": ["\\udfff"]}'),
    ("POST", "/api/v1/keys", "admin", '{"name": "k\\udfff", "role": "reader"}'),
    ("POST", "/api/v1/search", "reader", '{"\\udfff": 1}'),
])
def test_unstorable_text_in_json_is_a_400_and_nothing_is_stored(env, method, path, role, body) -> None:
    svc, call = env
    make_bank(call)
    response = raw(call, method, path, role, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    message = response.get_json()["error"]
    assert "lone surrogate" in message or "NUL" in message
    with svc.db.session() as session:
        assert session.scalars(select(models.BankEntry)).all() == []
        assert [b.description for b in session.scalars(select(models.Bank))] == [""]
    assert call("GET", "/api/v1/export", "reader").status_code == 200


def test_a_surrogate_pair_is_text_and_is_kept(env) -> None:
    _, call = env
    make_bank(call)
    made = raw(call, "POST", "/api/v1/banks/debunked/entries", "reporter",
               '{"label": "smile \\ud83d\\ude00", "sha256": "' + SHA + '"}')
    assert made.status_code == 201 and made.get_json()["label"] == "smile \U0001F600"
    assert "smile \U0001F600" in call("GET", "/api/v1/export", "reader").get_data(as_text=True)


@pytest.mark.parametrize("body,words", [
    ("[" * 1000 + "]" * 1000, "nested deeper"),
    ('{"urls": ' + "[" * 100 + "]" * 100 + "}", "nested deeper"),
    ('{"urls": ["https://example.org/a.jpg"], "wait": NaN}', "not valid JSON"),
    ('{"urls": ["https://example.org/a.jpg"], "wait": Infinity}', "not valid JSON"),
])
def test_deep_or_non_standard_json_is_a_400(env, body, words) -> None:
    _, call = env
    response = raw(call, "POST", "/api/v1/checks", None, body)
    assert response.status_code == 400 and words in response.get_json()["error"]


# -- query parameters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "since=100000000000000000000", "since=-1", "since=abc", "since=1.5", "limit=0", "limit=-3", "limit=x",
])
def test_feed_query_must_be_in_range(env, query) -> None:
    _, call = env
    response = call("GET", f"/api/v1/exchange/feed?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)


def test_feed_largest_cursor_is_fine(env) -> None:
    _, call = env
    response = call("GET", f"/api/v1/exchange/feed?since={2**63 - 1}")
    assert response.status_code == 200
    assert json.loads(response.get_json()["signed"])["events"] == []


@pytest.mark.parametrize("query", [
    f"offset={2**63}", "offset=-1", "offset=ten", "limit=-1", "limit=0", "limit=ten", "limit=", "status=nope",
])
def test_entries_query_must_be_in_range(env, query) -> None:
    _, call = env
    make_bank(call)
    response = call("GET", f"/api/v1/banks/debunked/entries?{query}", "reader")
    if query == "limit=":  # empty means "not given": the default
        assert response.status_code == 200 and response.get_json()["limit"] == 50
        return
    assert response.status_code == 400, response.get_data(as_text=True)


def test_entries_limit_is_capped_and_never_everything(env) -> None:
    svc, call = env
    make_bank(call)
    with svc.db.session() as session:
        bank = banks.get_bank(session, "debunked")
        for i in range(205):
            banks.submit_entry(session, bank, actor="test", label=f"e{i}", sha256=f"{i:064x}")
    page = call("GET", "/api/v1/banks/debunked/entries?limit=100000", "reader").get_json()
    assert page["limit"] == 200 and len(page["entries"]) == 200
    assert len(call("GET", "/api/v1/banks/debunked/entries?limit=3&offset=204", "reader").get_json()["entries"]) == 1


def test_upload_wait_must_be_a_number(env) -> None:
    _, call = env
    response = call("POST", "/api/v1/checks/upload", data={"file": (__import__("io").BytesIO(b"x"), "a.jpg"),
                                                           "wait": "soon"})
    assert response.status_code == 400 and "wait" in response.get_json()["error"]


# -- import and the feed reader ----------------------------------------------------------------------

def test_jsonl_import_with_a_surrogate_is_refused_with_its_line(env) -> None:
    svc, call = env
    make_bank(call)
    header = json.dumps({"format": "credence-bank", "version": 1})
    line = '{"label": "x", "status": "pending", "sha256": "' + SHA + '", "tags": [' + SURROGATE + "]}"
    response = call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin",
                    data=(header + "\n" + line + "\n").encode("ascii"), content_type="text/plain")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert any("line 2" in e and "lone surrogate" in e for e in response.get_json()["details"])
    with svc.db.session() as session:
        assert session.scalars(select(models.BankEntry)).all() == []


def _signed_page(events: list[dict]) -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)).decode()
    # Written by hand so the escape survives: a hostile peer signs ASCII text holding "\udfff".
    signed = ('{"events":[' + ",".join(json.dumps(e) for e in events) + '],"instance":"p","more":false,'
              '"next":1,"public_key":"' + public + '","since":0,"v":1}')
    signature = base64.b64encode(key.sign(signed.encode("utf-8"))).decode()
    return json.dumps({"signed": signed, "signature": signature}).encode(), public


def test_feed_page_with_a_surrogate_is_rejected_not_a_crash() -> None:
    event = {"cursor": 1, "signature": "AAAA", "payload": {"v": 1, "kind": "entry", "instance": "p", "bank": "b",
                                                          "bank_kind": "fake", "entry": {"label": "\udfff"}}}
    data, public = _signed_page([event])
    assert b"\\udfff" in data
    with pytest.raises(peer_pull.FeedRejected, match="lone surrogate"):
        peer_pull.verify_page(data, public, 0)


# -- deleting one entry ------------------------------------------------------------------------------

def test_admin_deletes_a_poisoned_entry_and_exports_work_again(env) -> None:
    """The issue's state: a tag with a lone surrogate stored (JSON columns escape it) broke every export."""
    svc, call = env
    make_bank(call, shared=True)
    with svc.db.session() as session:
        bank = banks.get_bank(session, "debunked")
        entry = banks.submit_entry(session, bank, actor="old", label="poison", sha256=SHA, tags=["\udfff"])
        entry.status = "confirmed"
        entry_id, generation = entry.id, bank.generation
    assert call("GET", "/api/v1/export", "reader").status_code == 500  # what the edge now prevents

    assert call("DELETE", f"/api/v1/entries/{entry_id}", "reviewer").status_code == 403
    assert call("DELETE", "/api/v1/entries/nope", "admin").status_code == 404
    deleted = call("DELETE", f"/api/v1/entries/{entry_id}", "admin", json={"note": "broke the export"})
    assert deleted.status_code == 200 and deleted.get_json() == {"deleted": entry_id}
    assert call("GET", f"/api/v1/entries/{entry_id}", "reader").status_code == 404
    assert call("GET", "/api/v1/export", "reader").status_code == 200
    assert call("GET", "/api/v1/banks/debunked/export", "reader").status_code == 200
    with svc.db.session() as session:
        audit = session.scalars(select(models.AuditLog).where(models.AuditLog.action == "entry.delete")).one()
        assert audit.target == entry_id and audit.actor.startswith("key:") and audit.details["sha256"] == SHA
        assert audit.details["note"] == "broke the export" and audit.details["status"] == "confirmed"
        assert banks.get_bank(session, "debunked").generation > generation
        retraction = session.scalars(select(models.FeedEvent).where(models.FeedEvent.kind == "retraction")).one()
        assert retraction.entry_id == entry_id and retraction.payload["entry"]["tags"] == ["\ufffd"]
    feed = call("GET", "/api/v1/exchange/feed?since=0")
    assert feed.status_code == 200 and entry_id in feed.get_json()["signed"]


def test_deleting_a_confirmed_entry_rematches_what_it_matched(env, media_server, monkeypatch) -> None:
    svc, call = env
    make_bank(call)
    url = media_server.add("/viral.jpg", jpeg_bytes(photo(3), 85))
    assert check_url(svc, call, url)["level"] == "no-evidence"
    with svc.db.session() as session:
        sha = session.scalars(select(models.Media.sha256)).one()
    entry = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={"label": "fake", "sha256": sha}).get_json()
    call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    assert bank_jobs.rematch_entry(svc, entry["id"]) == 1
    assert check_url(svc, call, url)["level"] == "known-fake"

    sent = []
    monkeypatch.setattr("server.api.banks.enqueue", lambda send, arg: sent.append((send.__name__, arg)))
    assert call("DELETE", f"/api/v1/entries/{entry['id']}", "admin").status_code == 200
    assert [name for name, _ in sent] == ["enqueue_rematch_removed"]
    assert bank_jobs.rematch_removed(svc, sent[0][1]) == 1
    assert check_url(svc, call, url)["level"] == "no-evidence"


def test_cli_delete_entry(tmp_path: Path) -> None:
    env = {**env_for(tmp_path / "d")}

    def cli(*args: str) -> CliResult:
        return credence(env, *args)

    (tmp_path / "d").mkdir()
    assert cli("db", "upgrade").returncode == 0
    assert cli("banks", "create", "debunked", "--kind", "fake").returncode == 0
    entry = json.loads(cli("banks", "submit", "debunked", "--label", "cli", "--sha256", SHA).stdout)
    assert json.loads(cli("banks", "review", entry["id"], "--confirm", "--note", "ok").stdout)["status"] == "confirmed"
    gone = cli("banks", "delete-entry", entry["id"], "--note", "mistake")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == {"deleted": entry["id"], "rematched_changed": 0}
    assert json.loads(cli("banks", "entries", "debunked").stdout) == []
    again = cli("banks", "delete-entry", entry["id"], "--note", "twice")
    assert again.returncode == 1 and "no such entry" in again.stderr


# -- media report: sightings -------------------------------------------------------------------------

@pytest.mark.parametrize("sightings", ["true", "false"])
def test_anonymous_media_report_hides_where_the_image_was_seen(data_dir, media_server, sightings) -> None:
    svc, call = api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute", desk_sightings=sightings)))
    url = media_server.add("/seen-here.jpg", jpeg_bytes(photo(5), 85))
    check_url(svc, call, url)
    with svc.db.session() as session:
        sha = session.scalars(select(models.Media.sha256)).one()
    anonymous = call("GET", f"/api/v1/media/{sha}")
    assert anonymous.status_code == 200 and anonymous.get_json()["urls"] == []
    assert "seen-here" not in anonymous.get_data(as_text=True)
    keyed = call("GET", f"/api/v1/media/{sha}", "reader").get_json()["urls"]
    assert [u["url"] for u in keyed] == ([url] if sightings == "true" else [])


# -- the desk ----------------------------------------------------------------------------------------

PASSWORD = "correct horse battery"


def _desk(data_dir: Path):
    settings = settings_from(env_for(data_dir, rate_limit="10000/minute"))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    with svc.db.session() as session:
        create_user(session, username="rita", password=PASSWORD, role="reviewer", actor="test")
    return app, svc


def _token(client, path: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def _login(client) -> None:
    response = client.post("/desk/login", data={"username": "rita", "password": PASSWORD,
                                                "csrf_token": _token(client, "/desk/login")})
    assert response.status_code == 302


def test_logout_ends_the_session_for_a_copied_cookie(data_dir) -> None:
    app, _ = _desk(data_dir)
    client = app.test_client()
    _login(client)
    cookie = client.get_cookie("credence_desk", path="/desk").value
    thief = app.test_client()
    thief.set_cookie("credence_desk", cookie, path="/desk")
    assert thief.get("/desk/curation").status_code == 200  # the copy works while signed in
    assert client.post("/desk/logout", data={"csrf_token": _token(client, "/desk/")}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("credence_desk", cookie, path="/desk")
    response = replay.get("/desk/curation")
    assert response.status_code == 302 and "/desk/login" in response.headers["Location"]
    assert thief.get("/desk/curation").status_code == 302
    _login(client)  # signing in again gives a working session
    assert client.get("/desk/curation").status_code == 200


def test_desk_form_with_a_nul_is_a_400_page(data_dir) -> None:
    app, svc = _desk(data_dir)
    with svc.db.session() as session:
        bank = banks.create_bank(session, name="debunked", kind="fake", actor="test")
        entry_id = banks.submit_entry(session, bank, actor="test", label="x", sha256=SHA).id
    client = app.test_client()
    _login(client)
    page = f"/desk/entries/{entry_id}"
    response = client.post(f"{page}/decide", data={"action": "reject", "note": "no\x00pe",
                                                     "csrf_token": _token(client, page)})
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)
    with svc.db.session() as session:
        assert session.get(models.BankEntry, entry_id).status == "pending"
