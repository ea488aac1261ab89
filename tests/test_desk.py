"""The newsroom desk in-process (Flask test client, worker jobs run in-process): sign-in and roles,
CSRF, security headers, the report's panels and exports, history, search and curation.
tests/test_desk_browser.py runs the same flows in real Chromium against `credence serve`."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from server import models
from server.checks import records
from server.app import create_app
from server.cli import main as cli_main
from server.config import PIPELINE_VERSION
from server.users import create_user
from server.migrate import upgrade
from server.verdicts import Evidence, Level, fuse
from tests.conftest import env_for, settings_from
from tests.images import jpeg_bytes, photo
from worker import jobs
from worker.banks import jobs as bank_jobs

PASSWORD = "correct horse battery"
ROLES = {"rosa": "reader", "rex": "reporter", "rita": "reviewer"}


def make_app(data_dir: Path, **overrides: str):
    # Detection is asked for explicitly: on by default it would queue every image for the detectors,
    # which these in-process tests do not run (the detection panel is fed its evidence directly).
    overrides.setdefault("detect", "false")
    settings = settings_from(env_for(data_dir, rate_limit="10000/minute", **overrides))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    with svc.db.session() as session:
        for name, role in ROLES.items():
            if not session.query(models.User).filter_by(username=name).first():
                create_user(session, username=name, password=PASSWORD, role=role, actor="test")
    return app, svc


@pytest.fixture
def desk(data_dir: Path):
    return make_app(data_dir)


def token(client, path: str = "/desk/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def login(client, username: str) -> None:
    response = client.post("/desk/login", data={"username": username, "password": PASSWORD,
                                                "csrf_token": token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def post(client, path: str, **data):
    """A desk form POST with the page's CSRF token."""
    return client.post(path, data={**data, "csrf_token": token(client, "/desk/")})


def upload(svc, client, data: bytes, name: str = "photo.jpg") -> str:
    """Start a check from the desk and run the worker's job in-process; returns the sha256."""
    response = client.post("/desk/checks", data={"files": (io.BytesIO(data), name)},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    (check,) = response.get_json()["checks"]
    if check["status"] == "pending":
        jobs.analyze_media(svc, check["sha256"], owner="test")
    return check["sha256"]


def test_security_headers_cookie_and_untouched_api(desk) -> None:
    app, svc = desk
    client = app.test_client()
    page = client.get("/desk/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Cache-Control"] == "no-store"
    response = client.post("/desk/login", data={"username": "rex", "password": PASSWORD, "csrf_token": token(client)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/desk" in cookie
    for path in ("/desk/", "/desk/history", "/desk/search"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"inline script on {path}"
        assert " style=" not in html and "<style" not in html, f"inline style on {path}"

    # The API keeps working as it did: no CSRF token, JSON errors, CORS for the extension, no cookie.
    api = app.test_client()
    made = api.post("/api/v1/checks", json={"urls": ["https://example.org/a.jpg"]})
    assert made.status_code == 200 and "Set-Cookie" not in made.headers
    assert api.get("/api/v1/media/" + "0" * 64).get_json() == {"error": "no media with this SHA-256 has been checked"}
    assert api.get("/healthz").headers["X-Frame-Options"] == "DENY"
    origin = "chrome-extension://" + "a" * 32
    preflight = api.options("/api/v1/checks", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": "content-type"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == origin


def test_every_desk_post_needs_the_csrf_token(desk) -> None:
    app, svc = desk
    client = app.test_client()
    assert client.post("/desk/login", data={"username": "rex", "password": PASSWORD}).status_code == 400
    login(client, "rita")
    for path, data in (("/desk/checks", {"urls": "https://example.org/x.jpg"}), ("/desk/logout", {}),
                       (f"/desk/entries/{'0' * 32}/decide", {"action": "confirm", "note": "x"}),
                       (f"/desk/media/{'0' * 64}/submit", {"label": "x", "bank": "b"})):
        refused = client.post(path, data=data)
        assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True), path
    assert client.post("/desk/checks", data={"urls": "https://example.org/x.jpg"},
                       headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"}).status_code == 200


def test_sign_in_redirects_and_refusals(desk) -> None:
    app, svc = desk
    client = app.test_client()
    assert client.get("/desk/history").headers["Location"] == "/desk/login?next=/desk/history"
    wrong = client.post("/desk/login", data={"username": "rex", "password": "nope", "csrf_token": token(client)})
    unknown = client.post("/desk/login", data={"username": "nobody", "password": "nope", "csrf_token": token(client)})
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.get_data(as_text=True)
    assert "Wrong user name or password." in unknown.get_data(as_text=True)
    for target, lands in (("//evil.example/desk", "/desk/"), ("https://evil.example/desk/", "/desk/"),
                          ("/api/v1/keys", "/desk/"), ("/desk/history?level=known-fake", "/desk/history?level=known-fake")):
        fresh = app.test_client()
        response = fresh.post("/desk/login", data={"username": "REX", "password": PASSWORD, "next": target,
                                                   "csrf_token": token(fresh)})
        assert response.headers["Location"] == lands, target
    login(client, "rosa")
    assert client.get("/desk/history").status_code == 200
    with svc.db.session() as session:
        session.delete(session.query(models.User).filter_by(username="rosa").one())
    assert client.get("/desk/history").status_code == 302, "a deleted user is out at the next request"


def test_users_cli(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CREDENCE_DATA_DIR", str(data_dir))
    settings = settings_from(env_for(data_dir))
    upgrade(settings.sqlalchemy_url)
    runner = CliRunner()
    made = runner.invoke(cli_main, ["users", "create", "Nora", "--role", "reviewer", "--password-stdin"],
                         input="a long enough password\n")
    assert made.exit_code == 0 and "user nora created with role reviewer" in made.output
    again = runner.invoke(cli_main, ["users", "create", "nora", "--role", "reader", "--password-stdin"],
                          input="a long enough password\n")
    assert again.exit_code == 1 and "exists" in again.output
    short = runner.invoke(cli_main, ["users", "create", "sam", "--role", "reader", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    prompted = runner.invoke(cli_main, ["users", "create", "sam", "--role", "reader"],
                             input="another long password\nanother long password\n")
    assert prompted.exit_code == 0, prompted.output
    assert runner.invoke(cli_main, ["users", "create", "x", "--role", "boss"]).exit_code == 2
    listed = runner.invoke(cli_main, ["users", "list"]).output
    assert "nora\treviewer" in listed and "sam\treader" in listed
    assert runner.invoke(cli_main, ["users", "delete", "sam"]).exit_code == 0
    app = create_app(settings)
    with app.extensions["credence"].db.session() as session:
        user = session.query(models.User).filter_by(username="nora").one()
        assert user.password_hash.startswith("scrypt:") and "a long enough password" not in user.password_hash
        actions = [a.action for a in session.query(models.AuditLog).order_by(models.AuditLog.id)]
    assert actions == ["user.create", "user.create", "user.delete"]
    client = app.test_client()
    response = client.post("/desk/login", data={"username": "nora", "password": "a long enough password",
                                                "csrf_token": token(client)})
    assert response.status_code == 302


def test_roles_curation_and_rematch_enqueued(desk, monkeypatch) -> None:
    app, svc = desk
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr("server.desk.curation.enqueue", lambda send, arg: sent.append((send.__name__, arg)))
    from server.banks import service as banks

    with svc.db.session() as session:
        banks.create_bank(session, name="debunked", kind="fake", actor="test")
    reporter, reader, reviewer = app.test_client(), app.test_client(), app.test_client()
    login(reporter, "rex")
    login(reader, "rosa")
    login(reviewer, "rita")
    original = photo(4, (640, 480))
    sha = upload(svc, reporter, jpeg_bytes(original, 90), "viral.jpg")

    assert reader.get("/desk/curation").status_code == 403
    assert "needs the reviewer role" in reader.get("/desk/curation").get_data(as_text=True)
    assert reporter.get("/desk/curation").status_code == 403
    assert ">Curation<" not in reader.get("/desk/").get_data(as_text=True)
    form = {"bank": "debunked", "label": "Staged protest", "notes": "From 2019",
            "source_links": "https://a.example/1\n"}
    assert post(reader, f"/desk/media/{sha}/submit", **form).status_code == 403
    made = post(reporter, f"/desk/media/{sha}/submit", **form)
    assert made.status_code == 302
    entry_id = made.headers["Location"].rsplit("/", 1)[1]
    page = reporter.get(f"/desk/entries/{entry_id}").get_data(as_text=True)
    assert "Staged protest" in page and 'id="decide"' not in page
    queue = reviewer.get("/desk/curation").get_data(as_text=True)
    assert "Staged protest" in queue and f"/desk/blob/{sha}" in queue

    decide = f"/desk/entries/{entry_id}/decide"
    assert post(reporter, decide, action="confirm", note="mine").status_code == 403
    assert post(reviewer, decide, action="confirm", note=" ").status_code == 400
    assert post(reviewer, decide, action="confirm", note="checked").status_code == 302
    assert sent == [("enqueue_rematch", entry_id)]
    assert post(reviewer, decide, action="confirm", note="again").status_code == 409
    bank_jobs.rematch_entry(svc, entry_id)
    report = reviewer.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-level="known-fake"' in report and "desk:rita" in report and "Staged protest" in report

    # A near duplicate (mirrored, smaller) found by search, with the entry among the bank results.
    mirrored = jpeg_bytes(ImageOps.mirror(original).resize((400, 300)), 75)
    found = post(reviewer, "/desk/search", file=(io.BytesIO(mirrored), "m.jpg"))
    text = found.get_data(as_text=True)
    assert found.status_code == 200 and "Staged protest" in text and f"/desk/media/{sha}" in text

    assert post(reviewer, decide, action="retract", note="wrong").status_code == 302
    assert sent[-1] == ("enqueue_rematch", entry_id)
    audit = reviewer.get(f"/desk/entries/{entry_id}").get_data(as_text=True)
    for action in ("entry.submit", "entry.confirm", "entry.retract", "desk:rex", "desk:rita"):
        assert action in audit


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_history_filters(database: str, data_dir: Path, request) -> None:
    """On both databases: the bank filter reads the verdict's JSON as text."""
    extra = {"database_url": request.getfixturevalue("pg_url")} if database == "postgresql" else {}
    app, svc = make_app(data_dir, **extra)
    client = app.test_client()
    login(client, "rex")
    first = upload(svc, client, jpeg_bytes(photo(7, (320, 240))), "first.jpg")
    upload(svc, client, jpeg_bytes(photo(8, (320, 240))), "second.jpg")
    with svc.db.session() as session:  # make the first one a known fake through a bank entry
        from server.banks import service as banks

        bank = banks.create_bank(session, name="fakes_1", kind="fake", actor="test")
        media = session.get(models.Media, first)
        entry = banks.submit_entry(session, bank, actor="test", label="l", sha256=first, pdq=media.pdq,
                                   pdq_quality=media.pdq_quality, phash=media.phash)
        banks.decide(session, entry, action="confirm", actor="test", note="ok")
        entry_id = entry.id
    bank_jobs.rematch_entry(svc, entry_id)
    third = upload(svc, client, jpeg_bytes(photo(7, (320, 240)), 60), "third.jpg")  # a copy: known-fake at once
    api = app.test_client().post("/api/v1/checks/upload",
                                 data={"file": (io.BytesIO(jpeg_bytes(photo(9, (200, 150)))), "api.jpg")})
    assert api.status_code == 200

    def names(query: str) -> list[str]:
        html = client.get(f"/desk/history{query}").get_data(as_text=True)
        return re.findall(r'class="what"><a [^>]+>([^<]+)</a>', html)

    assert names("") == ["third.jpg", "second.jpg", "first.jpg"]
    assert names("?level=known-fake") == ["third.jpg"]
    assert names("?level=no-evidence") == ["second.jpg", "first.jpg"]
    assert names("?bank=fakes_1") == ["third.jpg"], "the LIKE on the JSON escapes '_'"
    assert names("?bank=fakes") == []
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert names(f"?from={tomorrow}") == []
    assert names(f"?to={tomorrow}&level=known-fake") == ["third.jpg"]
    assert len(names("?scope=all")) == 4, "API checks too"
    html = client.get("/desk/history?level=no-evidence").get_data(as_text=True)
    assert "now</span>" in html, "the first upload shows the level it has now"
    assert client.get("/desk/history?from=yesterday").status_code == 400
    assert third


def test_report_access_sightings_and_exports(desk, data_dir: Path, media_server) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rex")
    url = media_server.add("/seen.jpg", jpeg_bytes(photo(10, (320, 240))))
    response = client.post("/desk/checks", data={"urls": url}, headers={"X-CSRFToken": token(client, "/desk/"),
                                                                        "Accept": "application/json"})
    (check,) = response.get_json()["checks"]
    assert [s["state"] for s in check["stages"]][:2] == ["running", "waiting"]
    sha = jobs.fetch_check(svc, check["check_id"])
    jobs.analyze_media(svc, sha, owner="test")
    (done,) = client.get(f"/desk/api/checks?ids={check['check_id']}").get_json()["checks"]
    assert done["status"] == "done" and done["report_url"] == f"/desk/media/{sha}"
    assert {s["key"]: s["state"] for s in done["stages"]} == {
        "fetch": "done", "provenance": "done", "hashes": "done", "banks": "done", "recovery": "done",
        "detection": "skipped"}
    assert client.get(f"/desk/checks/{check['check_id']}").headers["Location"] == f"/desk/media/{sha}"

    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert url in page and 'id="sightings"' in page and f"/desk/blob/{sha}" in page
    exported = client.get(f"/desk/media/{sha}/export.json")
    assert exported.headers["Content-Disposition"].startswith("attachment")
    body = exported.get_json()
    assert body["sightings"]["urls"][0]["url"] == url and body["verdict"]["level"] == "no-evidence"
    assert body["file"]["width"] == 320 and body["permalink"] == f"http://localhost/desk/media/{sha}"
    blob = client.get(f"/desk/blob/{sha}")
    assert blob.mimetype == "image/jpeg" and "sandbox" in blob.headers["Content-Security-Policy"]

    anonymous = app.test_client()
    page = anonymous.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-level="no-evidence"' in page, "the report follows the API's anonymous rule"
    assert url not in page and "/desk/blob/" not in page and "Export PDF" not in page
    assert anonymous.get(f"/desk/blob/{sha}").status_code == 302, "stored bytes only for signed-in users"
    assert anonymous.get(f"/desk/media/{sha}/export.json").status_code == 302
    assert anonymous.get("/desk/media/" + "f" * 64).status_code == 404
    assert anonymous.get("/desk/media/not-a-hash").status_code == 404

    closed, _ = make_app(data_dir, allow_anonymous="false", desk_sightings="false")
    assert closed.test_client().get(f"/desk/media/{sha}").status_code == 302
    signed = closed.test_client()
    login(signed, "rex")
    page = signed.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="sightings"' not in page and url not in page
    assert signed.get(f"/desk/media/{sha}/export.json").get_json()["sightings"] is None


def test_detection_panel_heat_map_and_faces(desk) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rex")
    sha = upload(svc, client, jpeg_bytes(photo(11, (400, 300))), "face.jpg")
    report = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="detection"' not in report, "no scores, no panel"
    assert "Detection did not run" in report
    heat = Image.new("RGB", (200, 150), (255, 0, 0))
    buf = io.BytesIO()
    heat.save(buf, "PNG")
    heat_sha = svc.store.put(buf.getvalue())
    with svc.db.session() as session:
        body = records.current_verdict(session, sha, svc.detectors_stamp()).body
    evidence = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != "detect"] + [
        Evidence(stage="detect", kind="synthetic-score", score=0.91, supports=Level.LIKELY_SYNTHETIC,
                 summary="The image scores 0.91 on the test detector, at or above its threshold 0.50: likely synthetic.",
                 details={"detector": "test-cnn", "band": "likely-synthetic", "calibration": {"threshold": 0.5},
                          "heatmap": {"sha256": heat_sha, "format": "png", "box": [100, 75, 300, 225]}}),
        Evidence(stage="detect", kind="face-manipulation-score", score=0.2,
                 summary="The face scores 0.20 on the face detector, below its threshold 0.60: inconclusive.",
                 details={"detector": "test-face", "band": "inconclusive",
                          "faces": [{"box": [40.0, 30.0, 120.0, 130.0], "face_confidence": 0.99, "score": 0.2}]}),
    ]
    with svc.db.session() as session:
        verdict_id = records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                                          timings={**body["timings"], "detect": 812.0}))
        records.complete_check(session, _check_id(svc, sha), verdict_id)
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-level="likely-synthetic"' in page and 'id="detection"' in page
    assert "likely-synthetic</span>" in page and "0.91" in page and "threshold 0.50" in page
    assert f'href="/desk/blob/{heat_sha}" x="100.0" y="75.0" width="200.0" height="150.0"' in page
    assert '<rect class="face" x="40.0" y="30.0" width="80.0" height="100.0"' in page
    (status,) = client.get("/desk/api/checks?ids=" + _check_id(svc, sha)).get_json()["checks"]
    assert {s["key"]: (s["state"], s.get("ms")) for s in status["stages"]}["detection"] == ("done", 812.0)

    from pypdf import PdfReader

    pdf = client.get(f"/desk/media/{sha}/export.pdf")
    assert pdf.mimetype == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.data))
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    for snippet in ("Likely synthetic", "likely-synthetic", "test-cnn", "Face at 40,30 (80 x 100 px): 0.20", "Heat map"):
        assert snippet in text, snippet
    assert sum(len(p.images) for p in reader.pages) >= 2


def _check_id(svc, sha: str) -> str:
    with svc.db.session() as session:
        return session.query(models.Check.id).filter_by(sha256=sha).first()[0]


def test_pdf_without_system_fonts_still_prints(desk, monkeypatch) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rex")
    sha = upload(svc, client, jpeg_bytes(photo(12, (320, 240))), "quotes.jpg")
    monkeypatch.setattr("server.desk.pdf.FONT_DIRS", ())
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(client.get(f"/desk/media/{sha}/export.pdf").data))
    text = " ".join(p.extract_text() for p in reader.pages)
    assert "No evidence either way" in text and sha[:16] in text


def test_secret_key_made_once_and_shared(data_dir: Path) -> None:
    first, _ = make_app(data_dir)
    second, _ = make_app(data_dir)
    key_file = data_dir / "desk-secret-key"
    assert first.secret_key == second.secret_key == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(first.secret_key) == 64
    configured, _ = make_app(data_dir, secret_key="from-the-environment")
    assert configured.secret_key == "from-the-environment"
    # A session signed by one API process is good on another with the same data dir.
    client = first.test_client()
    login(client, "rex")
    cookie = client.get_cookie("credence_desk", path="/desk")
    other = second.test_client()
    other.set_cookie("credence_desk", cookie.value, path="/desk")
    assert other.get("/desk/history").status_code == 200


def test_check_form_without_javascript_and_bad_input(desk) -> None:
    app, svc = desk
    client = app.test_client()
    login(client, "rosa")
    tok = token(client, "/desk/")
    one = client.post("/desk/checks", data={"files": (io.BytesIO(jpeg_bytes(photo(13, (100, 80)))), "a.jpg"), "csrf_token": tok})
    assert one.status_code == 302 and one.headers["Location"].startswith("/desk/checks/")
    pending = client.get(one.headers["Location"]).get_data(as_text=True)
    assert 'http-equiv="refresh"' in pending and "a.jpg" in pending
    many = client.post("/desk/checks", data={"urls": "https://a.example/1.jpg\nftp://a.example/2.jpg\nhttps://a.example/3.jpg,w_300",
                                             "csrf_token": tok})
    html = many.get_data(as_text=True)
    assert many.status_code == 200 and "ftp://a.example/2.jpg" in html and html.count("/desk/checks/") == 2
    assert client.post("/desk/checks", data={"urls": "", "csrf_token": tok}).status_code == 400
    empty = client.post("/desk/checks", data={"files": (io.BytesIO(b""), "e.jpg"), "csrf_token": tok},
                        headers={"Accept": "application/json"})
    assert empty.get_json()["errors"] == [{"url": "e.jpg", "error": "the file is empty"}]
    unknown = client.get("/desk/api/checks?ids=nope").get_json()["checks"]
    assert unknown == [{"check_id": "nope", "status": "unknown"}]
    assert json.loads(client.get("/desk/api/checks").get_data())["error"].startswith("pass ?ids=")
    with svc.db.session() as session:
        names = [d.name for d in session.query(models.DeskCheck).order_by(models.DeskCheck.id)]
    assert names == ["a.jpg", "https://a.example/1.jpg", "https://a.example/3.jpg,w_300"]
    assert PIPELINE_VERSION


def video_thumbs(clip: bytes, times: list[float], size: tuple[int, int] = (160, 90)) -> dict[float, bytes]:
    """JPEG thumbnails of the clip's frames nearest to ``times``, decoded with PyAV as the worker does."""
    import av

    frames: list[tuple[float, Image.Image]] = []
    with av.open(io.BytesIO(clip)) as container:
        for frame in container.decode(video=0):
            frames.append((float(frame.time or 0.0), frame.to_image()))
    out = {}
    for t in times:
        _, picture = min(frames, key=lambda f: abs(f[0] - t))
        buf = io.BytesIO()
        picture.resize(size).save(buf, "JPEG", quality=80)
        out[t] = buf.getvalue()
    return out


def record_video_verdict(svc, clip: bytes, evidence: list[Evidence]) -> str:
    """The clip stored and recorded as media, with a verdict fused from ``evidence`` (as the worker records one)."""
    sha = svc.store.put(clip)
    with svc.db.session() as session:
        records.record_media(session, sha256=sha, mime="video/mp4", size=len(clip))
        check_id = records.create_check(session, source="upload", sha256=sha)
    with svc.db.session() as session:
        verdict_id = records.record_verdict(session, fuse(evidence, sha256=sha, versions={"pipeline": PIPELINE_VERSION, "detect": "ran"},
                                                          timings={"keyframes": 120.0, "detect": 900.0}))
        records.complete_check(session, check_id, verdict_id)
    return sha


def test_video_report_filmstrip_facts_score_curve_and_worst_frames(desk) -> None:
    from pypdf import PdfReader

    from tests.clips import make_clip

    app, svc = desk
    clip = make_clip(seed=21, seconds=4.0, fps=25, size=(320, 240), scenes=2, fmt="mp4")
    key_times = [0.0, 2.0, 3.0]
    thumbs = {t: svc.store.put(jpeg) for t, jpeg in video_thumbs(clip, key_times).items()}
    frame_times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    scores = [0.10, 0.15, 0.20, 0.30, 0.85, 0.90, 0.40, 0.20]
    score_thumbs = {t: svc.store.put(jpeg) for t, jpeg in video_thumbs(clip, frame_times).items()}
    missing = "e" * 64  # named by the evidence but not in the store: shown as a time, not a broken image
    evidence = [
        Evidence(stage="decode", kind="decoded", summary="An MP4 video (H.264), 320 x 240, 4.0 s at 25 fps.",
                 details={"format": "video", "container": "mp4", "codec": "h264", "width": 320, "height": 240,
                          "duration_s": 4.0, "fps": 25.0, "analysed_s": 4.0, "capped": False}),
        Evidence(stage="keyframes", kind="keyframes", summary="4 keyframes: the first frame, 1 scene change, 2 at intervals.",
                 details={"frames": [
                     {"t": 0.0, "reason": "first", "thumb": thumbs[0.0], "pdq": "a" * 64, "pdq_quality": 90},
                     {"t": 2.0, "reason": "scene", "thumb": thumbs[2.0], "pdq": "b" * 64, "pdq_quality": 88},
                     {"t": 3.0, "reason": "uniform", "thumb": thumbs[3.0], "pdq": "c" * 64, "pdq_quality": 85},
                     {"t": 3.96, "reason": "uniform", "thumb": missing, "pdq": "d" * 64, "pdq_quality": 80},
                 ], "count": 4, "capped": False}),
        Evidence(stage="detect", kind="synthetic-score", score=0.88, supports=Level.LIKELY_SYNTHETIC,
                 summary="The video scores 0.88 (90th percentile of 8 frames) on the test detector, at or above its "
                         "threshold 0.50: likely synthetic.",
                 details={"detector": "test-cnn", "version": "test-cnn@1", "band": "likely-synthetic",
                          "calibration": {"threshold": 0.5},
                          "frames": [{"t": t, "score": s, "thumb": score_thumbs[t]} for t, s in zip(frame_times, scores)],
                          "aggregate": "p90", "worst": [2.5, 2.0]}),
    ]
    sha = record_video_verdict(svc, clip, evidence)
    client = app.test_client()
    login(client, "rex")
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-level="likely-synthetic"' in page

    # The video's facts and its keyframes, in time order, with their thumbnails served by the desk.
    video = page[page.index('id="video"'):page.index('id="detection"')]
    for text in ("mp4, h264", "320 x 240 pixels", "0:04.0", "25 frames per second", "the first 0:04.0"):
        assert text in video, text
    assert "capped</span>" not in video
    strip = re.findall(r'<li class="frame frame--(\w+)" data-t="([\d.]+)">\s*(?:<img class="frame__img" src="([^"]+)"|<div)',
                       video)
    assert strip == [("first", "0.0", f"/desk/blob/{thumbs[0.0]}"), ("scene", "2.0", f"/desk/blob/{thumbs[2.0]}"),
                     ("uniform", "3.0", f"/desk/blob/{thumbs[3.0]}"), ("uniform", "3.96", "")], strip
    assert "scene change" in video and "aaaaaaaaaaaaaaaa…" in video
    for t in key_times:
        served = client.get(f"/desk/blob/{thumbs[t]}")
        assert served.status_code == 200 and served.mimetype == "image/jpeg"
        assert Image.open(io.BytesIO(served.data)).size == (160, 90)

    # The per-frame score curve: one point per frame, scaled to the video's duration, with the threshold.
    detection = page[page.index('id="detection"'):]
    points = re.search(r'<polyline class="curve__line" points="([^"]+)"', detection).group(1).split()
    assert len(points) == 8
    xy = [tuple(map(float, p.split(","))) for p in points]
    assert xy[0] == (0.0, 108.0) and xy[4] == (300.0, 18.0) and xy[5] == (375.0, 12.0)  # 600 x 120 box, 4 s
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    assert '<line class="curve__threshold" x1="0" y1="60.0"' in detection
    assert "the p90 of the frame scores" in detection
    # The worst frames, worst first, with their thumbnails.
    worst = detection[detection.index("Worst frames"):]
    shown = re.findall(r'data-t="([\d.]+)">\s*<img class="frame__img" src="/desk/blob/(\w+)"', worst)
    assert shown == [("2.5", score_thumbs[2.5]), ("2.0", score_thumbs[2.0])]
    assert "<strong>0.90</strong>" in worst and "<strong>0.85</strong>" in worst
    assert detection.count('<circle class="curve__worst"') == 2
    # Keyframe and decode evidence are shown in the video section, not again as "other findings".
    assert 'id="other"' not in page

    # Signed out: facts and times, but no stored image.
    anonymous = app.test_client().get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="video"' in anonymous and "/desk/blob/" not in anonymous and "0:02.0" in anonymous

    exported = client.get(f"/desk/media/{sha}/export.json").get_json()
    assert exported["video"]["facts"]["codec"] == "h264" and len(exported["video"]["keyframes"]) == 4

    reader = PdfReader(io.BytesIO(client.get(f"/desk/media/{sha}/export.pdf").data))
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    for snippet in ("Video", "mp4, h264", "0:04.0", "25 fps", "Keyframe 0:02.0 (scene change)", "Worst frames",
                    "0:02.5: 0.90"):
        assert snippet in text, snippet
    assert sum(len(p.images) for p in reader.pages) >= 3, "keyframe thumbnails in the PDF"


def test_desk_accepts_video_uploads_and_addresses(desk) -> None:
    from tests.clips import make_clip

    app, svc = desk
    client = app.test_client()
    login(client, "rosa")
    form = client.get("/desk/").get_data(as_text=True)
    assert 'accept="image/*,video/mp4,video/quicktime,video/webm"' in form and "Check images and videos" in form
    clip = make_clip(seed=22, seconds=1.0, fmt="webm")
    response = client.post("/desk/checks", data={"files": (io.BytesIO(clip), "clip.webm"),
                                                 "urls": "https://video.example/news/clip.mp4"},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    body = response.get_json()
    assert response.status_code == 200 and body["errors"] == [], body
    upload_row, url_row = body["checks"]
    assert upload_row["name"] == "clip.webm" and upload_row["sha256"] == svc.store.put(clip)
    assert url_row["name"] == "https://video.example/news/clip.mp4"
    with svc.db.session() as session:
        assert session.get(models.Media, upload_row["sha256"]).mime == "video/webm"


def test_desk_upload_caps_follow_the_file_type(data_dir: Path) -> None:
    """A video may be larger than an image (CREDENCE_VIDEO_MAX_BYTES); anything else keeps the image cap."""
    from tests.clips import make_clip

    app, svc = make_app(data_dir, fetch_max_bytes="30000", video_max_bytes="60000")
    client = app.test_client()
    login(client, "rosa")
    clip = make_clip(seed=23, seconds=6, fmt="mp4")
    photo_bytes = jpeg_bytes(photo(5, (480, 360)))
    assert 30000 < len(clip) < 60000 and 30000 < len(photo_bytes) < 60000
    response = client.post("/desk/checks", data={"files": [(io.BytesIO(clip), "big.mp4"),
                                                           (io.BytesIO(photo_bytes), "big.jpg")]},
                           headers={"X-CSRFToken": token(client, "/desk/"), "Accept": "application/json"})
    body = response.get_json()
    assert [c["name"] for c in body["checks"]] == ["big.mp4"]
    assert body["errors"] == [{"url": "big.jpg", "error": "the file is larger than 30,000 bytes"}]


def test_video_view_reads_only_what_makes_sense() -> None:
    """Times as a player shows them; malformed frames are dropped, not drawn; no video evidence, no section."""
    from server.desk.video import clock, frame_scores, video_view

    assert [clock(0), clock(7.25), clock(62.0), clock(3723.0), clock("x")] == ["0:00.0", "0:07.2", "1:02.0",
                                                                              "1:02:03.0", "?"]
    assert video_view([{"stage": "decode", "kind": "decoded", "details": {"format": "jpeg"}}], lambda s: True) is None
    stored = "1" * 64
    view = video_view([{"stage": "keyframes", "kind": "keyframes", "details": {"frames": [
        {"t": 1.5, "reason": "scene", "thumb": stored}, {"t": None, "reason": "first"},
        {"t": 2.0, "reason": "uniform", "thumb": "../../etc/passwd"}, "junk"], "count": 3, "capped": True}}],
        lambda s: s == stored)
    assert [(f["clock"], f["why"], f["thumb"]) for f in view["keyframes"]] == [
        ("0:01.5", "scene change", stored), ("0:02.0", "regular interval", None)]
    assert view["keyframes_capped"] and view["duration"] is None
    curve = frame_scores({"frames": [{"t": 2, "score": 1.7}, {"t": 0, "score": 0.5}, {"t": "?", "score": 0.1},
                                     {"t": 1, "score": float("nan")}], "worst": [1.9, "x"]},
                         "not a number", None, lambda s: True)
    assert curve["points"] == "0.0,60.0 600.0,0.0" and curve["threshold_y"] is None
    assert [(w["clock"], w["score"]) for w in curve["worst"]] == [("0:02.0", 1.0)]
    assert frame_scores({"frames": []}, 3.0, 0.5, lambda s: True) is None


def test_signed_at_trusts_only_a_trusted_time_stamp() -> None:
    from server.desk.wording import signed_at

    assert signed_at({"signing_time": "2026-11-30T10:00:00Z", "timestamp": {"trusted": True}}) == \
        "2026-11-30T10:00:00Z (trusted time-stamp)"
    untrusted = signed_at({"signing_time": None, "timestamp": {"time": "2026-11-30T10:00:00Z",
                                                               "authority": "Test TSA", "trusted": False}})
    assert untrusted.startswith("unknown: a time-stamp by Test TSA says 2026-11-30T10:00:00Z") and "not on" in untrusted
    assert signed_at({}) == "unknown: no time-stamp"
