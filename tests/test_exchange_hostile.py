"""Federation under attack: imports that claim a peer's origin, a pinned peer speaking in another's
name, replayed pages, malformed pages, and links that are scripts. Real instances on loopback, each on
its own PostgreSQL database; the hostile peer is a real HTTP server that signs with its own Ed25519 key."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from server import models
from server.exchange import identity
from tests.conftest import env_for
from tests.helpers import ROOT
from tests.images import photo
from tests.test_exchange import Instance, confirmed_entry, make_instance, peer_id
from worker.exchange import peer_pull
from worker.stages import hashes


class Serving(ThreadingHTTPServer):
    daemon_threads = True


def _serve(respond: Callable[[str], bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = respond(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = Serving(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


class HostilePeer:
    """A publisher that signs whatever it likes with its own key, in the feed's format: v2 pages when
    asked for v=2, v1 pages otherwise (as a real publisher does). ``events`` are (cursor, payload);
    ``tamper`` may rewrite the page body before it is signed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.tamper: Callable[[dict[str, Any]], None] | None = None
        self.issued_at: datetime | None = None
        self.httpd, self.url = _serve(self._respond)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data)).decode()

    def _respond(self, path: str) -> bytes:
        query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        since, limit = int(query.get("since", 0)), int(query.get("limit", 200))
        chosen = [(c, p) for c, p in self.events if c > since][:limit]
        events = [{"cursor": c, "payload": p, "signature": self.sign(identity.canonical(p))} for c, p in chosen]
        head = max([c for c, _ in self.events], default=0)
        body: dict[str, Any] = {"v": 1, "instance": self.name, "public_key": self.public_key, "since": since,
                                "next": chosen[-1][0] if chosen else since,
                                "more": len([c for c, _ in self.events if c > since]) > limit, "events": events}
        if query.get("v") == "2":
            body.update(v=2, limit=limit, head=head,
                        issued_at=(self.issued_at or datetime.now(timezone.utc)).isoformat())
        if self.tamper:
            self.tamper(body)
        text = identity.canonical(body).decode()
        return json.dumps({"signed": text, "signature": self.sign(text.encode())}).encode()

    def close(self) -> None:
        self.httpd.shutdown()


def payload(instance: str, kind: str, entry_id: str, label: str = "x", image_seed: int = 0, **extra: Any) -> dict:
    h = hashes.compute(photo(image_seed))
    body = {"v": 1, "kind": kind, "instance": instance, "bank": "debunked", "bank_kind": "fake",
            "at": "2026-12-10T10:00:00+00:00", "note": extra.pop("note", "")}
    if kind == "opinion":
        body.update(opinion=extra.pop("opinion"), about=extra.pop("about"))
    else:
        body["entry"] = {"id": entry_id, "label": label, "notes": "", "tags": [], "source_links": [],
                         "sha256": None, "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash,
                         "media_kind": "image", "md5": None, "frames": None, "reviewed_by": "x", "reviewed_at": None,
                         **extra}
    return body


@pytest.fixture
def trio(tmp_path, pg_factory):
    """alpha publishes (served), gamma reads; each on its own database."""
    a = make_instance("alpha", tmp_path / "a", pg_factory(), serve=True)
    c = make_instance("gamma", tmp_path / "c", pg_factory(), serve=True)
    yield a, c
    for inst in (a, c):
        inst.server.close()


def add_peer(inst: Instance, name: str, url: str, key: str, trust: str = "trusted") -> str:
    assert inst.call("POST", "/api/v1/peers", "admin", json={"name": name, "url": url, "public_key": key,
                                                             "trust": trust}).status_code == 201
    return peer_id(inst, name)


def entry_of(inst: Instance, **where: Any) -> models.BankEntry | None:
    with inst.svc.db.session() as session:
        row = session.scalars(select(models.BankEntry).filter_by(**where)).first()
        if row is not None:
            session.expunge(row)
        return row


def peer_row(inst: Instance, pid: str) -> models.Peer:
    with inst.svc.db.session() as session:
        row = session.get(models.Peer, pid)
        session.expunge(row)
        return row


def forged_import(entry_id: str, seed: int, label: str, status: str = "pending") -> bytes:
    h = hashes.compute(photo(seed))
    lines = [{"format": "credence-bank", "version": 1, "instance": "mallory"},
             {"label": label, "status": status, "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash,
              "origin": {"instance": "alpha", "entry_id": entry_id, "signature": "AAAA"}}]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


# --- Major 1: an import never claims a peer's origin ------------------------------------------------


@pytest.mark.parametrize("role", ["reporter", "admin"])
def test_an_import_cannot_take_the_place_of_a_trusted_peers_next_entry(trio, role) -> None:
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    h = hashes.compute(photo(71))
    upcoming = a.call("POST", "/api/v1/banks/debunked/entries", "reporter", json={
        "label": "Real fake, checked by alpha", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
    # On gamma, someone imports an innocent image's hashes claiming alpha's upcoming entry as origin.
    c.call("POST", "/api/v1/banks", "admin", json={"name": "inbox", "kind": "fake"})
    imported = c.call("POST", "/api/v1/banks/inbox/import?format=jsonl", role,
                      data=forged_import(upcoming["id"], 72, "innocent photo, labelled fake"))
    assert imported.status_code == 200 and imported.get_json()["created"] == 1
    assert entry_of(c, label="innocent photo, labelled fake").origin_instance is None

    a.call("POST", f"/api/v1/entries/{upcoming['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    pid = add_peer(c, "alpha", a.base, a.public_key)
    assert peer_pull.pull_peer(c.svc, pid)["error"] is None
    innocent = entry_of(c, label="innocent photo, labelled fake")
    assert innocent.status == "pending"  # as the file said (an admin's import keeps it), not the peer's
    assert not (innocent.reviewed_by or "").startswith("peer:")
    real = entry_of(c, origin_instance="alpha", origin_entry_id=upcoming["id"])
    assert real is not None and (real.label, real.status) == ("Real fake, checked by alpha", "confirmed")
    assert real.id != innocent.id

    # Rejecting the junk publishes nothing about alpha's real entry.
    assert c.call("POST", f"/api/v1/entries/{innocent.id}/review", "reviewer",
                  json={"action": "reject", "note": "junk"}).status_code == 200
    assert c.count(models.FeedEvent, models.FeedEvent.kind == "opinion") == 0
    add_peer(a, "gamma", c.base, c.public_key)
    assert peer_pull.pull_peer(a.svc, peer_id(a, "gamma"))["error"] is None
    assert a.call("GET", f"/api/v1/entries/{upcoming['id']}", "reader").get_json()["disputed"] is False


def test_an_import_naming_an_origin_held_in_another_bank_is_not_a_500(trio) -> None:
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    entry = confirmed_entry(a, "debunked", photo(73), "alpha's")
    pid = add_peer(c, "alpha", a.base, a.public_key)
    assert peer_pull.pull_peer(c.svc, pid)["error"] is None
    c.call("POST", "/api/v1/banks", "admin", json={"name": "inbox", "kind": "fake"})
    response = c.call("POST", "/api/v1/banks/inbox/import?format=jsonl", "admin",
                      data=forged_import(entry["id"], 74, "claims alpha's id", status="confirmed"))
    assert response.status_code == 200 and response.get_json()["created"] == 1
    copy = entry_of(c, origin_instance="alpha", origin_entry_id=entry["id"])
    assert (copy.label, copy.status) == ("alpha's", "confirmed")
    with c.svc.db.session() as session:
        audit = session.scalars(select(models.AuditLog).where(models.AuditLog.action == "bank.import")).all()
        assert [row.details["origins_dropped"] for row in audit] == [1]


def test_cli_import_drops_the_origin(trio, tmp_path) -> None:
    a, c = trio
    dump = tmp_path / "forged.jsonl"
    dump.write_bytes(forged_import("0123456789abcdef0123456789abcdef", 75, "via the CLI"))
    env = env_for(tmp_path / "c", instance_name="gamma", database_url=c.svc.settings.database_url)
    c.call("POST", "/api/v1/banks", "admin", json={"name": "inbox", "kind": "fake"})
    done = subprocess.run([sys.executable, "-m", "server.cli", "banks", "import", "inbox", str(dump)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = entry_of(c, label="via the CLI")
    assert row is not None and row.origin_instance is None and row.origin_entry_id is None


def test_an_entry_that_only_claims_an_origin_gives_way_and_publishes_no_dispute(trio) -> None:
    """Data written before imports dropped origins: the peer's real entry still arrives, and a decision
    on the impostor is never signed as an opinion about the peer's entry."""
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    h = hashes.compute(photo(76))
    upcoming = a.call("POST", "/api/v1/banks/debunked/entries", "reporter", json={
        "label": "alpha's real one", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
    c.call("POST", "/api/v1/banks", "admin", json={"name": "inbox", "kind": "fake"})
    c.call("POST", "/api/v1/banks/inbox/import?format=jsonl", "reporter", data=forged_import(upcoming["id"], 77, "old"))
    with c.svc.db.session() as session:  # as an import before this fix left it
        old = session.scalars(select(models.BankEntry).filter_by(label="old")).one()
        old.origin_instance, old.origin_entry_id = "alpha", upcoming["id"]
        old_id = old.id
    assert c.call("POST", f"/api/v1/entries/{old_id}/review", "reviewer",
                  json={"action": "reject", "note": "junk"}).status_code == 200
    assert c.count(models.FeedEvent) == 0
    a.call("POST", f"/api/v1/entries/{upcoming['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    assert peer_pull.pull_peer(c.svc, add_peer(c, "alpha", a.base, a.public_key))["error"] is None
    real = entry_of(c, origin_instance="alpha", origin_entry_id=upcoming["id"])
    assert (real.label, real.status, real.submitted_by) == ("alpha's real one", "confirmed", "peer:alpha")
    old = entry_of(c, id=old_id)
    assert (old.status, old.origin_instance) == ("rejected", None)


# --- Major 2: a peer speaks only for itself ---------------------------------------------------------


@pytest.fixture
def alpha_entry_on_gamma(trio):
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    entry = confirmed_entry(a, "debunked", photo(80), "alpha's fake")
    assert peer_pull.pull_peer(c.svc, add_peer(c, "alpha", a.base, a.public_key))["error"] is None
    mallory = HostilePeer("mallory")
    yield a, c, entry, mallory
    mallory.close()


@pytest.mark.parametrize("trust", ["trusted", "review"])
@pytest.mark.parametrize("attack", ["retract", "overwrite", "dispute-as-alpha"])
def test_a_pinned_peer_cannot_act_in_another_peers_name(alpha_entry_on_gamma, trust, attack) -> None:
    a, c, entry, mallory = alpha_entry_on_gamma
    about = {"instance": "alpha", "entry_id": entry["id"]}
    mallory.events = {
        "retract": [(1, payload("alpha", "retraction", entry["id"], "alpha's fake", 80, note="gone"))],
        "overwrite": [(1, payload("alpha", "retraction", entry["id"], "alpha's fake", 80)),
                      (2, payload("alpha", "entry", entry["id"], "mallory's label", 80))],
        "dispute-as-alpha": [(1, payload("alpha", "opinion", "", opinion="dispute", about=about))],
    }[attack]
    pid = add_peer(c, "mallory", mallory.url, mallory.public_key, trust)
    summary = peer_pull.pull_peer(c.svc, pid)
    assert summary["error"] and "speaks only for itself" in summary["error"]
    copy = entry_of(c, origin_instance="alpha", origin_entry_id=entry["id"])
    assert (copy.status, copy.label, copy.disputed) == ("confirmed", "alpha's fake", False)
    with c.svc.db.session() as session:
        assert set(session.scalars(select(models.Opinion.instance))) == {"alpha"}
        assert session.scalars(select(models.AuditLog).where(models.AuditLog.action == "peer.pull-failed")).first()
    assert peer_row(c, pid).cursor == 0


def test_a_peer_cannot_sign_as_another_pinned_peer(alpha_entry_on_gamma) -> None:
    a, c, entry, mallory = alpha_entry_on_gamma
    mallory.name = "alpha"  # the whole page, events included, claims to be alpha
    mallory.events = [(1, payload("alpha", "retraction", entry["id"], "alpha's fake", 80))]
    summary = peer_pull.pull_peer(c.svc, add_peer(c, "mallory", mallory.url, mallory.public_key))
    assert "the name of peer 'alpha'" in summary["error"]
    assert entry_of(c, origin_instance="alpha", origin_entry_id=entry["id"]).status == "confirmed"


def test_a_peers_own_events_touch_only_its_own_entries_and_opinions(alpha_entry_on_gamma) -> None:
    a, c, entry, mallory = alpha_entry_on_gamma
    about = {"instance": "alpha", "entry_id": entry["id"]}
    mallory.events = [(1, payload("mallory", "retraction", entry["id"], "x", 80)),  # names alpha's id: not its own
                      (2, payload("mallory", "entry", entry["id"], "mallory's own", 81)),
                      (3, payload("mallory", "opinion", "", opinion="dispute", about=about, note="I disagree"))]
    pid = add_peer(c, "mallory", mallory.url, mallory.public_key, "review")
    assert peer_pull.pull_peer(c.svc, pid)["error"] is None
    copy = entry_of(c, origin_instance="alpha", origin_entry_id=entry["id"])
    assert (copy.status, copy.label) == ("confirmed", "alpha's fake")
    assert copy.disputed is True  # mallory's own dispute, shown under mallory's name
    with c.svc.db.session() as session:
        assert sorted(session.execute(select(models.Opinion.instance, models.Opinion.opinion).where(
            models.Opinion.entry_id == copy.id)).all()) == [("alpha", "confirm"), ("mallory", "dispute")]
    own = entry_of(c, origin_instance="mallory", origin_entry_id=entry["id"])
    assert (own.label, own.status) == ("mallory's own", "pending")
    assert peer_row(c, pid).instance == "mallory"


# --- freshness: replayed pages ----------------------------------------------------------------------


def test_a_captured_page_replayed_after_a_newer_one_is_refused(trio) -> None:
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    entry = confirmed_entry(a, "debunked", photo(90), "will be retracted")
    pid = add_peer(c, "alpha", a.base, a.public_key)
    assert peer_pull.pull_peer(c.svc, pid)["events"] == 1
    cursor = peer_row(c, pid).cursor
    captured = requests.get(f"{a.base}/api/v1/exchange/feed?since={cursor}&limit=200&v=2", timeout=10).content
    assert peer_pull.pull_peer(c.svc, pid)["error"] is None  # the next beat: a newer page, nothing new
    a.call("POST", f"/api/v1/entries/{entry['id']}/retract", "reviewer", json={"note": "it was real"})
    replayer, url = _serve(lambda path: captured)
    try:
        with c.svc.db.session() as session:
            session.get(models.Peer, pid).url = url
        summary = peer_pull.pull_peer(c.svc, pid)
    finally:
        replayer.shutdown()
    assert "older than the page already accepted" in summary["error"]
    assert "replayed" in peer_row(c, pid).last_error
    with c.svc.db.session() as session:
        session.get(models.Peer, pid).url = a.base
    assert peer_pull.pull_peer(c.svc, pid)["changed"] == 1  # the real feed still gets through
    assert entry_of(c, origin_entry_id=entry["id"]).status == "retracted"


def test_a_page_behind_the_head_already_seen_is_refused(trio) -> None:
    a, c = trio
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    confirmed_entry(a, "debunked", photo(91), "first")
    with a.svc.db.session() as session:
        first = session.scalar(select(models.FeedEvent.id))
    captured = requests.get(f"{a.base}/api/v1/exchange/feed?since={first}&limit=1&v=2", timeout=10).content
    assert json.loads(json.loads(captured)["signed"])["head"] == first
    confirmed_entry(a, "debunked", photo(92), "second")
    pid = add_peer(c, "alpha", a.base, a.public_key)
    assert peer_pull.pull_peer(c.svc, pid, max_pages=1, page_size=1)["events"] == 1  # saw head = second
    replayer, url = _serve(lambda path: captured)
    try:
        with c.svc.db.session() as session:
            session.get(models.Peer, pid).url = url
        summary = peer_pull.pull_peer(c.svc, pid, page_size=1)
    finally:
        replayer.shutdown()
    assert f"head {first} is behind the head" in summary["error"]
    assert c.count(models.BankEntry) == 1


@pytest.mark.parametrize("age", [timedelta(hours=-2), timedelta(hours=2)])
def test_a_page_signed_outside_the_freshness_window_is_refused(tmp_path, age) -> None:
    c = make_instance("gamma", tmp_path / "c")
    mallory = HostilePeer("mallory")
    try:
        mallory.events = [(1, payload("mallory", "entry", "m1", "stale", 93))]
        mallory.issued_at = datetime.now(timezone.utc) + age
        pid = add_peer(c, "mallory", mallory.url, mallory.public_key)
        summary = peer_pull.pull_peer(c.svc, pid)
        assert "freshness window" in summary["error"] and c.count(models.BankEntry) == 0
        mallory.issued_at = None
        assert peer_pull.pull_peer(c.svc, pid)["events"] == 1
    finally:
        mallory.close()


# --- page validation ---------------------------------------------------------------------------------


def _drop_payload(body: dict) -> None:
    del body["events"][0]["payload"]


@pytest.mark.parametrize("case,fragment", [
    ("too-many", "where at most 200 were asked for"),
    ("no-payload", "events.0.payload"),
    ("bank-kind", "bank_kind"),
    ("javascript-link", "source_links must be http(s) URLs"),
    ("cursor-back", "cursors only move forward"),
    ("out-of-order", "out of order"),
    ("bad-limit-echo", "where at most 200 were asked for"),
])
def test_a_bad_page_is_refused_recorded_and_stores_nothing(tmp_path, case, fragment) -> None:
    c = make_instance("gamma", tmp_path / "c")
    mallory = HostilePeer("mallory")
    try:
        events = [(i, payload("mallory", "entry", f"m{i}", f"entry {i}", 100 + i % 3)) for i in range(1, 4)]
        if case == "too-many":
            events = [(i, payload("mallory", "entry", f"m{i}", f"entry {i}", 100)) for i in range(1, 202)]
            mallory.tamper = lambda body: body.update(events=body["events"] + [
                {"cursor": 201, "payload": events[-1][1], "signature": mallory.sign(identity.canonical(events[-1][1]))}],
                next=201)
        elif case == "no-payload":
            mallory.tamper = _drop_payload
        elif case == "bank-kind":
            events[0] = (1, {**events[0][1], "bank_kind": "rumour"})
        elif case == "javascript-link":
            events[1] = (2, payload("mallory", "entry", "m2", "link", 101, source_links=["javascript:alert(1)"]))
        elif case == "cursor-back":
            mallory.tamper = lambda body: body.update(next=0) if body["since"] == 3 else None
        elif case == "out-of-order":
            mallory.tamper = lambda body: body["events"].reverse()
        elif case == "bad-limit-echo":
            mallory.tamper = lambda body: body.update(limit=5000)
        mallory.events = events
        pid = add_peer(c, "mallory", mallory.url, mallory.public_key)
        if case == "cursor-back":  # a first good pull to cursor 3, then a page that would move it to 0
            assert peer_pull.pull_peer(c.svc, pid)["events"] == 3
            mallory.events.append((4, payload("mallory", "entry", "m4", "entry 4", 104)))
        before = c.count(models.BankEntry)
        summary = peer_pull.pull_peer(c.svc, pid)
        assert summary["error"] and fragment in summary["error"], summary
        assert c.count(models.BankEntry) == before
        row = peer_row(c, pid)
        assert fragment in row.last_error and row.cursor == (3 if case == "cursor-back" else 0)
        with c.svc.db.session() as session:
            failed = session.scalars(select(models.AuditLog).where(models.AuditLog.action == "peer.pull-failed")).all()
            assert [f.target for f in failed] == [pid]
    finally:
        mallory.close()


# --- source_links: http(s) only ------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["javascript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
                                  " javascript:alert(1)", "https:evil", "ftp://example.org/x"])
def test_source_links_other_than_http_are_refused(tmp_path, link) -> None:
    inst = make_instance("alpha", tmp_path / "a")
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "d", "kind": "fake"})
    h = hashes.compute(photo(110))
    body = {"label": "x", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "source_links": [link]}
    response = inst.call("POST", "/api/v1/banks/d/entries", "reporter", json=body)
    assert response.status_code == 400 and "http(s)" in response.get_json()["error"]
    line = {"label": "x", "status": "pending", "pdq": h.pdq, "source_links": [link]}
    imported = inst.call("POST", "/api/v1/banks/d/import?format=jsonl", "admin", data=(
        '{"format": "credence-bank", "version": 1}\n' + json.dumps(line) + "\n").encode())
    assert imported.status_code == 400 and "line 2: source_links must be http(s) URLs" in json.dumps(imported.get_json())
    assert inst.count(models.BankEntry) == 0
    ok = inst.call("POST", "/api/v1/banks/d/entries", "reporter", json={**body, "source_links": ["https://example.org/a"]})
    assert ok.status_code == 201


def test_the_desk_never_renders_a_stored_script_link_as_a_link(data_dir) -> None:
    from tests.test_desk import login, make_app

    app, svc = make_app(data_dir)
    with svc.db.session() as session:  # as stored before links were checked
        bank = models.Bank(name="d", kind="fake", owner="t", description="", generation=0)
        session.add(bank)
        session.flush()
        entry = models.BankEntry(bank_id=bank.id, pdq="0" * 64, pdq_quality=90, label="old", submitted_by="t",
                                 source_links=["javascript:alert(1)", "https://example.org/debunk"])
        session.add(entry)
        session.flush()
        entry_id = entry.id
    client = app.test_client()
    login(client, "rosa")
    html = client.get(f"/desk/entries/{entry_id}").get_data(as_text=True)
    assert 'href="https://example.org/debunk"' in html
    assert "javascript:alert(1)" in html and 'href="javascript:' not in html
