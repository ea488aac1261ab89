"""The newsroom desk in real Chromium (Playwright for Python, Debian's /usr/bin/chromium) against a real
`credence serve` (API + worker) on a free port: sign-in, checks with live progress, the report's
panels, a bank entry proposed, confirmed by a reviewer and matched, exports, and roles.

Screenshots of the report pages go to artifacts/ (CREDENCE_ARTIFACTS overrides) for review.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import IN_CI, REDIS_HOST, env_for
from tests.helpers import ROOT, SHARED_TRUST, free_port

CHROMIUM = os.environ.get("CREDENCE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REDIS_DB = 13  # 11: the suite's Redis tests, 12: the extension's e2e
PASSWORD = "a long test password"
USERS = {"rita": "reviewer", "rex": "reporter", "rosa": "reader"}
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def need(condition: object, what: str) -> None:
    """Locally a missing tool skips; with CI=true it fails (.ci/run installs it)."""
    if condition:
        return
    message = f"{what} is missing; .ci/run installs it (apt: chromium; pip: playwright)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need_browser_and_trust() -> None:
    """What a desk browser test needs: Debian's Chromium, Playwright for Python and the shelf's trust lists."""
    need(Path(CHROMIUM).exists(), f"Chromium ({CHROMIUM})")
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "playwright (Python package)")
    if not (SHARED_TRUST / "C2PA-TRUST-LIST.pem").is_file():
        need(False, f"the shared trust lists ({SHARED_TRUST})")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CREDENCE_ARTIFACTS") or ROOT / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "server.cli", *args], env=env, cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


class Files:
    """The images the flows upload: a signed edit of a signed capture, a fake and a re-encoded copy of it."""

    def __init__(self, folder: Path) -> None:
        import c2pa
        from PIL import Image

        from tests.c2pa_kit import make_ca, sign
        from tests.images import jpeg_bytes, photo

        ca = make_ca()
        self.root_pem = folder / "newsroom-root.pem"
        self.root_pem.write_bytes(ca.root_pem)
        camera, editor = ca.leaf("Test Camera 7", "Acme Photo"), ca.leaf("Desk Editor", "Daily Planet")
        capture, _ = sign(jpeg_bytes(photo(3, (640, 480)), 88), camera)
        edit = {"title": "flood-edit.jpg", "claim_generator_info": [{"name": "PhotoDesk", "version": "9"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "PhotoDesk", "version": "9"}}]}}]}
        signed, _ = sign(jpeg_bytes(photo(3, (640, 480)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), 88), editor, edit,
                         intent=(c2pa.C2paBuilderIntent.EDIT,),
                         ingredients=(({"title": "river-capture.jpg", "relationship": "parentOf"}, "image/jpeg", capture),))
        self.signed = folder / "flood-edit.jpg"
        self.signed.write_bytes(signed)
        fake = photo(6, (800, 600))
        self.fake = folder / "viral-shark.jpg"
        self.fake.write_bytes(jpeg_bytes(fake, 92))
        self.repost = folder / "repost.jpg"
        self.repost.write_bytes(jpeg_bytes(fake.resize((560, 420)), 70))


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real `credence serve` with SQLite and the machine's Redis (a faster broker than the filesystem one)."""
    need_browser_and_trust()
    redis_url = f"{REDIS_HOST}/{REDIS_DB}"
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        need(False, f"Redis ({exc})")
    tmp = tmp_path_factory.mktemp("desk")
    files = Files(tmp)
    port = free_port()
    env = env_for(tmp / "data", port=str(port), redis_url=redis_url,
                  trust_anchors_path=str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
                  trust_tsa_anchors_path=str(SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"),
                  trust_user_anchors_path=str(files.root_pem))
    env.pop("CREDENCE_DATABASE_URL", None)
    (tmp / "data").mkdir()
    log_path = tmp / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if f"listening on {base}" in text and " ready." in text:
            break
        assert proc.poll() is None, text[-3000:]
        time.sleep(0.2)
    else:
        raise TimeoutError(log_path.read_text()[-3000:])
    for name, role in USERS.items():
        assert f"user {name} created" in cli(env, "users", "create", name, "--role", role, "--password-stdin",
                                             stdin=PASSWORD + "\n")
    cli(env, "banks", "create", "debunked", "--kind", "fake", "--description", "Fakes the desk debunked")

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield {"base": base, "browser": browser, "files": files, "env": env, "log": log_path, "shared": {}}
        finally:
            browser.close()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            log.close()
            client.flushdb()
            client.close()


class Session:
    """One signed-in user in their own browser context; page errors (CSP violations included) are kept."""

    def __init__(self, desk: dict, username: str, viewport: dict | None = None) -> None:
        self.base = desk["base"]
        self.context = desk["browser"].new_context(viewport=viewport or {"width": 1280, "height": 900},
                                                   accept_downloads=True)
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.goto(f"{self.base}/desk/")
        assert "/desk/login" in self.page.url, "the desk asks who you are first"
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{self.base}/desk/")
        assert self.page.get_by_role("heading", name="Check images and videos").is_visible()

    def check_file(self, path: Path) -> dict:
        """Upload on the Check page; wait for the live progress to finish; returns what the row shows."""
        page = self.page
        page.goto(f"{self.base}/desk/")
        page.set_input_files("#files", str(path))
        page.get_by_role("button", name="Check", exact=True).click()
        row = page.locator(".check").filter(has_text=path.name)
        row.locator(".badge").wait_for()
        row = page.locator(".check[data-status=done]").filter(has_text=path.name)
        return {"level": row.locator(".badge").get_attribute("data-level"),
                "stages": {li.get_attribute("data-stage"): li.get_attribute("data-state")
                           for li in row.locator(".stage").all()},
                "report": row.get_by_role("link", name="Open report")}

    def close(self) -> None:
        self.context.close()


def _shot(page, name: str, full: bool = True) -> Path:
    path = artifacts_dir() / name
    page.screenshot(path=str(path), full_page=full)
    return path


def test_sign_in_check_a_signed_image_and_see_its_credentials(desk) -> None:
    started = time.monotonic()
    s = Session(desk, "rex")
    try:
        row = s.check_file(desk["files"].signed)
        _shot(s.page, "desk-check.png", full=False)
        assert row["level"] == "verified"
        assert row["stages"]["fetch"] == "done" and row["stages"]["provenance"] == "done"
        assert row["stages"]["hashes"] == "done" and row["stages"]["banks"] == "done"
        row["report"].click()
        page = s.page
        page.wait_for_url(re.compile(r".*/desk/media/[0-9a-f]{64}$"))
        sha = page.url.rsplit("/", 1)[1]
        assert page.locator("#verdict .badge").get_attribute("data-level") == "verified"
        assert page.locator("#permalink").input_value() == f"{desk['base']}/desk/media/{sha}"
        panel = page.locator("#provenance")
        text = panel.inner_text()
        assert "Daily Planet" in text and "Desk Editor" in text and "Trusted" in text
        # Actions and relationships in words; each raw code one click away (tests/test_plain_words.py walks all).
        assert "Adjusted colour or tone" in text and "PhotoDesk" in text and "c2pa.color_adjustments" not in text
        raw = panel.locator(".actions-list details.raw").last
        raw.locator("summary").click()
        assert "c2pa.color_adjustments" in raw.inner_text()
        tree = panel.locator(".tree")
        assert "river-capture.jpg" in tree.inner_text() and "the file this one was made from" in tree.inner_text()
        tree.locator("details.raw summary").first.click()
        assert "parentOf" in tree.inner_text()
        page.reload()  # toggles closed and nothing focused, for the keyboard check below
        thumbs = panel.locator("img.thumb")
        assert thumbs.count() >= 2, "the file's own thumbnail and its ingredient's"
        for img in [*thumbs.all(), page.locator("img.media__img")]:
            img.scroll_into_view_if_needed()
            assert img.evaluate("i => i.complete && i.naturalWidth > 0"), img.get_attribute("src")
        assert page.locator("#sightings").inner_text().startswith("Where this instance saw it")
        _shot(page, "desk-report-provenance.png")
        page.set_viewport_size({"width": 390, "height": 844})
        _shot(page, "desk-report-provenance-phone.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
        # Keyboard: the skip link is the first stop and lands on the content.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        desk["shared"]["signed_sha"] = sha
        assert not s.problems, s.problems  # no CSP violation, no script error
    finally:
        s.close()
    print(f"\nsigned-image flow {time.monotonic() - started:.1f}s")


def test_propose_confirm_and_match_a_known_fake_then_export(desk, tmp_path: Path) -> None:
    started = time.monotonic()
    files = desk["files"]
    rex = Session(desk, "rex")
    try:
        row = rex.check_file(files.fake)
        assert row["level"] == "no-evidence"
        row["report"].click()
        page = rex.page
        page.wait_for_url(re.compile(r".*/desk/media/[0-9a-f]{64}$"))
        fake_report = page.url
        page.get_by_text("Submit this image as a known fake").click()
        page.get_by_label("Bank", exact=True).select_option("debunked")
        page.get_by_label("Label", exact=True).fill("Shark on the flooded highway")
        page.get_by_label("Notes", exact=True).fill("Composite; the shark photo is from 2005.")
        page.get_by_label("Source or debunk links, one per line").fill("https://factcheck.example/shark")
        page.get_by_role("button", name="Submit for review").click()
        page.wait_for_url(re.compile(r".*/desk/entries/[0-9a-f]{32}$"))
        entry_url = page.url
        assert page.locator("#entry-status").inner_text() == "pending"
        assert page.locator("#decide").count() == 0, "a reporter proposes, only a reviewer decides"
    finally:
        rex.close()

    rita = Session(desk, "rita")
    try:
        page = rita.page
        page.get_by_role("link", name="Curation").click()
        queue = page.locator("#queue")
        queue.get_by_role("link", name="Shark on the flooded highway").click()
        page.wait_for_url(entry_url)
        assert page.locator("img[alt^='Submitted image']").evaluate("i => i.complete && i.naturalWidth > 0")
        _shot(page, "desk-curation-entry.png")
        page.get_by_label("Confirm: it matches from now on").check()
        page.get_by_label("Note for the audit log (why)").fill("Matches the 2005 original; see the debunk.")
        page.get_by_role("button", name="Record decision").click()
        page.wait_for_url(entry_url)
        assert page.locator("#entry-status").inner_text() == "confirmed"
        audit = page.locator("#audit").inner_text()
        assert "entry.submit" in audit and "desk:rex" in audit
        assert "entry.confirm" in audit and "desk:rita" in audit and "Matches the 2005 original" in audit

        # A re-encoded, smaller repost is now a known fake, with the entry beside it.
        row = rita.check_file(files.repost)
        assert row["level"] == "known-fake"
        assert row["stages"]["detection"] == "skipped"
        row["report"].click()
        page.wait_for_url(re.compile(r".*/desk/media/[0-9a-f]{64}$"))
        assert page.locator("#verdict .badge").get_attribute("data-level") == "known-fake"
        match = page.locator("#matches")
        text = match.inner_text()
        assert "Shark on the flooded highway" in text and "Composite; the shark photo is from 2005." in text
        assert "desk:rita" in text and "PDQ distance" in text and "debunked" in text
        sides = match.locator(".side-by-side img")
        assert sides.count() == 2
        for img in sides.all():
            assert img.evaluate("i => i.complete && i.naturalWidth > 0")
        _shot(page, "desk-report-known-fake.png")
        repost_sha = page.url.rsplit("/", 1)[1]

        # Exports of that report.
        with page.expect_download() as download:
            page.get_by_role("link", name="Export JSON").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert exported["format"] == "credence-report/1" and exported["sha256"] == repost_sha
        assert exported["verdict"]["level"] == "known-fake"
        (bank_match,) = exported["bank_matches"]
        assert bank_match["entry"]["label"] == "Shark on the flooded highway"
        assert bank_match["entry"]["reviewed_by"] == "desk:rita" and bank_match["entry"]["status"] == "confirmed"
        assert exported["permalink"].endswith(f"/desk/media/{repost_sha}")
        with page.expect_download() as download:
            page.get_by_role("link", name="Export PDF").click()
        pdf_path = tmp_path / "known-fake.pdf"
        download.value.save_as(pdf_path)
        _check_pdf(pdf_path, ["Known fake", "Shark on the flooded highway", "desk:rita", repost_sha[:16],
                              "PDQ distance", "Composite; the shark photo is from 2005."], min_images=2)

        # The re-match enqueued by the confirmation turns the first upload's stored verdict too.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page.goto(fake_report)
            if page.locator("#verdict .badge").get_attribute("data-level") == "known-fake":
                break
            time.sleep(0.5)
        assert page.locator("#verdict .badge").get_attribute("data-level") == "known-fake"

        # The signed image's PDF carries its credentials, ingredient and thumbnails.
        signed_sha = desk["shared"].get("signed_sha")
        if signed_sha:
            page.goto(f"{desk['base']}/desk/media/{signed_sha}")
            with page.expect_download() as download:
                page.get_by_role("link", name="Export PDF").click()
            signed_pdf = tmp_path / "signed.pdf"
            download.value.save_as(signed_pdf)
            _check_pdf(signed_pdf, ["Verified credentials", "Daily Planet", "river-capture.jpg",
                                    "c2pa.color_adjustments"], min_images=3)
            shutil.copy(signed_pdf, artifacts_dir() / "desk-report-provenance.pdf")
        shutil.copy(pdf_path, artifacts_dir() / "desk-report-known-fake.pdf")

        # History: filter by level and by bank.
        page.goto(f"{desk['base']}/desk/history?level=known-fake")
        assert "repost.jpg" in page.locator("table.history").inner_text()
        assert "flood-edit.jpg" not in page.locator("table.history").inner_text()
        page.goto(f"{desk['base']}/desk/history?bank=debunked")
        assert "repost.jpg" in page.locator("table.history").inner_text()

        # Search by image finds the entry and both stored copies.
        page.get_by_role("link", name="Search").click()
        page.set_input_files("#search-file", str(files.repost))
        page.get_by_role("button", name="Search").click()
        assert "Shark on the flooded highway" in page.locator("#bank-results").inner_text()
        assert page.locator("#media-results .result").count() >= 2
        assert not rita.problems, rita.problems
    finally:
        rita.close()
    print(f"\nbank flow {time.monotonic() - started:.1f}s")


def _check_pdf(path: Path, expected: list[str], min_images: int) -> None:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    flat = re.sub(r"\s+", " ", text)
    for snippet in expected:
        assert snippet in flat, f"{snippet!r} not in the PDF text: {flat[:3000]}"
    images = sum(len(page.images) for page in reader.pages)
    assert images >= min_images, f"{images} images in the PDF"


def test_a_reader_cannot_reach_curation(desk) -> None:
    rosa = Session(desk, "rosa")
    try:
        page = rosa.page
        assert page.get_by_role("link", name="Curation").count() == 0
        response = page.goto(f"{desk['base']}/desk/curation")
        assert response.status == 403
        assert "needs the reviewer role" in page.inner_text("main")
        # Nor can a hand-made POST decide anything, even with a valid CSRF token.
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        refused = rosa.context.request.post(f"{desk['base']}/desk/entries/{'0' * 32}/decide",
                                            form={"csrf_token": token, "action": "confirm", "note": "me"})
        assert refused.status == 403
        # Without the token the desk refuses any POST.
        assert rosa.context.request.post(f"{desk['base']}/desk/checks", form={"urls": "https://a.example/x.jpg"}).status == 400
    finally:
        rosa.close()
    anonymous = desk["browser"].new_context()
    try:
        page = anonymous.new_page()
        page.goto(f"{desk['base']}/desk/curation")
        assert "/desk/login" in page.url
    finally:
        anonymous.close()


def test_detector_scores_heat_map_and_face_boxes(desk) -> None:
    """Detection evidence as worker/detection/gate.py writes it, recorded beside a real analysis, drawn in the browser."""
    import numpy as np
    from PIL import Image

    from server.checks import records
    from server.db import Database
    from server.media_store import MediaStore
    from server.verdicts import Evidence, Level, fuse
    from tests.images import jpeg_bytes, photo

    data_dir = Path(desk["env"]["CREDENCE_DATA_DIR"])
    image = photo(14, (640, 480))
    path = data_dir.parent / "portrait.jpg"
    path.write_bytes(jpeg_bytes(image, 90))
    s = Session(desk, "rex")
    try:
        row = s.check_file(path)
        assert row["level"] == "no-evidence"
        crop = np.asarray(image.crop((160, 80, 480, 400)).convert("RGB"), dtype=np.float32)
        yy, xx = np.mgrid[0:320, 0:320]
        cam = np.exp(-(((xx - 200) ** 2 + (yy - 140) ** 2) / (2 * 60.0 ** 2)))
        colour = np.stack([255 * cam, 80 * (1 - cam), 255 * (1 - cam)], axis=-1)
        heat = Image.fromarray((0.55 * crop + 0.45 * colour).clip(0, 255).astype(np.uint8))
        buf = io.BytesIO()
        heat.save(buf, "PNG")
        heat_sha = MediaStore(data_dir / "media").put(buf.getvalue())
        db = Database(f"sqlite:///{data_dir / 'credence.db'}")
        sha = row["report"].get_attribute("href").rsplit("/", 1)[1]
        with db.session() as session:
            body = records.current_verdict(session, sha, "off").body  # the served instance runs with detection off
        evidence = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != "detect"] + [
            Evidence(stage="detect", kind="synthetic-score", score=0.87, supports=Level.LIKELY_SYNTHETIC,
                     summary="The image scores 0.87 on the cnn-baseline detector, at or above its threshold 0.62 "
                             "(set for at most 1% false positives on real images in its tests): likely synthetic.",
                     details={"detector": "cnn-baseline", "version": "cnn-baseline@test", "band": "likely-synthetic",
                              "calibration": {"threshold": 0.62, "max_fpr": 0.01},
                              "heatmap": {"sha256": heat_sha, "format": "png", "method": "grad-cam",
                                          "box": [160, 80, 480, 400]}}),
            Evidence(stage="detect", kind="face-manipulation-score", score=0.18,
                     summary="The face scores 0.18 on the face detector, below its threshold 0.60: inconclusive. "
                             "A low score does not show that the image is authentic.",
                     details={"detector": "face-xception", "band": "inconclusive",
                              "faces": [{"box": [300.0, 120.0, 400.0, 250.0], "face_confidence": 0.98, "score": 0.18}]}),
        ]
        with db.session() as session:
            records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                                 timings={**body["timings"], "detect": 640.0}))
        page = s.page
        page.goto(f"{desk['base']}/desk/media/{sha}")
        assert page.locator("#verdict .badge").get_attribute("data-level") == "likely-synthetic"
        panel = page.locator("#detection")
        assert "0.87" in panel.inner_text() and "likely-synthetic" in panel.inner_text()
        assert "Face at 300,120 (100 x 130 px): 0.18" in panel.inner_text()
        heat_layer = page.locator("#media-frame image.heat")
        assert heat_layer.evaluate("e => getComputedStyle(e).display") == "none"
        page.get_by_label("Show the detector's heat map").check()
        assert heat_layer.evaluate("e => getComputedStyle(e).display") != "none"
        assert page.locator("#media-frame rect.face").count() == 1
        assert panel.locator("img.heatmap").evaluate("i => i.complete && i.naturalWidth === 320")
        _shot(page, "desk-report-detection.png")
        assert not s.problems, s.problems
    finally:
        s.close()


def test_video_report_filmstrip_and_score_curve(desk) -> None:
    """A video verdict in the worker's evidence formats: the keyframe thumbnails load, the curve is drawn."""
    from server.checks import records
    from server.config import PIPELINE_VERSION
    from server.db import Database
    from server.media_store import MediaStore
    from server.verdicts import Evidence, Level, fuse
    from tests.clips import make_clip
    from tests.test_desk import video_thumbs

    data_dir = Path(desk["env"]["CREDENCE_DATA_DIR"])
    store = MediaStore(data_dir / "media")
    clip = make_clip(seed=31, seconds=3.0, size=(320, 180), scenes=3, fmt="webm")
    sha = store.put(clip)
    times = [0.0, 1.0, 2.0]
    thumbs = {t: store.put(jpeg) for t, jpeg in video_thumbs(clip, times).items()}
    evidence = [
        Evidence(stage="decode", kind="decoded", summary="A WebM video (VP9), 320 x 180, 3.0 s.",
                 details={"format": "video", "container": "webm", "codec": "vp9", "width": 320, "height": 180,
                          "duration_s": 3.0, "fps": 25.0, "analysed_s": 3.0, "capped": False}),
        Evidence(stage="keyframes", kind="keyframes", summary="3 keyframes.",
                 details={"frames": [{"t": t, "reason": "first" if t == 0 else "scene", "thumb": thumbs[t],
                                      "pdq": "0f" * 32, "pdq_quality": 90} for t in times],
                          "count": 3, "capped": False}),
        Evidence(stage="detect", kind="synthetic-score", score=0.3,
                 summary="The video scores 0.30 on the test detector, below its threshold 0.60: inconclusive.",
                 details={"detector": "test-cnn", "band": "inconclusive", "calibration": {"threshold": 0.6},
                          "frames": [{"t": t, "score": s, "thumb": thumbs[t]} for t, s in zip(times, (0.1, 0.3, 0.2))],
                          "aggregate": "p90", "worst": [1.0]}),
    ]
    db = Database(f"sqlite:///{data_dir / 'credence.db'}")
    with db.session() as session:
        records.record_media(session, sha256=sha, mime="video/webm", size=len(clip))
    with db.session() as session:
        records.record_verdict(session, fuse(evidence, sha256=sha, versions={"pipeline": PIPELINE_VERSION}))
    s = Session(desk, "rex")
    try:
        page = s.page
        page.goto(f"{desk['base']}/desk/media/{sha}")
        frames = page.locator("#video .filmstrip .frame__img")
        assert frames.count() == 3
        frames.last.scroll_into_view_if_needed()
        page.wait_for_function("() => [...document.querySelectorAll('#video .frame__img')].every(i => i.complete)")
        sizes = frames.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
        assert sizes == [[160, 90]] * 3, sizes
        assert "WebM, VP9" in page.locator("#video").inner_text()
        page.locator("#video details.raw summary").click()
        assert "webm, vp9" in page.locator("#video").inner_text()
        curve = page.locator("#detection svg.curve__svg")
        box = curve.bounding_box()
        assert box and box["width"] > 200 and box["height"] == 120
        assert page.locator("#detection polyline.curve__line").get_attribute("points") == "0.0,108.0 200.0,84.0 400.0,96.0"
        worst = page.locator("#detection .worst .frame__img")
        worst.scroll_into_view_if_needed()
        assert worst.evaluate("i => i.complete && i.naturalWidth === 160")
        _shot(page, "desk-report-video.png")
        assert not s.problems, s.problems
    finally:
        s.close()
