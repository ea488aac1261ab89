"""One rule per exchange decision, whichever front end asks: the same peer, file or name is accepted or
refused the same way by the API and by the CLI, because both call server/exchange/service.py."""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner, Result

from server import models
from server.cli import main as cli_main
from server.exchange import bank_io
from server.exchange import service as exchange
from tests.conftest import env_for
from tests.test_exchange import Instance, make_instance

SHORT_KEY = base64.b64encode(bytes(31)).decode()  # base64 of the right length, one byte short of a key
URL = "http://127.0.0.1:9"


@pytest.fixture
def alpha(tmp_path: Path) -> tuple[Instance, Path]:
    return make_instance("alpha", tmp_path / "alpha"), tmp_path / "alpha"


def cli(data_dir: Path, *args: str) -> Result:
    """The CLI in this process, on the instance's own data dir (and so its database)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CREDENCE_")}
    env.update(env_for(data_dir, instance_name="alpha"))
    return CliRunner().invoke(cli_main, list(args), env=env)


def api_error(response: Any) -> str:
    return response.get_json()["error"]


def add_by_api(inst: Instance, **body: Any):
    return inst.call("POST", "/api/v1/peers", "admin", json=body)


def peers_by_api(inst: Instance) -> list[dict[str, Any]]:
    return inst.call("GET", "/api/v1/peers", "admin").get_json()["peers"]


@pytest.mark.parametrize("change,fragment", [
    ({"public_key": "x" * 44}, "public_key must be a base64 Ed25519 key of 32 bytes"),
    ({"public_key": SHORT_KEY}, "public_key must be a base64 Ed25519 key of 32 bytes"),
    ({"url": "ftp://127.0.0.1/feed"}, "url must be the http(s) base URL"),
    ({"url": "javascript:alert(1)"}, "url must be the http(s) base URL"),
    ({"url": "http://127.0.0.1:9/?since=5"}, "no query or fragment"),
    ({"banks": ["debunked,private"]}, "banks must be bank names"),
])
def test_a_bad_peer_is_refused_the_same_way_by_the_cli_and_the_api(alpha, change, fragment) -> None:
    inst, data_dir = alpha
    body = {"name": "beta", "url": URL, "public_key": inst.public_key, "trust": "review", "banks": [], **change}
    response = add_by_api(inst, **body)
    assert response.status_code == 400 and fragment in api_error(response)
    args = ["peers", "add", body["name"], body["url"], body["public_key"], "--trust", body["trust"]]
    done = cli(data_dir, *args, *[a for b in body["banks"] for a in ("--bank", b)])
    assert done.exit_code == 1 and f"Error: {api_error(response)}" in done.output
    assert peers_by_api(inst) == []


def test_a_peer_name_outside_the_rule_is_refused_by_both(alpha) -> None:
    inst, data_dir = alpha
    assert add_by_api(inst, name="Beta Two", url=URL, public_key=inst.public_key).status_code == 400
    done = cli(data_dir, "peers", "add", "Beta Two", URL, inst.public_key)
    assert done.exit_code == 1 and "peer names are 1-100 lower-case letters" in done.output
    assert cli(data_dir, "peers", "add", "beta\n", URL, inst.public_key).exit_code == 1  # no trailing newline
    assert peers_by_api(inst) == []


def test_a_peer_name_is_taken_whichever_front_end_took_it(alpha) -> None:
    inst, data_dir = alpha
    assert cli(data_dir, "peers", "add", "beta", URL, inst.public_key).exit_code == 0
    taken = add_by_api(inst, name="beta", url=URL, public_key=inst.public_key)
    assert taken.status_code == 409 and api_error(taken) == "a peer named 'beta' exists"
    assert add_by_api(inst, name="gamma", url=URL, public_key=inst.public_key).status_code == 201
    again = cli(data_dir, "peers", "add", "gamma", URL, inst.public_key)
    assert again.exit_code == 1 and "Error: a peer named 'gamma' exists" in again.output
    assert [p["name"] for p in peers_by_api(inst)] == ["beta", "gamma"]


def test_the_cli_and_the_api_show_the_same_peers_and_the_same_identity(alpha) -> None:
    inst, data_dir = alpha
    assert add_by_api(inst, name="zeta", url=URL, public_key=inst.public_key, banks=["debunked"]).status_code == 201
    assert cli(data_dir, "peers", "add", "beta", URL + "/", inst.public_key, "--trust", "trusted").exit_code == 0
    listed = json.loads(cli(data_dir, "peers", "list").output)
    assert [p["name"] for p in listed] == ["beta", "zeta"]  # by name, in both
    assert listed == peers_by_api(inst)
    assert (listed[0]["trust"], listed[1]["banks"]) == ("trusted", ["debunked"])
    # The manifest switch, by the CLI and the API alike.
    off = json.loads(cli(data_dir, "peers", "manifests", "beta", "off").output)
    assert (off["name"], off["manifests"], off["trust"]) == ("beta", False, "trusted")
    assert inst.call("PATCH", "/api/v1/peers/zeta", "admin", json={"manifests": False}).get_json()["manifests"] is False
    assert [p["manifests"] for p in peers_by_api(inst)] == [False, False]
    assert cli(data_dir, "peers", "manifests", "beta", "maybe").exit_code == 2
    assert cli(data_dir, "peers", "add", "eta", URL, inst.public_key, "--no-manifests").exit_code == 0
    assert [p["manifests"] for p in json.loads(cli(data_dir, "peers", "list").output)] == [False, False, False]
    card = json.loads(cli(data_dir, "identity").output)
    assert card == inst.call("GET", "/api/v1/exchange/identity").get_json()
    assert card == {"name": "alpha", "public_key": inst.public_key, "algorithm": "ed25519", "feed_version": 2,
                    "feed": "/api/v1/exchange/feed"}


def test_trust_and_removal_of_a_peer(alpha) -> None:
    inst, data_dir = alpha
    assert add_by_api(inst, name="beta", url=URL, public_key=inst.public_key).status_code == 201
    trusted = cli(data_dir, "peers", "trust", "beta", "trusted")
    assert trusted.exit_code == 0 and json.loads(trusted.output)["trust"] == "trusted"
    assert peers_by_api(inst)[0]["trust"] == "trusted"
    assert inst.count(models.AuditLog, models.AuditLog.action == "peer.trust") == 1
    assert cli(data_dir, "peers", "trust", "beta", "trusted").exit_code == 0  # no change, no audit row
    assert inst.count(models.AuditLog, models.AuditLog.action == "peer.trust") == 1
    assert cli(data_dir, "peers", "trust", "beta", "blind").exit_code == 2
    assert json.loads(cli(data_dir, "peers", "remove", "beta").output) == {"deleted": "beta"}
    assert peers_by_api(inst) == []
    gone = inst.call("DELETE", "/api/v1/peers/beta", "admin")
    assert gone.status_code == 404 and api_error(gone) == "no peer named 'beta'"
    for args in (("remove", "beta"), ("trust", "beta", "review"), ("pull", "beta")):
        done = cli(data_dir, "peers", *args)
        assert done.exit_code == 1 and "Error: no peer named 'beta'" in done.output, args
    assert api_error(inst.call("POST", "/api/v1/peers/beta/pull", "admin")) == "no peer named 'beta'"


def test_an_import_or_export_is_refused_the_same_way_by_both(alpha, tmp_path) -> None:
    inst, data_dir = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("pdq caf\xe9\n".encode("latin-1"))
    response = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin", data=latin1.read_bytes())
    assert response.status_code == 400 and api_error(response) == "the file is not UTF-8 (byte 7)"
    done = cli(data_dir, "banks", "import", "debunked", str(latin1), "--format", "te-lines")
    assert done.exit_code == 1 and "Error: the file is not UTF-8 (byte 7)" in done.output
    missing = inst.call("GET", "/api/v1/banks/nope/export", "reader")
    assert missing.status_code == 404 and api_error(missing) == "no bank named 'nope'"
    done = cli(data_dir, "banks", "export", "debunked", "nope")
    assert done.exit_code == 1 and "Error: no bank named 'nope'" in done.output


def _native(*records: dict[str, Any]) -> bytes:
    lines = [{"format": "credence-bank", "version": 1}, *records]
    return "".join(json.dumps(r) + "\n" for r in lines).encode()


def test_an_import_names_for_re_matching_only_the_entries_it_made_confirmed(alpha) -> None:
    inst, _ = alpha
    for name in ("debunked", "inbox"):
        inst.call("POST", "/api/v1/banks", "admin", json={"name": name, "kind": "fake"})
    before = inst.call("POST", "/api/v1/banks/debunked/entries", "reporter",
                       json={"label": "already here", "phash": "00000000000000ff"}).get_json()
    inst.call("POST", f"/api/v1/entries/{before['id']}/review", "reviewer", json={"action": "confirm", "note": "n"})
    data = _native({"label": "one", "status": "confirmed", "phash": "00000000000000f0"},
                   {"label": "two", "status": "pending", "phash": "00000000000000f1"},
                   {"label": "three", "status": "confirmed", "sha256": "ab" * 32})
    with inst.svc.db.session() as session:
        pending = exchange.import_file(session, "inbox", data, "jsonl", actor="t", keep_status=False)
    assert (pending.created, pending.confirmed, pending.statuses_kept) == (3, [], False)
    with inst.svc.db.session() as session:
        kept = exchange.import_file(session, "debunked", data, "jsonl", actor="t", keep_status=True)
        labels = {session.get(models.BankEntry, entry_id).label for entry_id in kept.confirmed}
    assert kept.created == 3 and labels == {"one", "three"}  # not "already here", not the pending "two"
    with inst.svc.db.session() as session:
        again = exchange.import_file(session, "debunked", data, "jsonl", actor="t", keep_status=True)
    assert (again.created, again.unchanged, again.confirmed) == (0, 3, [])
    with inst.svc.db.session() as session, pytest.raises(bank_io.ImportRejected):
        exchange.import_file(session, "nope", b"pdq xyz\n", "te-lines", actor="t", keep_status=True)  # file first


def test_a_readers_bank_filter_is_the_one_the_feed_reads() -> None:
    peer = models.Peer(name="beta", url="http://127.0.0.1:9/", public_key="k", banks=["debunked", "clips"], cursor=7)
    query = parse_qs(urlsplit(exchange.feed_url(peer, 50)).query)
    assert exchange.feed_url(peer, 50).startswith("http://127.0.0.1:9/api/v1/exchange/feed?")
    assert {k: v[0] for k, v in query.items() if k != "banks"} == {"since": "7", "limit": "50", "v": "2",
                                                                   "manifests": "1"}
    assert exchange.bank_filter(query["banks"][0]) == ["debunked", "clips"]
    peer.manifests = False  # its switch off: manifest events are not asked for
    assert "manifests" not in parse_qs(urlsplit(exchange.feed_url(peer, 50)).query)
    assert exchange.bank_filter("") is None and exchange.bank_filter(None) is None


# --- imports that never succeed silently (issue 21) ------------------------------------------------

PDQ_HEX = "f" * 64
TE_LINE = f"pdq {PDQ_HEX}\n".encode()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "image/jpeg", "multipart/mixed"])
def test_an_import_body_of_the_wrong_content_type_is_a_415(alpha, content_type) -> None:
    """curl --data-binary sends a form content type unless told otherwise: the body was then read as
    form fields and the import answered 200 created 0."""
    inst, _ = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    refused = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin", data=TE_LINE,
                        content_type=content_type)
    assert refused.status_code == 415
    assert f"not {content_type}" in api_error(refused) and "Content-Type: text/plain" in api_error(refused)
    assert inst.count(models.BankEntry) == 0
    for accepted in ("text/plain", "application/octet-stream", None):
        done = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin", data=TE_LINE,
                         content_type=accepted)
        assert done.status_code == 200, (accepted, done.get_json())
    assert inst.count(models.BankEntry) == 1


def test_a_multipart_import_needs_its_file_field(alpha) -> None:
    inst, _ = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    wrong = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin",
                      data={"upload": (io.BytesIO(TE_LINE), "hashes.txt")})
    assert wrong.status_code == 400 and api_error(wrong) == "a multipart import needs the file in the field 'file'"
    right = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin",
                      data={"file": (io.BytesIO(TE_LINE), "hashes.txt")})
    assert right.status_code == 200 and right.get_json() == {"created": 1, "unchanged": 0, "statuses_kept": True}


@pytest.mark.parametrize("fmt", bank_io.FORMATS)
@pytest.mark.parametrize("body", [b"", b"\n \n\t\n"])
def test_an_empty_file_is_refused_by_both(alpha, tmp_path, fmt, body) -> None:
    inst, data_dir = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    response = inst.call("POST", f"/api/v1/banks/debunked/import?format={fmt}", "admin", data=body)
    assert response.status_code == 400
    assert response.get_json() == {"error": "the file is empty; nothing imported", "details": ["the file is empty"]}
    multipart = inst.call("POST", f"/api/v1/banks/debunked/import?format={fmt}", "admin",
                          data={"file": (io.BytesIO(body), "empty")})
    assert multipart.status_code == 400 and api_error(multipart) == "the file is empty; nothing imported"
    empty = tmp_path / "empty"
    empty.write_bytes(body)
    done = cli(data_dir, "banks", "import", "debunked", str(empty), "--format", fmt)
    assert done.exit_code == 1 and "Error: the file is empty; nothing imported" in done.output
    assert inst.count(models.AuditLog, models.AuditLog.action == "bank.import") == 0


def test_a_signal_without_a_value_is_a_bad_line_for_both(alpha, tmp_path) -> None:
    """Such a line used to be skipped without a word."""
    inst, data_dir = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    body = f"pdq\nvideo_md5 \npdq {PDQ_HEX}\n".encode()
    response = inst.call("POST", "/api/v1/banks/debunked/import?format=te-lines", "admin", data=body,
                         content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["details"] == ["line 1: pdq: no value", "line 2: video_md5: no value"]
    lines = tmp_path / "lines.txt"
    lines.write_bytes(body)
    done = cli(data_dir, "banks", "import", "debunked", str(lines), "--format", "te-lines")
    assert done.exit_code == 1 and "line 1: pdq: no value" in done.output and "line 2: video_md5: no value" in done.output
    assert inst.count(models.BankEntry) == 0


def test_a_native_record_with_fields_of_the_wrong_type_is_a_bad_line(alpha) -> None:
    inst, _ = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    data = _native({"label": "a", "status": "confirmed", "phash": "00000000000000f0", "notes": 5},
                   {"label": "b", "status": "confirmed", "phash": "00000000000000f1", "reviewed_by": "r" * 201})
    response = inst.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=data)
    assert response.status_code == 400
    assert response.get_json()["details"] == ["line 2: notes must be a string",
                                              "line 3: reviewed_by must be a string of at most 200 characters"]
    assert inst.count(models.BankEntry) == 0


CSV_WITH_SKIPS = (
    "signal_type,signal_str,collab,category,tags\n"
    f"pdq,{'0' * 63}1,c,POSITIVE_CLASS,flood\n"
    f"pdq,{'0' * 63}2,c,NEGATIVE_CLASS,\n"
    f"pdq,{'0' * 63}3,c,SOMETHING_NEW,\n"
    f"pdq,{'0' * 63}4,c,INVESTIGATION_SEED,\n"
)
CSV_WARNINGS = ["line 3: skipped: category NEGATIVE_CLASS marks a false positive, not a known fake",
                "line 4: unknown category 'SOMETHING_NEW': imported pending, for review"]


def test_rows_not_imported_as_they_stand_are_warnings_in_both_answers(alpha, tmp_path) -> None:
    """A te-csv row marking a false positive used to be skipped without a word."""
    inst, data_dir = alpha
    for name in ("by-api", "by-cli"):
        inst.call("POST", "/api/v1/banks", "admin", json={"name": name, "kind": "fake"})
    response = inst.call("POST", "/api/v1/banks/by-api/import?format=te-csv", "admin", data=CSV_WITH_SKIPS.encode(),
                         content_type="text/csv")
    assert response.status_code == 200
    assert response.get_json() == {"created": 3, "unchanged": 0, "statuses_kept": True, "warnings": CSV_WARNINGS}
    source = tmp_path / "signals.csv"
    source.write_text(CSV_WITH_SKIPS)
    done = cli(data_dir, "banks", "import", "by-cli", str(source), "--format", "te-csv")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"created": 3, "unchanged": 0, "verdicts_changed": 0, "warnings": CSV_WARNINGS}
    statuses = {}
    with inst.svc.db.session() as session:
        for entry in session.query(models.BankEntry):
            statuses.setdefault(entry.pdq[-1], set()).add(entry.status)
    assert statuses == {"1": {"confirmed"}, "3": {"pending"}, "4": {"pending"}}  # no entry for the false positive


def test_a_file_without_entries_and_a_dropped_origin_are_said(alpha, tmp_path) -> None:
    inst, data_dir = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    header_only = inst.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=_native())
    assert header_only.get_json() == {"created": 0, "unchanged": 0, "statuses_kept": True,
                                      "warnings": ["the file has no entries: nothing to import"]}
    csv_header = tmp_path / "header.csv"
    csv_header.write_text("signal_type,signal_str,collab,category,tags\n")
    done = cli(data_dir, "banks", "import", "debunked", str(csv_header), "--format", "te-csv")
    assert done.exit_code == 0 and json.loads(done.stdout)["warnings"] == ["the file has no entries: nothing to import"]
    claimed = {"label": "claims a peer's entry", "status": "pending", "phash": "00000000000000f2",
               "origin": {"instance": "beta", "entry_id": "e1", "signature": "AAAA"}}
    data = _native({"label": "plain", "status": "pending", "phash": "00000000000000f3"}, claimed)
    first = inst.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=data).get_json()
    assert first == {"created": 2, "unchanged": 0, "statuses_kept": True,
                     "warnings": ["line 3: origin dropped: only an entry pulled from a peer's signed feed keeps one"]}
    again = inst.call("POST", "/api/v1/banks/debunked/import?format=jsonl", "admin", data=data).get_json()
    assert again == {"created": 0, "unchanged": 2, "statuses_kept": True}  # nothing dropped the second time


def test_warnings_are_capped_with_a_count(alpha) -> None:
    inst, _ = alpha
    inst.call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    rows = "".join(f"pdq,{i:064x},c,NEGATIVE_CLASS,\n" for i in range(1, 206))
    body = ("signal_type,signal_str,collab,category,tags\n" + rows).encode()
    answer = inst.call("POST", "/api/v1/banks/debunked/import?format=te-csv", "admin", data=body).get_json()
    assert answer["created"] == 0 and len(answer["warnings"]) == 201
    assert answer["warnings"][0].startswith("line 2: skipped") and answer["warnings"][199].startswith("line 201: skipped")
    assert answer["warnings"][200] == "... and 5 more warnings"
