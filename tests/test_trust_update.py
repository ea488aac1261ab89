"""`credence trust update` against a local HTTP server, through the guarded fetcher."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from server.cli import main
from server.config import Settings
from server.verdicts import Level
from tests.c2pa_kit import make_ca, sign
from tests.helpers import SHARED_TRUST, shared_trust, MediaServer, make_jpeg
from tests.tsa import TimeStampAuthority
from worker.pipeline.runner import analyze



@pytest.fixture(scope="module")
def lists() -> dict[str, bytes]:
    shared_trust()
    return {name: (SHARED_TRUST / name).read_bytes() for name in ("C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem")}


def run_update(data_dir: Path, server: MediaServer, *, allow: bool = True, tsa_path: str = "/tsa.pem"):
    env = {
        "CREDENCE_DATA_DIR": str(data_dir),
        "CREDENCE_TRUST_LIST_URL": server.url("/trust.pem"),
        "CREDENCE_TRUST_TSA_LIST_URL": server.url(tsa_path),
        "CREDENCE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32" if allow else "",
    }
    return CliRunner().invoke(main, ["trust", "update"], env=env)


def test_update_downloads_records_and_takes_effect(lists: dict[str, bytes], media_server: MediaServer,
                                                    data_dir: Path) -> None:
    ca = make_ca()
    # Published lists that (in this test) also carry our CA's root and our time-stamp authority's.
    published = lists["C2PA-TRUST-LIST.pem"] + ca.root_pem
    with TimeStampAuthority(make_ca("Wire TSA")) as tsa:
        signed, _ = sign(make_jpeg(200, 150), ca.leaf("Field Camera", "Wire Photo"), tsa_url=tsa.url)
    published_tsa = lists["C2PA-TSA-TRUST-LIST.pem"] + tsa.root_pem
    media_server.add("/trust.pem", published, "text/plain")
    media_server.add("/tsa.pem", published_tsa, "application/x-pem-file")
    before = analyze(signed, Settings(data_dir=data_dir)).verdict
    assert before.level == Level.SIGNED_UNTRUSTED and "no trust list is loaded" in before.summary
    assert "not on your time-stamp trust list" in before.summary

    result = run_update(data_dir, media_server)
    assert result.exit_code == 0, result.output
    assert "C2PA-TRUST-LIST.pem: 31 certificates from http://127.0.0.1" in result.output
    assert "C2PA-TSA-TRUST-LIST.pem: 23 certificates" in result.output
    folder = data_dir / "trust"
    assert (folder / "C2PA-TRUST-LIST.pem").read_bytes() == published
    assert (folder / "C2PA-TSA-TRUST-LIST.pem").read_bytes() == published_tsa
    record = json.loads((folder / "trust-lists.json").read_text())
    assert record["updated_at"].endswith("+00:00")
    assert [(e["file"], e["url"], e["certificates"]) for e in record["lists"]] == [
        ("C2PA-TRUST-LIST.pem", media_server.url("/trust.pem"), 31),
        ("C2PA-TSA-TRUST-LIST.pem", media_server.url("/tsa.pem"), 23),
    ]
    assert media_server.hits == {"/trust.pem": 1, "/tsa.pem": 1}

    # The worker's default paths now point at the downloaded lists: no restart, no config.
    after = analyze(signed, Settings(data_dir=data_dir)).verdict
    assert after.level == Level.VERIFIED, after.summary
    details = [e for e in after.evidence if e.kind == "c2pa-trusted"][0].details
    assert details["trust"]["anchors"] == ["C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem"]
    # The downloaded TSA list is what makes the time-stamp count.
    assert details["timestamp"]["trusted"] is True and details["signing_time"] == tsa.stamped[0].isoformat()


def test_update_is_guarded_and_all_or_nothing(lists: dict[str, bytes], media_server: MediaServer,
                                              data_dir: Path) -> None:
    media_server.add("/trust.pem", lists["C2PA-TRUST-LIST.pem"], "text/plain")
    media_server.add("/tsa.pem", lists["C2PA-TSA-TRUST-LIST.pem"], "text/plain")
    media_server.add("/page.html", b"<!doctype html><html><body>moved</body></html>", "text/html")
    media_server.add("/fake.pem", b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
                     "text/plain")
    folder = data_dir / "trust"

    # Loopback is refused like any private address unless exempted: no request leaves.
    refused = run_update(data_dir, media_server, allow=False)
    assert refused.exit_code != 0 and "loopback" in refused.output
    assert media_server.total_hits() == 0 and not folder.exists()

    assert run_update(data_dir, media_server).exit_code == 0
    record = (folder / "trust-lists.json").read_bytes()
    for bad, words in (("/page.html", "expected PEM certificates, got an HTML page"),
                       ("/fake.pem", "not a list of PEM certificates")):
        failed = run_update(data_dir, media_server, tsa_path=bad)
        assert failed.exit_code != 0 and words in failed.output, failed.output
        # Nothing replaced: the lists and record in force stay as they were.
        assert (folder / "trust-lists.json").read_bytes() == record
        assert (folder / "C2PA-TSA-TRUST-LIST.pem").read_bytes() == lists["C2PA-TSA-TRUST-LIST.pem"]
