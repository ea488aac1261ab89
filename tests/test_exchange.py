"""Sharing: export/import round trips, the PDQ ecosystem's formats, and two real instances
exchanging their signed feeds over loopback, each on its own PostgreSQL database."""
from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from server import models
from server.exchange import identity
from server.app import create_app
from server.auth import create_key
from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import CliResult, ServedApp, check_in_process, credence
from tests.images import jpeg_bytes, photo
from worker.exchange import peer_pull
from worker.stages import hashes

ROLES = ("reader", "reporter", "reviewer", "admin")


@dataclass
class Instance:
    name: str
    svc: Any
    client: Any
    keys: dict[str, str]
    base: str = ""
    server: Any = None

    def call(self, method: str, path: str, role: str | None = None, **kwargs):
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    @property
    def public_key(self) -> str:
        return self.call("GET", "/.well-known/credence-instance").get_json()["public_key"]

    def count(self, model, *where) -> int:
        with self.svc.db.session() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))


def make_instance(name: str, data_dir: Path, database_url: str | None = None, serve: bool = False,
                  **settings: str) -> Instance:
    overrides = {"instance_name": name, "rate_limit": "100000/minute", **settings}
    if database_url:
        overrides["database_url"] = database_url
    settings = settings_from(env_for(data_dir, **overrides))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    with svc.db.session() as session:
        identity.get_or_create(session, name)
    inst = Instance(name, svc, app.test_client(), {r: create_key(svc.db, role=r, name=r)[0] for r in ROLES})
    if serve:
        inst.server = ServedApp(app)
        inst.base = f"http://127.0.0.1:{inst.server.effective_port}"
    return inst


@pytest.fixture
def alpha_beta(tmp_path, pg_factory):
    a = make_instance("alpha", tmp_path / "a", pg_factory(), serve=True)
    b = make_instance("beta", tmp_path / "b", pg_factory(), serve=True)
    yield a, b
    for inst in (a, b):
        inst.server.close()


def confirmed_entry(inst: Instance, bank: str, image, label: str) -> dict:
    h = hashes.compute(image)
    entry = inst.call("POST", f"/api/v1/banks/{bank}/entries", "reporter", json={
        "label": label, "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "tags": ["flood"]}).get_json()
    assert inst.call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                     json={"action": "confirm", "note": "checked"}).status_code == 200
    return entry


def peer_id(inst: Instance, name: str) -> str:
    return next(p["id"] for p in inst.call("GET", "/api/v1/peers", "admin").get_json()["peers"] if p["name"] == name)


def test_two_instances_share_confirmations_and_retractions(alpha_beta, media_server) -> None:
    a, b = alpha_beta
    assert a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True}).status_code == 201
    a.call("POST", "/api/v1/banks", "admin", json={"name": "private", "kind": "fake"})
    original = photo(11)
    entry = confirmed_entry(a, "debunked", original, "Fake flood, 2026")
    confirmed_entry(a, "private", photo(12), "not shared")

    assert b.call("POST", "/api/v1/peers", "admin", json={
        "name": "alpha", "url": a.base, "public_key": a.public_key, "trust": "trusted"}).status_code == 201
    summary = peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))
    assert summary["error"] is None and summary["events"] == 1  # the private bank stays private
    with b.svc.db.session() as session:
        copy = session.scalars(select(models.BankEntry).where(models.BankEntry.origin_entry_id == entry["id"])).one()
        assert (copy.status, copy.origin_instance, copy.label) == ("confirmed", "alpha", "Fake flood, 2026")
    assert identity.verify(a.public_key, identity.canonical(_payload(a, entry["id"])), copy.origin_signature)

    # B flags a near-duplicate of A's fake.
    url = media_server.add("/resized.jpg", jpeg_bytes(original.resize((640, 480)), 70))
    verdict = check_in_process(b.svc, b.call, url)
    assert verdict["level"] == "known-fake" and "Fake flood, 2026" in verdict["summary"]

    # A retracts; B's next pull retracts the copy and B's cached verdict changes.
    a.call("POST", f"/api/v1/entries/{entry['id']}/retract", "reviewer", json={"note": "it was real"})
    assert peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))["changed"] == 1
    assert check_in_process(b.svc, b.call, url)["level"] == "no-evidence"
    assert media_server.hits["/resized.jpg"] == 1  # the verdict changed without a refetch
    assert peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))["events"] == 0  # nothing new, nothing twice


def _payload(inst: Instance, entry_id: str) -> dict:
    with inst.svc.db.session() as session:
        return session.scalars(select(models.FeedEvent.payload).where(models.FeedEvent.entry_id == entry_id)
                               .order_by(models.FeedEvent.id)).first()


class TamperingProxy:
    """Serves the peer's feed with one byte changed inside the signed text."""

    def __init__(self, upstream: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = requests.get(upstream + self.path, timeout=10).content
                at = body.index(b"Fake flood") + 1
                body = body[:at] + (b"b" if body[at:at + 1] != b"b" else b"c") + body[at + 1:]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_tampered_page_is_rejected_and_nothing_is_stored(alpha_beta) -> None:
    a, b = alpha_beta
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    confirmed_entry(a, "debunked", photo(13), "Fake flood, again")
    proxy = TamperingProxy(a.base)
    try:
        b.call("POST", "/api/v1/peers", "admin", json={"name": "alpha", "url": proxy.url, "public_key": a.public_key,
                                                         "trust": "trusted"})
        summary = peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))
    finally:
        proxy.httpd.shutdown()
    assert "signature" in summary["error"]
    assert b.count(models.BankEntry) == 0 and b.count(models.Bank) == 0
    peer = b.call("GET", "/api/v1/peers", "admin").get_json()["peers"][0]
    assert peer["cursor"] == 0 and "signature" in peer["last_error"]


def test_interrupted_pull_resumes_without_duplicates_and_disputes_travel_back(alpha_beta) -> None:
    a, b = alpha_beta
    a.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake", "shared": True})
    entries = [confirmed_entry(a, "debunked", photo(20 + i), f"fake {i}") for i in range(4)]
    b.call("POST", "/api/v1/peers", "admin", json={"name": "alpha", "url": a.base, "public_key": a.public_key,
                                                     "trust": "review"})
    first = peer_pull.pull_peer(b.svc, peer_id(b, "alpha"), max_pages=1, page_size=1)  # then "killed"
    assert first["events"] == 1 and b.count(models.BankEntry) == 1
    rest = peer_pull.pull_peer(b.svc, peer_id(b, "alpha"), page_size=2)
    assert rest["events"] == 3 and rest["pages"] == 2
    assert b.count(models.BankEntry) == 4  # no duplicates
    assert b.count(models.BankEntry, models.BankEntry.status == "pending") == 4  # untrusted peer: for review

    # B's reviewer rejects one copy: a dispute on B's feed, which A pulls and shows.
    with b.svc.db.session() as session:
        copy_id = session.scalars(select(models.BankEntry.id).where(
            models.BankEntry.origin_entry_id == entries[0]["id"])).one()
    b.call("POST", f"/api/v1/entries/{copy_id}/review", "reviewer", json={"action": "reject", "note": "it's real"})
    a.call("POST", "/api/v1/peers", "admin", json={"name": "beta", "url": b.base, "public_key": b.public_key})
    assert peer_pull.pull_peer(a.svc, peer_id(a, "beta"))["error"] is None
    disputed = a.call("GET", f"/api/v1/entries/{entries[0]['id']}", "reader").get_json()
    assert disputed["disputed"] is True and disputed["status"] == "confirmed"  # kept, shown, not overwritten
    assert a.call("GET", f"/api/v1/entries/{entries[1]['id']}", "reader").get_json()["disputed"] is False


def test_feed_page_is_signed_and_well_known_identity(tmp_path) -> None:
    a = make_instance("alpha", tmp_path / "a")
    a.call("POST", "/api/v1/banks", "admin", json={"name": "d", "kind": "fake", "shared": True})
    confirmed_entry(a, "d", photo(30), "x")
    legacy = json.loads(a.call("GET", "/api/v1/exchange/feed?since=0").get_json()["signed"])
    assert legacy["v"] == 1 and "issued_at" not in legacy  # what readers of version 1 still get
    page = a.call("GET", "/api/v1/exchange/feed?since=0&v=2").get_json()
    body = json.loads(page["signed"])
    assert identity.verify(a.public_key, page["signed"].encode(), page["signature"])
    assert body["instance"] == "alpha" and body["events"][0]["payload"]["kind"] == "entry"
    assert body["v"] == 2 and body["head"] == body["next"] and body["limit"] == 200 and body["issued_at"]
    with pytest.raises(peer_pull.FeedRejected, match="version 1"):
        peer_pull.verify_page(json.dumps(a.call("GET", "/api/v1/exchange/feed?since=0").get_json()).encode(),
                              a.public_key, 0)
    assert peer_pull.verify_page(json.dumps(page).encode(), a.public_key, 0)["next"] == body["next"]
    with pytest.raises(peer_pull.FeedRejected):
        peer_pull.verify_page(json.dumps(page).encode(), a.public_key, 5)  # not the page we asked for
    assert a.call("GET", "/api/v1/exchange/feed?since=-1").status_code == 400


# --- export / import --------------------------------------------------------------------------------


@pytest.fixture
def solo(tmp_path) -> Instance:
    inst = make_instance("alpha", tmp_path / "solo")
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    for i, action in enumerate(["confirm", "reject", None, "confirm"]):
        h = hashes.compute(photo(40 + i))
        entry = inst.call("POST", "/api/v1/banks/debunked/entries", "reporter", json={
            "label": f"entry {i} — ünïcode", "notes": "line1\nline2", "tags": ["a", "b"], "source_links": ["https://x/1"],
            "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
        if action:
            inst.call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": action, "note": "n"})
    return inst


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()[1:]]


def test_native_round_trip_is_lossless_and_idempotent(solo, tmp_path) -> None:
    exported = solo.call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data(as_text=True)
    header = json.loads(exported.splitlines()[0])
    assert header["format"] == "credence-bank" and header["version"] == 1 and header["instance"] == "alpha"
    other = make_instance("beta", tmp_path / "beta")
    other.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    first = other.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=exported.encode())
    assert first.get_json() == {"created": 4, "unchanged": 0, "statuses_kept": True}
    again = other.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=exported.encode())
    assert again.get_json()["created"] == 0 and again.get_json()["unchanged"] == 4
    back = _records(other.call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data(as_text=True))
    original = _records(exported)
    volatile = {"id", "origin", "reviewed_at", "submitted_at", "submitted_by", "reviewed_by", "review_note"}
    assert [{k: v for k, v in r.items() if k not in volatile} for r in back] == \
           [{k: v for k, v in r.items() if k not in volatile} for r in original]
    assert [r["status"] for r in back] == ["confirmed", "rejected", "pending", "confirmed"]
    # The copy remembers the file's entries as its origin, so a second round trip is idempotent too.
    re_export = other.call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data()
    assert other.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin",
                      data=re_export).get_json()["created"] == 0


def test_reporter_imports_arrive_pending(solo, tmp_path) -> None:
    exported = solo.call("GET", "/api/v1/export?format=jsonl", "reader").get_data()
    other = make_instance("beta", tmp_path / "beta")
    other.call("POST", "/api/v1/banks", "admin", json={"name": "in", "kind": "fake"})
    assert other.call("POST", "/api/v1/banks/in/import?format=jsonl", "reader", data=exported).status_code == 403
    assert other.call("POST", "/api/v1/banks/in/import?format=jsonl", "reporter", data=exported).get_json()["statuses_kept"] is False
    assert other.count(models.BankEntry, models.BankEntry.status != "pending") == 0


@pytest.mark.parametrize("body,fragment", [
    (b'{"format": "credence-bank", "version": 9}\n', "version 9"),
    (b"not json\n", "line 1: not JSON"),
    (b'{"format": "credence-bank", "version": 1}\n{"label": "x", "status": "confirmed", "pdq": "XYZ"}\n', "line 2: pdq"),
    (b'{"format": "credence-bank", "version": 1}\n{"label": "x", "status": "weird", "phash": "00000000000000ff"}\n',
     "line 2: status"),
    (b'{"format": "credence-bank", "version": 1}\n{"label": "", "status": "pending"}\n', "line 2: label"),
    (b"\xff\xfe garbage", "not UTF-8"),
])
def test_bad_imports_report_lines_and_import_nothing(solo, body, fragment) -> None:
    good = solo.call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data()
    before = solo.count(models.BankEntry)
    response = solo.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=body + good.split(b"\n", 1)[1])
    assert response.status_code == 400
    text = json.dumps(response.get_json())
    assert fragment in text
    assert solo.count(models.BankEntry) == before


def test_ecosystem_formats_export_and_import(solo, tmp_path) -> None:
    lines = solo.call("GET", "/api/v1/banks/debunked/export?format=te-lines", "reader").get_data(as_text=True)
    assert lines.count("\n") == 2 and all(line.startswith("pdq ") and len(line) == 68 for line in lines.splitlines())
    csv_text = solo.call("GET", "/api/v1/banks/debunked/export?format=te-csv", "reader").get_data(as_text=True)
    rows = csv_text.splitlines()
    assert rows[0] == "signal_type,signal_str,collab,category,tags"
    assert sorted(r.split(",")[3] for r in rows[1:]) == ["INVESTIGATION_SEED", "NEGATIVE_CLASS", "POSITIVE_CLASS",
                                                        "POSITIVE_CLASS"]
    other = make_instance("beta", tmp_path / "beta")
    other.call("POST", "/api/v1/banks", "admin", json={"name": "te", "kind": "fake"})
    assert other.call("POST", "/api/v1/banks/te/import?format=te-lines", "admin", data=lines.encode()).get_json()["created"] == 2
    assert other.call("POST", "/api/v1/banks/te/import?format=te-csv", "admin", data=csv_text.encode()).get_json() == {
        "created": 1, "unchanged": 2, "statuses_kept": True,  # the rejected entry's row is said to be skipped
        "warnings": ["line 3: skipped: category NEGATIVE_CLASS marks a false positive, not a known fake"]}
    bad = other.call("POST", "/api/v1/banks/te/import?format=te-lines", "admin", data=b"md5 abc\npdq 12\n")
    assert bad.status_code == 400 and len(bad.get_json()["details"]) == 2


def test_threatexchange_hashes_match_ours(tmp_path, media_server) -> None:
    """The ecosystem's own hasher and ours agree; its line file imports and matches in our pipeline."""
    from threatexchange.signal_type.pdq import pdq_hasher as te_pdq

    inst = make_instance("alpha", tmp_path / "te")
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "te", "kind": "fake"})
    images = [jpeg_bytes(photo(60 + i)) for i in range(5)]
    te_hashes = [te_pdq.pdq_from_bytes(data) for data in images]
    for data, (te_hex, te_quality) in zip(images, te_hashes):
        from PIL import Image

        ours_full, quality = hashes.pdq(Image.open(io.BytesIO(data)))
        assert ours_full == te_hex and quality == te_quality  # same bits, same order, same quality
        # The PDQ we store, match and export is the reference's own (worker/stages/pdq.py).
        assert hashes.compute(Image.open(io.BytesIO(data)).convert("RGB")).pdq == te_hex
    line_file = "".join(f"pdq {h}\n" for h, _ in te_hashes)
    assert inst.call("POST", "/api/v1/banks/te/import?format=te-lines", "admin", data=line_file.encode()).get_json()["created"] == 5
    url = media_server.add("/recompressed.jpg", jpeg_bytes(photo(62).resize((800, 600)), 60))
    assert check_in_process(inst.svc, inst.call, url)["level"] == "known-fake"


def test_cli_export_import_and_identity(solo, tmp_path) -> None:
    def cli(data_dir: Path, *args: str) -> CliResult:
        return credence({"CREDENCE_DATA_DIR": str(data_dir), "CREDENCE_INSTANCE_NAME": "gamma"}, *args)

    dump = tmp_path / "debunked.jsonl"
    dump.write_bytes(solo.call("GET", "/api/v1/banks/debunked/export", "reader").get_data())
    target = tmp_path / "gamma"
    assert cli(target, "db", "upgrade").returncode == 0
    assert cli(target, "banks", "create", "copy", "--kind", "fake").returncode == 0
    imported = json.loads(cli(target, "banks", "import", "copy", str(dump)).stdout)
    assert imported["created"] == 4
    out = tmp_path / "again.jsonl"
    assert cli(target, "banks", "export", "copy", "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 5
    bad = tmp_path / "bad.txt"
    bad.write_text("pdq nothex\n")
    failed = cli(target, "banks", "import", "copy", str(bad), "--format", "te-lines")
    assert failed.returncode == 1 and "line 1: pdq" in failed.stderr
    me = json.loads(cli(target, "identity").stdout)
    assert me["name"] == "gamma" and len(me["public_key"]) == 44


def test_peer_admin_api(tmp_path) -> None:
    a = make_instance("alpha", tmp_path / "a")
    body = {"name": "beta", "url": "http://127.0.0.1:9", "public_key": a.public_key}
    assert a.call("POST", "/api/v1/peers", "reviewer", json=body).status_code == 403
    assert a.call("POST", "/api/v1/peers", "admin", json={**body, "public_key": "x" * 44}).status_code == 400
    assert a.call("POST", "/api/v1/peers", "admin", json={**body, "trust": "blind"}).status_code == 400
    assert a.call("POST", "/api/v1/peers", "admin", json=body).status_code == 201
    assert a.call("POST", "/api/v1/peers", "admin", json=body).status_code == 409
    assert a.call("POST", "/api/v1/peers/beta/pull", "admin").status_code == 202
    assert a.call("POST", "/api/v1/peers/nope/pull", "admin").status_code == 404
    # The peer is down: the pull records why, and nothing else changes.
    summary = peer_pull.pull_peer(a.svc, peer_id(a, "beta"))
    assert summary["error"] and a.call("GET", "/api/v1/peers", "admin").get_json()["peers"][0]["last_error"]
    assert a.call("DELETE", "/api/v1/peers/beta", "admin").status_code == 200
    assert a.call("GET", "/api/v1/peers", "admin").get_json()["peers"] == []


def test_a_video_entry_travels_with_its_keyframe_hashes(alpha_beta) -> None:
    from tests.clips import make_clip
    from worker.stages.keyframes import VideoLimits, extract
    from worker.stages.video_hashes import video_hashes

    a, b = alpha_beta
    a.call("POST", "/api/v1/banks", "admin", json={"name": "clips", "kind": "fake", "shared": True})
    clip = make_clip(seed=21, seconds=2.0, scenes=2)
    info, keyframes = extract(clip, VideoLimits(max_keyframes=6))
    vh = video_hashes(clip, keyframes, info.sampled)
    entry = a.call("POST", "/api/v1/banks/clips/entries", "reporter", json={
        "label": "Staged clip", "md5": vh.md5, "sha256": vh.sha256,
        "frames": [{"t": f.t, "pdq": f.pdq, "quality": f.quality} for f in vh.frames]}).get_json()
    assert a.call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                  json={"action": "confirm", "note": "staged"}).status_code == 200
    b.call("POST", "/api/v1/peers", "admin", json={"name": "alpha", "url": a.base, "public_key": a.public_key,
                                                   "trust": "trusted"})
    assert peer_pull.pull_peer(b.svc, peer_id(b, "alpha"))["error"] is None
    with b.svc.db.session() as session:
        copy = session.scalars(select(models.BankEntry).where(models.BankEntry.origin_entry_id == entry["id"])).one()
        assert (copy.status, copy.media_kind, copy.md5) == ("confirmed", "video", vh.md5)
        assert [f["pdq"] for f in copy.frames_list()] == [f.pdq for f in vh.frames]
    from worker.banks.matcher import BankMatcher

    assert [h.method for h in BankMatcher(b.svc.db, 31, 6).match_video(None, None, list(vh.frames))] == ["vpdq"]
