"""The API on its embedded default (real SQLite file, filesystem broker): requests, errors, auth."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis
from openapi_spec_validator import validate
from sqlalchemy import create_engine, update

from server import models
from server.app import create_app
from server.auth import create_key
from server.checks.urls import normalise, url_key
from server.migrate import upgrade
from tests.conftest import env_for, settings_from
from tests.helpers import make_jpeg

EXT_ORIGIN = "chrome-extension://" + "a" * 32


@pytest.fixture
def app(data_dir: Path):
    settings = settings_from(env_for(data_dir, rate_limit="1000/minute", fetch_max_bytes=str(200_000)))
    upgrade(settings.sqlalchemy_url)
    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


def queued_messages(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "broker").glob("*.msg"))


def test_batch_creates_one_check_per_distinct_url_and_enqueues_it(client, data_dir: Path) -> None:
    urls = ["http://example.com/a.jpg", "HTTP://EXAMPLE.COM/a.jpg#top", "https://example.org/b.png"]
    body = client.post("/api/v1/checks", json={"urls": urls}).get_json()
    results = body["results"]
    assert [r["status"] for r in results] == ["pending"] * 3
    assert results[0]["check_id"] == results[1]["check_id"] != results[2]["check_id"]
    assert len(queued_messages(data_dir)) == 2
    again = client.post("/api/v1/checks", json={"urls": urls[:1]}).get_json()["results"][0]
    assert again["check_id"] == results[0]["check_id"]  # in flight: not fetched twice
    assert len(queued_messages(data_dir)) == 2
    one = client.get(f"/api/v1/checks/{results[0]['check_id']}").get_json()
    assert one["status"] == "pending" and one["url"] == "http://example.com/a.jpg"


@pytest.mark.parametrize("with_redis", [False, True])
def test_a_page_joins_checks_in_flight_and_starts_the_rest(data_dir: Path, redis_url: str,
                                                                     with_redis: bool) -> None:
    """URLs already being fetched join that check, the others get new ones, and a URL whose check has finished
    gets a new one that takes its in-flight lock (embedded and with Redis's lock)."""
    extra = {"redis_url": redis_url} if with_redis else {}
    settings = settings_from(env_for(data_dir, rate_limit="1000/minute", **extra))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    client = app.test_client()
    a, b, c = (f"http://example.com/{n}.jpg" for n in "abc")
    first = {r["url"]: r["check_id"] for r in client.post("/api/v1/checks", json={"urls": [a, b]}).get_json()["results"]}
    second = {r["url"]: r["check_id"] for r in client.post("/api/v1/checks", json={"urls": [c, a, c]}).get_json()["results"]}
    assert second[a] == first[a] and len({first[a], first[b], second[c]}) == 3
    engine = create_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(update(models.Check).where(models.Check.id == first[a]).values(status="done"))
    engine.dispose()
    third = client.post("/api/v1/checks", json={"urls": [a, b]}).get_json()["results"]
    assert third[0]["check_id"] not in (first[a], None) and third[1]["check_id"] == first[b]
    if with_redis:
        held = redis.Redis.from_url(redis_url).get(f"credence:inflight:{url_key(normalise(a))}")
        assert held is not None and held.decode() == third[0]["check_id"]


@pytest.mark.parametrize("kwargs,status,fragment", [
    ({"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
    ({"data": "urls=x", "content_type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ({"json": ["http://a/x.jpg"]}, 400, "JSON object"),
    ({"json": {}}, 400, "invalid"),
    ({"json": {"urls": []}}, 400, "invalid"),
    ({"json": {"urls": "http://a/x.jpg"}}, 400, "invalid"),
    ({"json": {"urls": [1, 2]}}, 400, "invalid"),
    ({"json": {"urls": ["http://a/x.jpg"], "wait": -1}}, 400, "invalid"),
    ({"json": {"urls": ["http://a/x.jpg"], "surprise": 1}}, 400, "invalid"),
    ({"json": {"urls": [f"http://a/{i}.jpg" for i in range(101)]}}, 400, "at most 100"),
    ({"json": {"urls": ["ftp://a/x.jpg"]}}, 400, "cannot be checked"),
    ({"json": {"urls": ["javascript:alert(1)"]}}, 400, "cannot be checked"),
    ({"json": {"urls": ["file:///etc/passwd"]}}, 400, "cannot be checked"),
])
def test_bad_check_requests_get_clear_errors(client, data_dir: Path, kwargs, status, fragment) -> None:
    response = client.post("/api/v1/checks", **kwargs)
    assert response.status_code == status
    assert fragment in response.get_json()["error"]
    assert queued_messages(data_dir) == []


def test_per_url_errors_name_the_url(client) -> None:
    details = client.post("/api/v1/checks", json={"urls": ["http://ok/x.jpg", "gopher://x"]}).get_json()["details"]
    assert details == [{"index": 1, "url": "gopher://x", "error": "only http and https URLs can be checked, not gopher:"}]


def test_upload_records_and_dedups_by_content(client, data_dir: Path) -> None:
    jpeg = make_jpeg()
    first = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(jpeg), "a.jpg")}).get_json()["results"][0]
    second = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(jpeg), "b.jpg")}).get_json()["results"][0]
    assert first["status"] == second["status"] == "pending"
    assert first["check_id"] != second["check_id"]
    report = client.get(f"/api/v1/checks?ids={first['check_id']},{second['check_id']},nope").get_json()["results"]
    assert [r["status"] for r in report] == ["pending", "pending", "unknown"]
    assert len(list((data_dir / "media").rglob("*"))) >= 1


@pytest.mark.parametrize("data,status", [
    ({}, 400),
    ({"file": (io.BytesIO(b""), "empty.jpg")}, 400),
    ({"file": (io.BytesIO(b"x" * 300_000), "huge.jpg")}, 413),
])
def test_bad_uploads(client, data, status) -> None:
    response = client.post("/api/v1/checks/upload", data=data)
    assert response.status_code == status
    assert response.get_json()["error"]


def test_video_uploads_have_their_own_cap_and_json_keeps_the_small_one(data_dir: Path) -> None:
    from tests.clips import make_clip

    clip = make_clip(seed=5, seconds=1.0)
    padded = clip + b"\0" * (300_000 - len(clip))  # a video past the image cap (trailing bytes after its boxes)
    settings = settings_from(env_for(data_dir, rate_limit="1000/minute", fetch_max_bytes=str(200_000),
                                     video_max_bytes=str(400_000)))
    upgrade(settings.sqlalchemy_url)
    client = create_app(settings).test_client()
    ok = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(padded), "clip.mp4")})
    assert ok.status_code == 200 and ok.get_json()["results"][0]["status"] in ("pending", "done")
    too_big = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(clip + b"\0" * 420_000), "clip.mp4")})
    assert too_big.status_code == 413 and "video is larger than 400,000 bytes" in too_big.get_json()["error"]
    not_video = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(b"x" * 300_000), "x.jpg")})
    assert not_video.status_code == 413 and "200,000" in not_video.get_json()["error"]
    body = '{"urls": ["http://example.org/a.jpg"], "pad": "' + "x" * 300_000 + '"}'
    assert client.post("/api/v1/checks", data=body, content_type="application/json").status_code == 413


def test_unknown_check_and_bad_media_ids(client) -> None:
    assert client.get("/api/v1/checks/doesnotexist").status_code == 404
    assert client.get("/api/v1/checks").status_code == 400
    assert client.get("/api/v1/media/xyz").status_code == 400
    assert client.get("/api/v1/media/" + "0" * 64).status_code == 404


def test_keys_roles(app, client) -> None:
    services = app.extensions["credence"]
    admin, _ = create_key(services.db, role="admin", name="t-admin")
    reader, _ = create_key(services.db, role="reader", name="t-reader")
    assert client.get("/api/v1/keys").status_code == 401
    assert client.get("/api/v1/keys", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    assert client.get("/api/v1/checks/x", headers={"Authorization": "Bearer cred_wrong"}).status_code == 401
    made = client.post("/api/v1/keys", json={"name": "desk", "role": "reporter"},
                       headers={"Authorization": f"Bearer {admin}"})
    assert made.status_code == 201
    new = made.get_json()
    assert new["key"].startswith("cred_") and new["role"] == "reporter"
    listed = client.get("/api/v1/keys", headers={"X-API-Key": admin}).get_json()["keys"]
    assert {k["name"] for k in listed} == {"t-admin", "t-reader", "desk"}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert client.delete(f"/api/v1/keys/{new['id']}", headers={"X-API-Key": admin}).get_json()["revoked_at"]
    assert client.get("/api/v1/checks/x", headers={"X-API-Key": new["key"]}).status_code == 401


def test_anonymous_can_be_switched_off(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, allow_anonymous="false"))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    client = app.test_client()
    assert client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]}).status_code == 401
    key, _ = create_key(app.extensions["credence"].db, role="reader", name="r")
    assert client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]},
                       headers={"X-API-Key": key}).status_code == 200


def test_anonymous_rate_limit_and_key_exemption(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, rate_limit="3/minute"))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    client = app.test_client()
    codes = [client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]}).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]})
    assert limited.get_json()["error"].startswith("too many requests")
    assert "Retry-After" in limited.headers
    key, _ = create_key(app.extensions["credence"].db, role="reader", name="r")
    assert client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]},
                       headers={"X-API-Key": key}).status_code == 200


def test_cors_allows_extensions_and_configured_origins_only(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, cors_origins="https://desk.example"))
    upgrade(settings.sqlalchemy_url)
    client = create_app(settings).test_client()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    for origin, allowed in [(EXT_ORIGIN, True), ("moz-extension://12345678-1234-1234-1234-123456789abc", True),
                            ("https://desk.example", True), ("https://evil.example", False),
                            ("chrome-extension://evil", False)]:
        response = client.options("/api/v1/checks", headers={"Origin": origin, **preflight})
        assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed, origin


def test_openapi_document_is_valid_and_covers_the_routes(app, client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    validate(spec)
    documented = {path.replace("{", "<").replace("}", ">") for path in spec["paths"]}
    # desk: HTML pages; soft_binding: C2PA's Soft Binding Resolution API, whose paths and schemas are C2PA's own
    # specification's (tests/test_recovery.py validates its answers against that specification's schemas)
    served = {rule.rule for rule in app.url_map.iter_rules()
              if rule.endpoint != "static" and not rule.endpoint.startswith(("desk.", "soft_binding."))}
    assert served - {"/api/v1/openapi.json"} <= documented


def test_health_ready_and_metrics(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["checks"] == {"database": "ok", "broker": "ok"}
    client.post("/api/v1/checks", json={"urls": ["http://a/x.jpg"]})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'credence_cache_lookups_total{result="miss"}' in text
    assert "credence_http_request_seconds_bucket" in text


def test_readyz_reports_a_dead_database(data_dir: Path) -> None:
    settings = settings_from(env_for(data_dir, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = create_app(settings).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_lookup_by_sha256_for_privacy_mode(app, client) -> None:
    from server.checks import records
    from server.config import PIPELINE_VERSION
    from server.verdicts import Evidence, Level, fuse

    sha = "ef" * 32
    verdict = fuse([Evidence(stage="t", kind="k", summary="s", supports=Level.SIGNED_UNTRUSTED)], sha256=sha,
                   versions={"pipeline": PIPELINE_VERSION})
    with app.extensions["credence"].db.session() as session:
        records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
        records.record_verdict(session, verdict)
    body = client.post("/api/v1/lookup", json={"sha256": [sha.upper(), "00" * 32]}).get_json()
    assert [(r["sha256"], r["status"]) for r in body["results"]] == [(sha, "done"), ("00" * 32, "unknown")]
    assert body["results"][0]["verdict"]["level"] == "signed-untrusted"
    assert body["results"][1]["verdict"] is None
    assert client.post("/api/v1/lookup", json={"sha256": ["xyz"]}).status_code == 400
    assert client.post("/api/v1/lookup", json={"sha256": []}).status_code == 400
    assert client.post("/api/v1/lookup", json={"urls": ["http://a/"]}).status_code == 400


def test_status_long_poll_answers_once_any_check_is_done(app, client) -> None:
    """GET /checks?ids=...&wait=S: one request per batch instead of a poll round per second. It answers as soon as
    one check finishes (here: one completed by another thread while the request waits), or when S is over."""
    import threading

    from server.checks import records
    from server.config import PIPELINE_VERSION
    from server.verdicts import Evidence, Level, fuse

    first, second = (client.post("/api/v1/checks", json={"urls": [f"http://example.com/{n}.jpg"]})
                     .get_json()["results"][0]["check_id"] for n in ("a", "b"))
    sha = "ab" * 32
    verdict = fuse([Evidence(stage="t", kind="k", summary="s", supports=Level.SIGNED_UNTRUSTED)], sha256=sha,
                   versions={"pipeline": PIPELINE_VERSION})
    db = app.extensions["credence"].db
    started = threading.Event()

    def finish_first() -> None:
        started.wait(10)
        with db.session() as session:
            records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
            records.complete_check(session, first, records.record_verdict(session, verdict), sha)

    worker = threading.Thread(target=finish_first)
    worker.start()
    started.set()
    try:
        body = client.get(f"/api/v1/checks?ids={first},{second}&wait=5").get_json()
    finally:
        worker.join(10)
    by_id = {r["check_id"]: r for r in body["results"]}
    assert by_id[first]["status"] == "done" and by_id[first]["verdict"]["level"] == "signed-untrusted"
    assert by_id[second]["status"] == "pending"
    # Nothing finishes: the answer comes when the wait is over, still pending.
    assert client.get(f"/api/v1/checks?ids={second}&wait=0.3").get_json()["results"][0]["status"] == "pending"
    for bad in ("-1", "nan", "x", "99999"):
        assert client.get(f"/api/v1/checks?ids={second}&wait={bad}").status_code == 400
