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

from server import models, records
from server.app import create_app
from server.cli import main as cli_main
from server.config import PIPELINE_VERSION
from server.desk.users import create_user
from server.migrate import upgrade
from server.verdicts import Evidence, Level, fuse
from tests.conftest import env_for, settings_from
from tests.images import jpeg_bytes, photo
from worker import bank_jobs, jobs

PASSWORD = "correct horse battery"
ROLES = {"rosa": "reader", "rex": "reporter", "rita": "reviewer"}


def make_app(data_dir: Path, **overrides: str):
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
    from server import banks

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
        from server import banks

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
        "fetch": "done", "provenance": "done", "hashes": "done", "banks": "done", "detection": "skipped"}
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
        body = records.current_verdict(session, sha).body
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
        row = records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                                   timings={**body["timings"], "detect": 812.0}))
        records.complete_check(session, _check_id(svc, sha), row.id)
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
