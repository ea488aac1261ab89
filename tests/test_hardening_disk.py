"""Issue 15, major 3: anonymous uploads must not fill the disk; the desk takes the videos the API takes.

Reproduced as reported: random bytes behind an MP4 ``ftyp`` header, uploaded anonymously, were kept in
the media store for good. Now bytes nothing could be read from are dropped once their `unavailable`
verdict is recorded, uploads are charged against a per-client byte quota first (real Redis), and the
store has a budget whose eviction keeps what bank entries, pending checks, desk checks and verdicts need.
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

from server import models
from server.media_store import MediaStore
from tests.conftest import env_for, settings_from
from tests.helpers import api_with_keys, make_jpeg
from tests.test_desk import login, make_app, token
from worker import jobs, media_jobs

FTYP = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"


def fake_video(seed: int, size: int = 400_000) -> bytes:
    """What the attack sent: an MP4 header, then random bytes."""
    body = hashlib.sha256(bytes([seed])).digest() * ((size - len(FTYP)) // 32 + 1)
    return FTYP + body[:size - len(FTYP)]


def upload(call, data: bytes, role: str | None = None, name: str = "clip.mp4"):
    return call("POST", "/api/v1/checks/upload", role=role, data={"file": (io.BytesIO(data), name)},
                content_type="multipart/form-data")


def test_random_byte_videos_uploaded_anonymously_are_not_kept(data_dir: Path) -> None:
    svc, call = api_with_keys(settings_from(env_for(data_dir, rate_limit="1000/minute")))
    stored = []
    for _ in range(3):
        data = FTYP + os.urandom(1_500_000)
        sha = hashlib.sha256(data).hexdigest()
        response = upload(call, data)
        assert response.status_code == 200, response.get_json()
        assert svc.store.get(sha) is not None  # kept until it has been looked at
        assert jobs.analyze_media(svc, sha, owner="test") == "unavailable"
        check = call("GET", f"/api/v1/checks/{response.get_json()['results'][0]['check_id']}").get_json()
        assert check["status"] == "done" and check["verdict"]["level"] == "unavailable"
        stored.append(sha)
        # the same bytes again: answered from the record, and still not stored
        again = upload(call, data).get_json()["results"][0]
        assert again["status"] == "done" and again["verdict"]["level"] == "unavailable"
    assert [s for s in stored if svc.store.path(s).exists()] == []
    assert list(svc.store.files()) == []


def test_fetched_bytes_seen_before_as_unreadable_are_not_kept(data_dir: Path, media_server) -> None:
    """The same junk behind a second URL: its fetch finds the recorded `unavailable` verdict and keeps nothing."""
    svc, call = api_with_keys(settings_from(env_for(data_dir, rate_limit="1000/minute")))
    data = fake_video(3)
    sha = hashlib.sha256(data).hexdigest()
    first, second = (media_server.add(f"/junk{i}.mp4", data, "video/mp4") for i in (1, 2))
    check_ids = []
    for url in (first, second):
        result = call("POST", "/api/v1/checks", json={"urls": [url]}).get_json()["results"][0]
        check_ids.append(result["check_id"])
    assert jobs.fetch_check(svc, check_ids[0]) == sha
    assert jobs.analyze_media(svc, sha, owner="test") == "unavailable"
    assert not svc.store.path(sha).exists()
    assert jobs.fetch_check(svc, check_ids[1]) == sha
    assert call("GET", f"/api/v1/checks/{check_ids[1]}").get_json()["verdict"]["level"] == "unavailable"
    assert not svc.store.path(sha).exists()


def test_a_real_image_upload_is_kept(data_dir: Path) -> None:
    svc, call = api_with_keys(settings_from(env_for(data_dir, rate_limit="1000/minute")))
    data = make_jpeg(seed=11)
    sha = hashlib.sha256(data).hexdigest()
    assert upload(call, data, name="a.jpg").status_code == 200
    assert jobs.analyze_media(svc, sha, owner="test") != "unavailable"
    assert svc.store.get(sha) == data


def test_anonymous_upload_quota_answers_429_and_keeps_nothing(data_dir: Path, redis_url: str) -> None:
    settings = settings_from(env_for(data_dir, redis_url=redis_url, rate_limit="1000/minute",
                                     upload_quota_anonymous_bytes="1000000",
                                     upload_quota_keyed_bytes="10000000"))
    svc, call = api_with_keys(settings)
    for i in range(2):
        response = upload(call, fake_video(i, 400_000))
        assert response.status_code == 200, response.get_json()
    refused = fake_video(7, 400_000)  # 1.2 MB in all: over the 1 MB anonymous quota
    response = upload(call, refused)
    assert response.status_code == 429
    message = response.get_json()["error"]
    assert "upload quota used up" in message and "anonymous" in message and "API key" in message
    assert svc.store.get(hashlib.sha256(refused).hexdigest()) is None
    # the quota is per client: a keyed client still uploads, against its own, larger quota
    assert upload(call, refused, role="reader").status_code == 200
    # one file larger than the whole quota is refused however empty the window is
    huge = upload(call, fake_video(9, 1_200_000), role=None)
    assert huge.status_code == 429 and "larger than the upload quota" in huge.get_json()["error"]


def _age(store: MediaStore, sha: str, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(store.path(sha), (old, old))


def test_eviction_over_budget_keeps_what_is_referenced(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, media_store_max_bytes="5000"))
    svc, call = api_with_keys(settings)
    store = svc.store
    blob = {name: store.put(name.encode().ljust(1000, b".")) for name in
            ("banked", "pending", "thumb", "heatmap", "desk", "subject", "orphan", "young", "recovery")}
    for name, sha in blob.items():
        if name != "young":
            _age(store, sha)
    with svc.db.session() as session:
        for sha in (blob["subject"], blob["pending"], blob["desk"]):
            session.add(models.Media(sha256=sha, mime="image/jpeg", size=1000))
        session.flush()
        bank = models.Bank(name="fakes", kind="fake")
        session.add(bank)
        session.flush()
        session.add(models.BankEntry(bank_id=bank.id, sha256=blob["banked"], label="x", submitted_by="t"))
        session.add(models.Check(source="upload", sha256=blob["pending"], status="pending"))
        body = {"level": "no-evidence", "sha256": blob["subject"], "evidence": [
            {"stage": "c2pa", "kind": "c2pa-valid", "details": {"thumbnails": {"c2pa.thumbnail": {
                "sha256": blob["thumb"], "format": "jpeg"}}, "hashes": {"sha256": blob["subject"]}}},
            {"stage": "detect", "kind": "detector", "details": {"heatmap": {"sha256": blob["heatmap"]}}}]}
        verdict = models.Verdict(sha256=blob["subject"], level="no-evidence", pipeline_version="x", body=body)
        session.add(verdict)
        session.flush()
        done = models.Check(source="upload", sha256=blob["desk"], status="done")
        session.add(done)
        session.flush()
        session.add(models.DeskCheck(check_id=done.id, name="desk.jpg"))
        # The manifest repository serves this thumbnail with a recovery, whatever became of the verdict.
        session.add(models.ProvenanceManifest(sha256="ee" * 32, label="urn:c2pa:x", state="trusted", signer={},
                                              thumbnail_sha256=blob["recovery"]))
    ready = call("GET", "/readyz").get_json()
    assert "media_store" not in ready["checks"]  # not measured yet

    usage = media_jobs.evict_media(svc)

    left = {name for name, sha in blob.items() if store.path(sha).exists()}
    assert left == {"banked", "pending", "thumb", "heatmap", "desk", "young", "recovery"}
    assert usage["evicted"] == 2 and usage["bytes"] == 7000
    # still over the 5000-byte budget (what is left is needed): /readyz says so, and stays ready
    ready = call("GET", "/readyz")
    assert ready.get_json()["checks"]["media_store"].startswith("warning: near its budget, 140%")


def test_under_budget_nothing_is_evicted(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, media_store_max_bytes="100000"))
    svc, call = api_with_keys(settings)
    sha = svc.store.put(b"o" * 1000)
    _age(svc.store, sha)
    usage = media_jobs.evict_media(svc)
    assert usage["evicted"] == 0 and svc.store.path(sha).exists()
    assert call("GET", "/readyz").get_json()["checks"]["media_store"].startswith("ok: 1% of its 100,000-byte budget")


def test_desk_takes_a_video_the_api_takes_and_says_what_the_limit_is(data_dir: Path) -> None:
    """The desk refused a 30 MB video the API accepted (413, generic text): same limits, scaled down here."""
    app, svc = make_app(data_dir, fetch_max_bytes=str(1_000_000), video_max_bytes=str(3_000_000))
    client = app.test_client()
    login(client, "rosa")
    video = fake_video(3, 2_500_000)  # over the image cap, under the video cap
    response = client.post("/desk/checks", data={"files": (io.BytesIO(video), "clip.mp4")},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["errors"] == [] and len(body["checks"]) == 1
    assert svc.store.get(hashlib.sha256(video).hexdigest()) == video
    # past the limit: the desk's page says what the limits are
    too_big = fake_video(4, 3_200_000)
    response = client.post("/desk/checks", data={"files": (io.BytesIO(too_big), "big.mp4")},
                           headers={"X-CSRFToken": token(client, "/desk/")})
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "3,000,000 bytes" in page and "1,000,000 bytes" in page
