"""Known-fakes banks through the API with keys of each role, with the worker jobs run in-process
(the Celery tasks are thin wrappers over them; tests/test_integration.py runs them in real workers)."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from server.checks.urls import normalise
from tests.conftest import env_for, settings_from
from tests.images import jpeg_bytes, photo
from tests.helpers import CliResult, api_with_keys, credence
from tests.helpers import check_in_process as check_url
from worker.banks import jobs as bank_jobs


@pytest.fixture
def env(data_dir: Path):
    return api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute")))


def test_review_workflow_by_role(env, media_server, monkeypatch) -> None:
    svc, call = env
    monkeypatch.setattr("server.db.CHUNK_ROWS", 1)  # stored media and bank rows are scanned chunk by chunk
    original = photo(1)
    fake_url = media_server.add("/viral.jpg", jpeg_bytes(original, 85))
    copy_url = media_server.add("/repost-small.jpg", jpeg_bytes(original.resize((512, 384)), 60))
    flipped_url = media_server.add("/mirrored.jpg", jpeg_bytes(ImageOps.mirror(original), 80))

    assert call("POST", "/api/v1/banks", "reviewer", json={"name": "debunked", "kind": "fake"}).status_code == 403
    assert call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake",
                                                          "description": "Confirmed fakes"}).status_code == 201
    assert call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"}).status_code == 409
    assert call("GET", "/api/v1/banks").status_code == 401
    assert [b["name"] for b in call("GET", "/api/v1/banks", "reader").get_json()["banks"]] == ["debunked"]

    before = {u: check_url(svc, call, u)["level"] for u in (fake_url, copy_url, flipped_url)}
    assert set(before.values()) == {"no-evidence"}

    entry_form = {"label": "Staged flood photo", "notes": "Debunked by the desk", "source_links": "https://desk/1",
                  "file": (io.BytesIO(jpeg_bytes(original, 95)), "original.jpg")}
    assert call("POST", "/api/v1/banks/debunked/entries", "reader", data=dict(entry_form)).status_code == 403
    entry_form["file"] = (io.BytesIO(jpeg_bytes(original, 95)), "original.jpg")
    made = call("POST", "/api/v1/banks/debunked/entries", "reporter", data=entry_form)
    assert made.status_code == 201
    entry = made.get_json()
    assert entry["status"] == "pending" and entry["hash_state"] == "pending"
    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                json={"action": "confirm", "note": "too early"}).status_code == 409  # hashes not ready
    assert bank_jobs.hash_entry(svc, entry["id"]) == "ready"

    # Pending entries never make a known-fake.
    assert check_url(svc, call, fake_url)["level"] == "no-evidence"
    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reporter",
                json={"action": "confirm", "note": "mine"}).status_code == 403
    confirmed = call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                     json={"action": "confirm", "note": "checked with the photographer"})
    assert confirmed.status_code == 200 and confirmed.get_json()["status"] == "confirmed"
    assert bank_jobs.rematch_entry(svc, entry["id"]) == 3  # all three stored copies, no refetch

    hits = media_server.total_hits()
    after = {u: check_url(svc, call, u) for u in (fake_url, copy_url, flipped_url)}
    assert media_server.total_hits() == hits  # answered from the cache, updated by the re-match
    for verdict in after.values():
        assert verdict["level"] == "known-fake"
        assert "Staged flood photo" in verdict["summary"]
        match = [e for e in verdict["evidence"] if e["kind"] == "known-fake"][0]
        assert match["details"]["entry_id"] == entry["id"] and match["details"]["bank"] == "debunked"
    assert [e for e in after[flipped_url]["evidence"] if e["kind"] == "known-fake"][0]["details"]["transform"] != "as is"

    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                json={"action": "confirm", "note": "again"}).status_code == 409
    assert call("POST", f"/api/v1/entries/{entry['id']}/retract", "reviewer", json={"note": "photographer was wrong"}
                ).get_json()["status"] == "retracted"
    bank_jobs.rematch_entry(svc, entry["id"])
    assert check_url(svc, call, fake_url)["level"] == "no-evidence"

    history = call("GET", f"/api/v1/entries/{entry['id']}", "reader").get_json()["history"]
    assert [h["action"] for h in history] == ["entry.submit", "entry.confirm", "entry.retract"]
    assert history[1]["details"]["note"] == "checked with the photographer" and history[1]["actor"].startswith("key:")


def test_originals_bank_adds_news_not_a_verdict(env, media_server) -> None:
    svc, call = env
    from worker.stages import hashes

    call("POST", "/api/v1/banks", "admin", json={"name": "wire-originals", "kind": "original"})
    original = photo(2)
    h = hashes.compute(original)
    entry = call("POST", "/api/v1/banks/wire-originals/entries", "reporter",
                 json={"label": "Agency photo 123", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash,
                       "source_links": ["https://agency.example/123"]}).get_json()
    assert entry["hash_state"] == "ready"
    call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    edited = original.copy()
    edited.paste((255, 0, 0), (400, 300, 440, 340))  # a small change to a real photo
    verdict = check_url(svc, call, media_server.add("/edited.jpg", jpeg_bytes(edited)))
    assert verdict["level"] == "no-evidence"
    near = [e for e in verdict["evidence"] if e["kind"] == "near-original"]
    assert near and "Agency photo 123" in near[0]["summary"] and "https://agency.example/123" in near[0]["summary"]


def test_flat_images_never_match_on_pdq_alone(env, media_server) -> None:
    svc, call = env
    from worker.stages import hashes

    call("POST", "/api/v1/banks", "admin", json={"name": "flat", "kind": "fake"})
    grey = Image.new("RGB", (800, 600), (128, 128, 128))
    h = hashes.compute(grey)
    entry = call("POST", "/api/v1/banks/flat/entries", "reporter",
                 json={"label": "grey", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
    assert h.phash == "8000000000000000"  # every flat image's pHash: it must not match anything
    call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    other_grey = Image.new("RGB", (640, 480), (131, 129, 127))
    assert check_url(svc, call, media_server.add("/grey.png", _png(other_grey)))["level"] == "no-evidence"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_search_by_upload_and_by_hash(env) -> None:
    svc, call = env
    from worker.stages import hashes

    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    image = photo(4)
    h = hashes.compute(image)
    entry = call("POST", "/api/v1/banks/debunked/entries", "reporter",
                 json={"label": "x", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
    by_file = call("POST", "/api/v1/search", "reader",
                   data={"file": (io.BytesIO(jpeg_bytes(image.resize((700, 525)), 70)), "q.jpg")}).get_json()
    assert by_file["results"][0]["entry"]["id"] == entry["id"]
    assert by_file["results"][0]["entry"]["status"] == "pending"  # search shows every status
    assert by_file["results"][0]["pdq_distance"] <= 31
    mirrored = call("POST", "/api/v1/search", "reader",
                    data={"file": (io.BytesIO(jpeg_bytes(ImageOps.mirror(image))), "m.jpg")}).get_json()
    assert mirrored["results"][0]["entry"]["id"] == entry["id"]  # a flipped copy: found in its own orientation
    assert mirrored["results"][0]["pdq_distance"] <= 2
    by_hash = call("POST", "/api/v1/search", "reader", json={"pdq": h.pdq}).get_json()
    assert by_hash["results"][0]["pdq_distance"] == 0
    unrelated = call("POST", "/api/v1/search", "reader", json={"pdq": hashes.compute(photo(9)).pdq}).get_json()
    assert unrelated["results"] == []
    assert call("POST", "/api/v1/search", "reader", json={"pdq": "zz"}).status_code == 400
    assert call("POST", "/api/v1/search", "reader", json={}).status_code == 400
    assert call("POST", "/api/v1/search", json={"pdq": h.pdq}).status_code == 401


def _flip(hex_hash: str, bits: int) -> str:
    value = int(hex_hash, 16) ^ ((1 << bits) - 1)  # the lowest ``bits`` bits flipped
    return f"{value:0{len(hex_hash)}x}"


def test_search_scans_every_chunk_and_orders_hits(env, monkeypatch) -> None:
    svc, call = env
    monkeypatch.setattr("server.db.CHUNK_ROWS", 2)  # seven entries: four chunks
    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    base, sha = "a5" * 32, "c3" * 32
    ids = {}
    for name, bits in (("far", 70), ("d40", 40), ("d10", 10), ("same", 0), ("d63", 63), ("d64", 64)):
        ids[name] = call("POST", "/api/v1/banks/debunked/entries", "reporter",
                         json={"label": name, "pdq": _flip(base, bits), "pdq_quality": 100}).get_json()["id"]
    ids["bytes"] = call("POST", "/api/v1/banks/debunked/entries", "reporter",
                        json={"label": "bytes", "sha256": sha}).get_json()["id"]
    results = call("POST", "/api/v1/search", "reader", json={"pdq": base, "sha256": sha}).get_json()["results"]
    assert [(r["entry"]["label"], r["exact"], r["pdq_distance"]) for r in results] == [
        ("bytes", True, None), ("same", False, 0), ("d10", False, 10), ("d40", False, 40), ("d63", False, 63)]
    from server.banks import search as bank_search
    with svc.db.session() as session:  # orientations: an entry's distance is its smallest to any of them
        top = bank_search.search(session, sha256=None, pdq=[_flip(base, 100), _flip(base, 30)], phash=None, limit=2)
    assert [(r["entry"]["label"], r["pdq_distance"]) for r in top] == [("d40", 10), ("d10", 20)]


def test_reader_report_goes_through_the_guard_and_waits_for_review(env, media_server) -> None:
    svc, call = env
    url = media_server.add("/reported.jpg", jpeg_bytes(photo(5)))
    assert call("POST", "/api/v1/reports", "reader", json={"url": url}).status_code == 403
    made = call("POST", "/api/v1/reports", "reporter", json={"url": url, "note": "looks staged"})
    assert made.status_code == 201
    entry = made.get_json()
    assert entry["bank"] == "reader-reports" and entry["status"] == "pending" and entry["source_url"] == normalise(url)
    assert bank_jobs.hash_entry(svc, entry["id"]) == "ready"
    got = call("GET", f"/api/v1/entries/{entry['id']}", "reader").get_json()
    assert got["pdq"] and got["hash_state"] == "ready"
    hostile = call("POST", "/api/v1/reports", "reporter", json={"url": "http://169.254.169.254/x.jpg"}).get_json()
    assert bank_jobs.hash_entry(svc, hostile["id"]) == "failed"
    failed = call("GET", f"/api/v1/entries/{hostile['id']}", "reader").get_json()
    assert "link-local" in failed["hash_error"]
    assert call("POST", "/api/v1/reports", "reporter", json={"url": "file:///etc/passwd"}).status_code == 400


@pytest.mark.parametrize("body,status", [
    ({"label": "x"}, 400),
    ({"label": "x", "pdq": "abc"}, 400),
    ({"label": "x", "sha256": "g" * 64}, 400),
    ({"label": "", "pdq": "0" * 64}, 400),
    ({"label": "x", "url": "gopher://x"}, 400),
    ({"label": "x", "phash": "0" * 16, "surprise": 1}, 400),
])
def test_bad_submissions(env, body, status) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "b", "kind": "fake"})
    assert call("POST", "/api/v1/banks/b/entries", "reporter", json=body).status_code == status
    assert call("POST", "/api/v1/banks/nope/entries", "reporter", json={"label": "x", "phash": "0" * 16}).status_code == 404


def test_bank_admin_and_listing(env) -> None:
    svc, call = env
    assert call("POST", "/api/v1/banks", "admin", json={"name": "Bad Name", "kind": "fake"}).status_code == 400
    assert call("POST", "/api/v1/banks", "admin", json={"name": "b", "kind": "weird"}).status_code == 400
    call("POST", "/api/v1/banks", "admin", json={"name": "b", "kind": "fake"})
    for i in range(3):
        call("POST", "/api/v1/banks/b/entries", "reporter", json={"label": f"e{i}", "phash": f"{i:016x}"})
    listed = call("GET", "/api/v1/banks/b/entries?status=pending&limit=2", "reader").get_json()["entries"]
    assert len(listed) == 2
    assert call("GET", "/api/v1/banks/b", "reader").get_json()["entries"] == {"pending": 3}
    assert call("PATCH", "/api/v1/banks/b", "admin", json={"description": "new"}).get_json()["description"] == "new"
    assert call("GET", "/api/v1/banks/b/entries?status=bogus", "reader").status_code == 400
    assert call("DELETE", "/api/v1/banks/b", "admin").status_code == 200
    assert call("GET", "/api/v1/banks/b", "reader").status_code == 404


def test_cli_banks_round_trip(tmp_path: Path) -> None:
    import json

    env = {"CREDENCE_DATA_DIR": str(tmp_path / "d")}

    def cli(*args: str) -> CliResult:
        return credence(env, *args)

    assert cli("db", "upgrade").returncode == 0
    assert cli("banks", "create", "debunked", "--kind", "fake").returncode == 0
    image = tmp_path / "fake.jpg"
    image.write_bytes(jpeg_bytes(photo(7)))
    entry = json.loads(cli("banks", "submit", "debunked", "--label", "cli fake", "--file", str(image)).stdout)
    assert entry["status"] == "pending" and entry["pdq"]
    reviewed = json.loads(cli("banks", "review", entry["id"], "--confirm", "--note", "ok").stdout)
    assert reviewed["status"] == "confirmed" and reviewed["rematched_changed"] == 0
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(jpeg_bytes(photo(7).resize((640, 480)), 60))
    found = json.loads(cli("banks", "search", "--file", str(copy)).stdout)
    assert found[0]["entry"]["id"] == entry["id"] and found[0]["pdq_distance"] <= 31
    flipped = tmp_path / "flipped.jpg"
    flipped.write_bytes(jpeg_bytes(ImageOps.mirror(photo(7))))
    found = json.loads(cli("banks", "search", "--file", str(flipped)).stdout)
    assert found[0]["entry"]["id"] == entry["id"] and found[0]["pdq_distance"] <= 2
    again = cli("banks", "review", entry["id"], "--confirm", "--note", "twice")
    assert again.returncode == 1 and "cannot confirm an entry that is confirmed" in again.stderr
    listed = json.loads(cli("banks", "entries", "debunked", "--status", "confirmed").stdout)
    assert [e["label"] for e in listed] == ["cli fake"]


def test_cli_check_uses_the_local_banks(tmp_path: Path) -> None:
    import json

    env = {"CREDENCE_DATA_DIR": str(tmp_path / "d")}

    def cli(*args: str) -> str:
        done = credence(env, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    image = tmp_path / "fake.jpg"
    image.write_bytes(jpeg_bytes(photo(8)))
    assert json.loads(cli("check", str(image), "--json"))["level"] == "no-evidence"  # no database yet: no banks
    cli("db", "upgrade")
    cli("banks", "create", "debunked", "--kind", "fake")
    entry = json.loads(cli("banks", "submit", "debunked", "--label", "cli fake", "--file", str(image)))
    cli("banks", "review", entry["id"], "--confirm", "--note", "ok")
    assert json.loads(cli("check", str(image), "--json"))["level"] == "known-fake"
