"""Video entries in the known-fakes banks: submitted, reviewed, matched vPDQ-style, retracted, shared.

Real PostgreSQL and Redis; the worker's bank jobs run in-process (the Celery tasks are thin wrappers).
A checked video is recorded here with the same calls the pipeline's video rules make (video hashes ->
BankMatcher.match_video -> bank_match.evidence -> fuse -> records), so these tests depend only on the
banks; tests/test_video_pipeline.py checks videos through /checks.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from server import models
from server.config import PIPELINE_VERSION
from server.verdicts import Evidence, fuse
from tests.clips import make_clip, reencode
from tests.conftest import env_for, settings_from
from tests.helpers import api_with_keys, credence
from worker import jobs
from worker.banks import jobs as bank_jobs
from worker.stages import bank_match, video_match
from worker.stages.keyframes import VideoLimits, extract
from worker.stages.video_hashes import FrameHash, VideoHashes, video_hashes


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    """Encoding is the slow part: made once. The copy is what a platform serves: re-encoded, smaller."""
    original = make_clip(seed=21, seconds=3, scenes=3)
    return {"original": original, "copy": reencode(original, size=(256, 192)),
            "unrelated": make_clip(seed=22, seconds=3, scenes=3)}


@pytest.fixture
def env(data_dir: Path, pg_url: str, redis_url: str):
    return api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute", database_url=pg_url, redis_url=redis_url)))


def _hashes(svc, data: bytes) -> VideoHashes:
    info, keyframes = extract(data, VideoLimits.from_settings(svc.settings))
    return video_hashes(data, keyframes, info.sampled)


def _analysed(svc, data: bytes) -> str:
    """Record a checked video as the pipeline does; returns its sha256."""
    from server.checks import records

    sha256 = svc.store.put(data)
    vh = _hashes(svc, data)
    details = {"sha256": vh.sha256, "md5": vh.md5, "partial": False,
               "frames": [{"t": f.t, "pdq": f.pdq, "quality": f.quality} for f in vh.frames]}
    matcher = jobs.bank_matcher(svc)
    hits = matcher.match_video(vh.sha256, vh.md5, list(vh.frames))
    found = [Evidence(stage="hashes", kind="video-hashes", summary="Video hashes computed.", details=details)]
    verdict = fuse(found + bank_match.evidence(hits), sha256=sha256,
                   versions={"pipeline": PIPELINE_VERSION, "banks": "generation-%d" % matcher.generation[0]})
    with svc.db.session() as session:
        records.record_media(session, sha256=sha256, mime="video/mp4", size=len(data), hashes=details)
        records.record_verdict(session, verdict)
    svc.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
    return sha256


def _verdict(call, sha256: str) -> dict:
    """What a privacy-mode extension sees for these bytes (served from the verdict cache)."""
    result = call("POST", "/api/v1/lookup", "reader", json={"sha256": [sha256]}).get_json()["results"][0]
    assert result["status"] == "done"
    return result["verdict"]


def _bank_evidence(verdict: dict) -> list[dict]:
    return [e for e in verdict["evidence"] if e["stage"] == bank_match.STAGE]


def test_a_video_showing_a_banked_fake_photo_is_flagged_at_that_frame(env, clips) -> None:
    """A clip that shows a confirmed fake picture (a slideshow, a news segment) is matched by the keyframe
    that shows it, against the image entry; confirming the photo re-matches videos checked before."""
    from PIL import Image

    from tests.clips import scene_frames
    from worker.stages import hashes

    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "photos", "kind": "fake"})
    stored = {name: _analysed(svc, clips[name]) for name in ("copy", "unrelated")}
    # The original clip's second scene as its first frame shows it (frame 25, panned 2 px a frame), as a still.
    photo = Image.fromarray(np.roll(scene_frames(21, 3, 320, 240)[1], 25 * 2, axis=1))
    h = hashes.compute(photo)
    entry = call("POST", "/api/v1/banks/photos/entries", "reporter", json={
        "label": "Fabricated crowd photo", "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}).get_json()
    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                json={"action": "confirm", "note": "debunked"}).status_code == 200
    assert bank_jobs.rematch_entry(svc, entry["id"]) == 1  # the re-encoded copy shows it; the other clip does not
    verdict = _verdict(call, stored["copy"])
    assert verdict["level"] == "known-fake"
    (match,) = _bank_evidence(verdict)
    assert match["details"]["method"] == "frame-pdq" and match["details"]["entry_id"] == entry["id"]
    assert 0.9 <= match["details"]["frame_t"] < 2.1  # the second of three scenes, 1 s to 2 s
    assert match["summary"].startswith("A frame of this video matches a confirmed fake")
    assert "Fabricated crowd photo" in match["summary"] and f"at {match['details']['frame_t']:g} s" in match["summary"]
    assert _verdict(call, stored["unrelated"])["level"] == "no-evidence"

def test_a_still_of_a_banked_video_matches_its_keyframe(env, clips) -> None:
    """A picture lifted from a debunked clip is flagged against the clip's entry, at the keyframe it
    comes from; confirming the clip re-matches such stills checked before (found among stored images)."""
    from PIL import Image

    from server.checks import records
    from tests.clips import scene_frames
    from tests.images import jpeg_bytes
    from worker.stages import hashes

    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "clips", "kind": "fake"})
    vh = _hashes(svc, clips["original"])
    entry = call("POST", "/api/v1/banks/clips/entries", "reporter", json={
        "label": "Staged flood video", "md5": vh.md5,
        "frames": [{"t": f.t, "pdq": f.pdq, "quality": f.quality} for f in vh.frames]}).get_json()
    still = jpeg_bytes(Image.fromarray(np.roll(scene_frames(21, 3, 320, 240)[2], 50 * 2, axis=1)), 80)
    other = jpeg_bytes(Image.fromarray(scene_frames(22, 3, 320, 240)[0]), 80)
    shas = {}
    for name, data in (("still", still), ("other", other)):
        h, dihedral = hashes.compute_with_orientations(Image.open(io.BytesIO(data)))
        shas[name] = svc.store.put(data)
        with svc.db.session() as session:
            records.record_media(session, sha256=shas[name], mime="image/jpeg", size=len(data), hashes={
                "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash, "dihedral": dihedral})
    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                json={"action": "confirm", "note": "staged"}).status_code == 200
    with svc.db.session() as session:
        banked = session.get(models.BankEntry, entry["id"])
        session.expunge(banked)
    assert shas["still"] in bank_jobs.affected_media(svc, banked) and shas["other"] not in bank_jobs.affected_media(svc, banked)

    h, dihedral = hashes.compute_with_orientations(Image.open(io.BytesIO(still)))
    (hit,) = jobs.bank_matcher(svc).match(shas["still"], h, dihedral)
    assert (hit.method, hit.entry_id) == ("video-frame", entry["id"]) and 1.9 <= hit.frame_t < 3.0
    (ev,) = bank_match.evidence([hit])
    assert ev.supports.value == "known-fake" and ev.summary.startswith("Matches a frame of a confirmed fake")
    assert f"the banked video's frame at {hit.frame_t:g} s" in ev.summary
    h2, d2 = hashes.compute_with_orientations(Image.open(io.BytesIO(other)))
    assert jobs.bank_matcher(svc).match(shas["other"], h2, d2) == []

def test_video_entry_review_match_and_retract(env, clips) -> None:
    svc, call = env
    assert call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"}).status_code == 201
    stored = {name: _analysed(svc, data) for name, data in clips.items()}
    assert {name: _verdict(call, sha)["level"] for name, sha in stored.items()} == dict.fromkeys(stored, "no-evidence")

    form = {"label": "Staged flood video", "source_links": "https://desk/7"}
    assert call("POST", "/api/v1/banks/debunked/entries", "reader",
                data={**form, "file": (io.BytesIO(clips["original"]), "flood.mp4")}).status_code == 403
    made = call("POST", "/api/v1/banks/debunked/entries", "reporter",
                data={**form, "file": (io.BytesIO(clips["original"]), "flood.mp4")})
    assert made.status_code == 201
    entry = made.get_json()
    assert entry["status"] == "pending" and entry["hash_state"] == "pending"
    assert call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                json={"action": "confirm", "note": "too early"}).status_code == 409
    assert bank_jobs.hash_entry(svc, entry["id"]) == "ready"
    got = call("GET", f"/api/v1/entries/{entry['id']}", "reader").get_json()
    assert got["media_kind"] == "video" and got["pdq"] is None and got["phash"] is None
    assert got["md5"] == hashlib.md5(clips["original"]).hexdigest()
    assert got["sha256"] == hashlib.sha256(clips["original"]).hexdigest()
    assert [f["pdq"] for f in got["frames"]] == [f.pdq for f in _hashes(svc, clips["original"]).frames]

    matcher = jobs.bank_matcher(svc)
    copy = _hashes(svc, clips["copy"])
    assert matcher.match_video(copy.sha256, copy.md5, list(copy.frames)) == []  # pending never matches

    confirmed = call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer",
                     json={"action": "confirm", "note": "checked with the uploader"})
    assert confirmed.status_code == 200 and confirmed.get_json()["status"] == "confirmed"
    assert bank_jobs.rematch_entry(svc, entry["id"]) == 2  # the file and its copy; not the unrelated clip

    copy_verdict = _verdict(call, stored["copy"])
    assert copy_verdict["level"] == "known-fake"
    (match,) = _bank_evidence(copy_verdict)
    details = match["details"]
    assert details["entry_id"] == entry["id"] and details["method"] == "vpdq"
    assert details["query_share"] >= 0.7 and details["entry_share"] >= 0.7
    assert 0 <= details["best_distance"] <= svc.settings.vpdq_frame_threshold
    assert f"{details['frames_matched']} of {details['frames']} sampled frames match" in match["summary"]
    assert "Staged flood video" in match["summary"]

    same_verdict = _verdict(call, stored["original"])
    assert same_verdict["level"] == "known-fake"
    assert [e["details"]["method"] for e in _bank_evidence(same_verdict)] == ["sha256"]
    assert _verdict(call, stored["unrelated"])["level"] == "no-evidence"

    original = _hashes(svc, clips["original"])
    assert [h.method for h in matcher.match_video(None, original.md5, [])] == ["md5"]
    assert [h.method for h in matcher.match_video(None, None, list(original.frames))] == ["vpdq"]  # a partial read
    unrelated = _hashes(svc, clips["unrelated"])
    assert matcher.match_video(unrelated.sha256, unrelated.md5, list(unrelated.frames)) == []

    assert call("POST", f"/api/v1/entries/{entry['id']}/retract", "reviewer",
                json={"note": "the uploader was right"}).get_json()["status"] == "retracted"
    assert bank_jobs.rematch_entry(svc, entry["id"]) == 2
    assert _verdict(call, stored["copy"])["level"] == "no-evidence"
    assert _verdict(call, stored["original"])["level"] == "no-evidence"
    assert matcher.match_video(original.sha256, original.md5, list(original.frames)) == []
    history = call("GET", f"/api/v1/entries/{entry['id']}", "reader").get_json()["history"]
    assert [h["action"] for h in history] == ["entry.submit", "entry.confirm", "entry.retract"]


def test_original_video_by_values_is_news_not_a_verdict(env, clips) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "wire-originals", "kind": "original"})
    original = _hashes(svc, clips["original"])
    made = call("POST", "/api/v1/banks/wire-originals/entries", "reporter", json={
        "label": "Agency video 42", "source_links": ["https://agency.example/42"], "md5": original.md5,
        "frames": [{"pdq": f.pdq, "quality": f.quality, "t": f.t} for f in original.frames]})
    assert made.status_code == 201
    entry = made.get_json()
    assert entry["hash_state"] == "ready" and entry["media_kind"] == "video" and len(entry["frames"]) == len(original.frames)
    call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
    verdict = _verdict(call, _analysed(svc, clips["copy"]))
    assert verdict["level"] == "no-evidence"
    (near,) = [e for e in verdict["evidence"] if e["kind"] == "near-original"]
    assert "sampled frames match a registered original: Agency video 42" in near["summary"]
    assert "https://agency.example/42" in near["summary"] and near["details"]["method"] == "vpdq"


def test_video_entry_from_a_url_goes_through_the_guard(env, clips, media_server) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    url = media_server.add("/viral.mp4", clips["copy"], ctype="application/octet-stream")  # type is sniffed
    entry = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={"label": "viral", "url": url}).get_json()
    assert entry["hash_state"] == "pending"
    assert bank_jobs.hash_entry(svc, entry["id"]) == "ready"
    got = call("GET", f"/api/v1/entries/{entry['id']}", "reader").get_json()
    assert got["media_kind"] == "video" and got["md5"] == hashlib.md5(clips["copy"]).hexdigest() and got["frames"]
    broken = media_server.add("/broken.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    failed = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={"label": "b", "url": broken}).get_json()
    assert bank_jobs.hash_entry(svc, failed["id"]) == "failed"
    assert call("GET", f"/api/v1/entries/{failed['id']}", "reader").get_json()["hash_error"]


@pytest.mark.parametrize("body", [
    {"label": "x", "frames": ["zz"]},
    {"label": "x", "frames": [{"pdq": "0" * 64, "quality": 101}]},
    {"label": "x", "frames": ["ab" * 32], "pdq": "ab" * 32},  # a video is not matched by pdq
    {"label": "x", "md5": "abc"},
    {"label": "x", "md5": "0" * 32, "media_kind": "image"},
    {"label": "x", "frames": []},
])
def test_bad_video_submissions(env, body) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "b", "kind": "fake"})
    assert call("POST", "/api/v1/banks/b/entries", "reporter", json=body).status_code == 400


def test_video_entries_round_trip_through_every_format(env, clips) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    original = _hashes(svc, clips["original"])
    entry = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={
        "label": "Staged flood video", "tags": ["flood"], "sha256": original.sha256, "md5": original.md5,
        "frames": [f"{f.pdq},{f.quality},{f.t}" for f in original.frames]}).get_json()
    call("POST", f"/api/v1/entries/{entry['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})

    exported = call("GET", "/api/v1/banks/debunked/export?format=jsonl", "reader").get_data(as_text=True)
    (record,) = [json.loads(line) for line in exported.splitlines()[1:]]
    assert record["media_kind"] == "video" and record["md5"] == original.md5
    assert [(f["pdq"], f["quality"]) for f in record["frames"]] == [(f.pdq, f.quality) for f in original.frames]
    call("POST", "/api/v1/banks", "admin", json={"name": "copy", "kind": "fake"})
    assert call("POST", "/api/v1/banks/copy/import?format=jsonl", "admin",
                data=exported.encode()).get_json()["created"] == 1
    assert call("POST", "/api/v1/banks/copy/import?format=jsonl", "admin",
                data=exported.encode()).get_json()["unchanged"] == 1
    (back,) = [json.loads(line) for line in call("GET", "/api/v1/banks/copy/export?format=jsonl", "reader")
               .get_data(as_text=True).splitlines()[1:]]
    volatile = {"id", "bank", "origin", "reviewed_at", "submitted_at", "submitted_by", "reviewed_by", "review_note"}
    assert {k: v for k, v in back.items() if k not in volatile} == {k: v for k, v in record.items() if k not in volatile}

    lines = call("GET", "/api/v1/banks/debunked/export?format=te-lines", "reader").get_data(as_text=True).splitlines()
    assert lines[0] == f"video_md5 {original.md5}"
    signal_type, _, signal = lines[1].partition(" ")
    assert signal_type == "vpdq" and len(lines) == 2
    assert [s.split(",")[0] for s in json.loads(signal)] == [f.pdq for f in original.frames]  # ThreatExchange's form
    call("POST", "/api/v1/banks", "admin", json={"name": "te", "kind": "fake"})
    assert call("POST", "/api/v1/banks/te/import?format=te-lines", "admin",
                data="\n".join(lines).encode()).get_json()["created"] == 2  # one entry per signal, as TE has them
    csv_text = call("GET", "/api/v1/banks/debunked/export?format=te-csv", "reader").get_data(as_text=True)
    assert call("POST", "/api/v1/banks/te/import?format=te-csv", "admin",
                data=csv_text.encode()).get_json() == {"created": 0, "unchanged": 2, "statuses_kept": True}
    bad = call("POST", "/api/v1/banks/te/import?format=te-lines", "admin",
               data=b'vpdq ["' + b"ab" * 32 + b',101,0"]\nvideo_md5 xyz\n')
    assert bad.status_code == 400 and len(bad.get_json()["details"]) == 2
    mixed = json.dumps({**record, "id": "other", "pdq": "ab" * 32, "origin": None})
    refused = call("POST", "/api/v1/banks/te/import?format=jsonl", "admin",
                   data=(exported.splitlines()[0] + "\n" + mixed + "\n").encode())
    assert refused.status_code == 400 and "line 2" in json.dumps(refused.get_json())

    # The imported vPDQ signal alone matches a re-encoded copy (the entries arrived confirmed: admin import).
    copy = _hashes(svc, clips["copy"])
    hits = jobs.bank_matcher(svc).match_video(None, None, list(copy.frames))
    assert sorted(h.bank for h in hits) == ["copy", "debunked", "te"]
    assert {h.method for h in hits} == {"vpdq"}


def test_search_by_video_upload_and_by_values(env, clips) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    original = _hashes(svc, clips["original"])
    entry = call("POST", "/api/v1/banks/debunked/entries", "reporter", json={
        "label": "x", "md5": original.md5, "frames": [{"pdq": f.pdq, "quality": f.quality, "t": f.t}
                                                      for f in original.frames]}).get_json()
    found = call("POST", "/api/v1/search", "reader",
                 data={"file": (io.BytesIO(clips["copy"]), "q.mp4")}).get_json()
    assert found["query"]["md5"] == hashlib.md5(clips["copy"]).hexdigest() and found["query"]["frames"]
    (result,) = found["results"]
    assert result["entry"]["id"] == entry["id"] and result["entry"]["status"] == "pending"  # any status
    assert result["video"]["matches"] and result["video"]["query_share"] >= 0.7 and result["video"]["entry_share"] >= 0.7
    assert not result["exact"]
    unrelated = call("POST", "/api/v1/search", "reader", data={"file": (io.BytesIO(clips["unrelated"]), "u.mp4")})
    assert unrelated.get_json()["results"] == []
    by_md5 = call("POST", "/api/v1/search", "reader", json={"md5": original.md5}).get_json()
    assert by_md5["results"][0]["exact"] and by_md5["results"][0]["entry"]["id"] == entry["id"]
    assert call("POST", "/api/v1/search", "reader", json={"frames": ["nothex"]}).status_code == 400
    assert call("POST", "/api/v1/search", "reader", data={"file": (io.BytesIO(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64),
                                                                   "broken.mp4")}).status_code == 400


def test_cli_submits_and_searches_videos(tmp_path: Path, clips) -> None:
    env = {"CREDENCE_DATA_DIR": str(tmp_path / "d")}

    def cli(*args: str) -> str:
        done = credence(env, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("db", "upgrade")
    cli("banks", "create", "debunked", "--kind", "fake")
    (tmp_path / "fake.mp4").write_bytes(clips["original"])
    (tmp_path / "copy.mp4").write_bytes(clips["copy"])
    entry = json.loads(cli("banks", "submit", "debunked", "--label", "cli video", "--file", str(tmp_path / "fake.mp4")))
    assert entry["media_kind"] == "video" and entry["md5"] == hashlib.md5(clips["original"]).hexdigest()
    assert entry["frames"] and entry["pdq"] is None
    found = json.loads(cli("banks", "search", "--file", str(tmp_path / "copy.mp4")))
    assert found[0]["entry"]["id"] == entry["id"] and found[0]["video"]["matches"]
    by_md5 = json.loads(cli("banks", "search", "--md5", entry["md5"]))
    assert by_md5[0]["exact"]


# ---------------------------------------------------------------------------- the vPDQ rule itself

def _random_hex(rng: np.random.Generator) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def _flip(hex_hash: str, bits: int, rng: np.random.Generator) -> str:
    value = int(hex_hash, 16)
    for bit in rng.choice(256, bits, replace=False):
        value ^= 1 << int(bit)
    return f"{value:064x}"


def _frames(hexes: list[str], quality: int = 90) -> list[FrameHash]:
    return [FrameHash(t=float(i), pdq=h, quality=quality) for i, h in enumerate(hexes)]


@pytest.fixture
def planted() -> tuple[np.random.Generator, list[str]]:
    rng = np.random.default_rng(7)
    return rng, [_random_hex(rng) for _ in range(10)]


@pytest.mark.parametrize("near,matches", [(7, True), (6, False)])
def test_vpdq_share_just_above_and_below(planted, near: int, matches: bool) -> None:
    rng, base = planted
    entry = _frames([_flip(h, 20, rng) for h in base[:near]] + [_random_hex(rng) for _ in range(10 - near)])
    result = video_match.compare(_frames(base), entry, 31)
    assert (result.query_matched, result.entry_matched) == (near, near)
    assert result.query_share == result.entry_share == near / 10
    assert result.matches(0.7) is matches
    assert result.best_distance == 20 and len(result.pairs) == near


def test_vpdq_rule_weighs_the_query(planted) -> None:
    """vPDQ's rule, as ThreatExchange applies it (query share >= the match share, compared share >= 0%):
    a short clip whose frames all lie in a longer banked video is an excerpt of it and matches (issue 20:
    a 3 s excerpt of a 20 s banked clip); a long video that holds a banked clip among other footage does
    not. (Both directions were refused while the rule was two-sided.)"""
    rng, base = planted
    long_video = _frames([_flip(h, 10, rng) for h in base] + [_random_hex(rng) for _ in range(15)])
    result = video_match.compare(_frames(base), long_video, 31)
    assert result.query_share == 1.0 and result.entry_share == 0.4 and result.matches(0.7)
    reverse = video_match.compare(long_video, _frames(base), 31)
    assert reverse.query_share == 0.4 and reverse.entry_share == 1.0 and not reverse.matches(0.7)
    assert video_match.ENTRY_SHARE == 0.0


def test_vpdq_frame_threshold_and_quality(planted) -> None:
    rng, base = planted
    at = video_match.compare(_frames(base[:1]), _frames([_flip(base[0], 31, rng)]), 31)
    past = video_match.compare(_frames(base[:1]), _frames([_flip(base[0], 32, rng)]), 31)
    assert at.matches(1.0) and at.best_distance == 31 and not past.matches(0.01)
    # Flat frames (quality < 50) and repeated hashes count on neither side.
    query = _frames(base[:7]) + _frames([_random_hex(rng) for _ in range(5)], quality=20) + _frames(base[:3])
    result = video_match.compare(query, _frames(base[:7]), 31)
    assert (result.query_frames, result.query_matched, result.entry_frames) == (7, 7, 7)
    assert not video_match.compare(_frames(base, quality=10), _frames(base), 31).matches(0.1)


def test_index_matching_agrees_with_the_pure_rule(env, planted) -> None:
    """The matcher's in-memory frame index finds the same pairs as brute force, and applies the rule."""
    svc, call = env
    rng, base = planted
    call("POST", "/api/v1/banks", "admin", json={"name": "planted", "kind": "fake"})
    sets = {"above": [_flip(h, 25, rng) for h in base[:7]] + [_random_hex(rng) for _ in range(3)],
            "below": [_flip(h, 25, rng) for h in base[:6]] + [_random_hex(rng) for _ in range(4)]}
    ids = {}
    for label, hexes in sets.items():
        made = call("POST", "/api/v1/banks/planted/entries", "reporter", json={
            "label": label, "frames": [{"pdq": h, "quality": 90, "t": i} for i, h in enumerate(hexes)]}).get_json()
        call("POST", f"/api/v1/entries/{made['id']}/review", "reviewer", json={"action": "confirm", "note": "ok"})
        ids[label] = made["id"]
    (hit,) = jobs.bank_matcher(svc).match_video(None, None, _frames(base))
    assert hit.entry_id == ids["above"] and hit.method == "vpdq" and hit.label == "above"
    assert hit.video == video_match.compare(_frames(base), _frames(sets["above"]), 31)
