"""The browser extension: its unit tests (node's test runner), `web-ext lint`, and end to end in
real Chromium and Firefox ESR against a real `credence serve` (API + worker) on a free port.

The e2e drivers (extension/e2e/run.mjs) only observe; every judgement is made here. All requests
the extension sends to "the server" pass through a recording proxy, so batching and privacy are
checked on what actually went over the wire.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil
import pytest
import redis
import requests
from sqlalchemy import func, select

from tests.conftest import IN_CI, env_for, settings_from
from tests.extension_support import (
    EXTENSION,
    POSTER_LEVEL,
    CloakSite,
    Fixture,
    HardeningPages,
    RecordingProxy,
    Signing,
    VideoPage,
    bank_fakes,
    build_cloak_site,
    build_hardening_pages,
    build_main_page,
    build_privacy_page,
    build_uploads_page,
    build_video_page,
    main_fixtures,
    make_keys,
    make_signing,
    prepare_extension,
)
from server import models
from server.db import Database
from server.verdicts import Level
from tests.helpers import ROOT, MediaServer, free_port, wait_done

NODE = shutil.which("node")
REDIS_SERVER = shutil.which("redis-server")
WEB_EXT = EXTENSION / "node_modules" / ".bin" / "web-ext"
BROWSERS = {"chromium": shutil.which("chromium"), "firefox": shutil.which("firefox-esr")}
ESBUILD = EXTENSION / "node_modules" / "esbuild"
# Expected lint warning: Firefox ignores the Chromium service worker key (by design, one manifest for both).
ALLOWED_LINT_WARNINGS = {("BACKGROUND_SERVICE_WORKER_IGNORED", "manifest.json")}


def need(condition: object, what: str) -> None:
    """Locally a missing tool skips; with CI=true it fails (.ci/run installs it)."""
    if condition:
        return
    message = f"{what} is missing; .ci/run provides it (apt: chromium firefox-esr; make test: npm ci --prefix extension)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CREDENCE_ARTIFACTS") or ROOT / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- unit tests and lint -------------------------------------------------------------------------

def test_extension_unit_tests() -> None:
    need(NODE, "node")
    files = sorted(str(p.relative_to(EXTENSION)) for p in (EXTENSION / "test").glob("*.test.js"))
    proc = subprocess.run([NODE, "--test", *files], cwd=EXTENSION, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    passed = int(re.search(r"^# pass (\d+)$", output, re.M).group(1))
    assert re.search(r"^# fail 0$", output, re.M) and passed >= 50, output[-3000:]


def test_web_ext_lint_has_no_errors() -> None:
    need(NODE and WEB_EXT.exists(), "web-ext (npm ci --prefix extension)")
    proc = subprocess.run([str(WEB_EXT), "lint", "--source-dir", "src", "--output", "json", "--self-hosted"],
                          cwd=EXTENSION, capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["errors"] == [], report["errors"]
    warnings = {(w["code"], w.get("file")) for w in report["warnings"]}
    assert warnings <= ALLOWED_LINT_WARNINGS, report["warnings"]


def test_content_script_is_built_from_its_modules() -> None:
    """src/content.js is a bundle of content/main.js and its imports (extension/build.mjs): it must
    never drift from them, or the browser would run other code than the one the unit tests check."""
    need(NODE and ESBUILD.exists(), "esbuild (npm ci --prefix extension)")
    proc = subprocess.run([NODE, "build.mjs", "--print", "src"], cwd=EXTENSION, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    committed = (EXTENSION / "src" / "content.js").read_text()
    assert proc.stdout == committed, "src/content.js is out of date: run `npm run build` in extension/"


# ---- end to end ----------------------------------------------------------------------------------

@dataclass
class Credence:
    base: str
    env: dict[str, str]
    signing: Signing
    keys: dict[str, str]


@pytest.fixture(scope="module")
def credence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Credence]:
    """A real `credence serve` (API + its own worker) with SQLite and a private Redis.

    Redis rather than the embedded filesystem broker: that one polls once a second, about two
    tasks a second, which would make this suite wait on the broker instead of on the extension.
    A private redis-server on a free port, so no other test run on the machine shares its queues.
    """
    need(REDIS_SERVER, "redis-server")
    tmp = tmp_path_factory.mktemp("credence-ext")
    redis_port, port = free_port(), free_port()
    procs: list[subprocess.Popen] = []
    log = open(tmp / "serve.log", "wb")
    try:
        procs.append(subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no",
             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        with redis.Redis.from_url(redis_url) as client:
            _wait(lambda: _pings(client), 10, "redis-server did not start")
        signing = make_signing(tmp)
        env = env_for(tmp / "data", port=str(port), redis_url=redis_url,
                      trust_user_anchors_path=str(signing.anchors))
        env.pop("CREDENCE_DATABASE_URL", None)
        # The levels here come from provenance and banks; the detectors (on by default with the
        # repository's baseline) would turn the plain test images "likely synthetic".
        env["CREDENCE_DETECT"] = "false"
        (tmp / "data").mkdir()
        procs.append(subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            text = (tmp / "serve.log").read_text(errors="replace")
            assert procs[-1].poll() is None, text[-3000:]
            return f"listening on {base}" in text and " ready." in text

        _wait(ready, 60, "credence serve did not start")
        yield Credence(base, env, signing, make_keys(env, ("reporter", "reviewer", "admin")))
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        log.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _wait(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def media() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sent_urls(records) -> list[str]:
    return [u for r in records if r.method == "POST" and r.path == "/api/v1/checks"
            for u in json.loads(r.body)["urls"]]


@pytest.mark.parametrize("browser", ["chromium", "firefox"])
def test_extension_end_to_end(browser: str, credence: Credence, media: MediaServer, tmp_path: Path) -> None:
    need(NODE and (EXTENSION / "node_modules" / "playwright-core").exists(), "npm packages of extension/")
    need(BROWSERS[browser], f"{browser} (Debian package)")
    server, reporter_key = credence, credence.keys["reporter"]
    credence = server.base
    started = time.monotonic()
    proxy, private_proxy, video_proxy = RecordingProxy(credence), RecordingProxy(credence), RecordingProxy(credence)
    hard_proxy, other_origin = RecordingProxy(credence), MediaServer()
    cloak_proxy, cloak = RecordingProxy(credence), None
    uploads_proxy: RecordingProxy | None = None
    try:
        cloak = build_cloak_site(f"{browser}-cloak", server.signing)
        hardening = build_hardening_pages(media, other_origin, f"{browser}-hard", server.signing)
        fixtures = main_fixtures(browser, server.signing)
        bank_fakes(credence, server.keys, fixtures)
        page_url = build_main_page(media, browser, fixtures)
        privacy_url, privacy_bytes, inline_b64 = build_privacy_page(media, f"{browser}-private")
        videos = build_video_page(media, f"{browser}-video", server.signing)
        uploads_url, uploaded = build_uploads_page(media, f"{browser}-uploads")
        held = uploaded[UPLOAD_HELD]
        uploads_proxy = RecordingProxy(credence, hold=lambda r: r.path.startswith("/api/v1/checks/upload")
                                       and r.method == "POST" and held in r.body)
        # The server already knows the "known" image (someone checked it by URL before).
        known_url = media.url(f"/{browser}-private/known.jpg")
        first = requests.post(f"{credence}/api/v1/checks", json={"urls": [known_url], "wait": 3}, timeout=30).json()
        if first["results"][0]["status"] != "done":
            wait_done(credence, [first["results"][0]["check_id"]], timeout=60)

        uploads = browser == "chromium"  # Chromium uploads unknown images; Firefox keeps them unknown
        by_section = {s: {f.id: f.expected for f in fixtures if f.section == s} for s in ("initial", "dynamic", "lazy")}
        config = {
            "browser": browser,
            "proxy": proxy.url,
            "artifacts": str(tmp_path),
            "output": str(tmp_path / "results.json"),
            "chromium": BROWSERS["chromium"],
            "firefox": BROWSERS["firefox"],
            "runs": [
                {"name": "main", "kind": "main", "pageUrl": page_url,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-main", server=proxy.url)),
                 **by_section, "skipped": [f.id for f in fixtures if f.section == "skipped"],
                 "screenshot": f"extension-{browser}.png",
                 "popupScreenshot": f"extension-popup-{browser}.png" if browser == "chromium" else None,
                 "reporterKey": reporter_key, "reportImage": media.url(f"/{browser}/plain3.jpg"),
                 "forceImage": media.url(f"/{browser}/tiny.jpg")},
                {"name": "privacy", "kind": "privacy", "pageUrl": privacy_url,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-private", server=private_proxy.url,
                                                       privacy=True, uploadUnknown=uploads)),
                 "initial": {"known": "no-evidence", "unknown": "no-evidence" if uploads else "unknown",
                             "inline": "no-evidence" if uploads else "unknown"},
                 "screenshot": f"extension-privacy-{browser}.png"},
                {"name": "video", "kind": "video", "pageUrl": videos.url, "proxy": video_proxy.url,
                 "posterLevel": POSTER_LEVEL,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-video", server=video_proxy.url)),
                 "screenshot": f"extension-video-{browser}.png"},
                {"name": "hardening", "kind": "hardening", "pageUrl": hardening.url,
                 "hostileUrl": hardening.hostile_url,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-hard", server=hard_proxy.url)),
                 "expected": {**hardening.expected, "slide2": "none"},
                 "slid": {"slide1part": "no-evidence", "slide2": "no-evidence"},
                 "hostileExpected": hardening.hostile_expected, "hostileWatchMs": HOSTILE_WATCH_MS,
                 "screenshot": f"extension-hardening-{browser}.png"},
                {"name": "cloak", "kind": "cloak", "pageUrl": cloak.url, "expected": cloak.expected,
                 "marked": cloak.marked,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-cloak", server=cloak_proxy.url)),
                 "screenshot": f"extension-cloak-{browser}.png"},
                {"name": "uploads", "kind": "uploads", "pageUrl": uploads_url, "proxy": uploads_proxy.url,
                 "expected": dict.fromkeys(uploaded, "no-evidence"), "held": UPLOAD_HELD,
                 "extensionDir": str(prepare_extension(tmp_path / "ext-uploads", server=uploads_proxy.url,
                                                       privacy=True, uploadUnknown=True)),
                 "screenshot": f"extension-uploads-{browser}.png"},
            ],
        }
        (tmp_path / "config.json").write_text(json.dumps(config))
        proc = subprocess.run([NODE, "e2e/run.mjs", str(tmp_path / "config.json")], cwd=EXTENSION,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        results = json.loads((tmp_path / "results.json").read_text())
        for name in ("main", "privacy", "video", "hardening", "cloak", "uploads"):
            assert "error" not in results["runs"][name], json.dumps(results["runs"][name], indent=1)[-6000:]
        for png in tmp_path.glob("extension-*.png"):
            shutil.copy(png, artifacts_dir() / png.name)

        _check_main(browser, results["runs"]["main"], fixtures, proxy, page_url, media)
        if browser == "chromium":
            _check_report(results["runs"]["main"], proxy, reporter_key, media.url(f"/{browser}/plain3.jpg"))
        _check_privacy(results["runs"]["privacy"], config["runs"][1]["initial"], private_proxy, privacy_url,
                       privacy_bytes, inline_b64, media, uploads)
        _check_video(results["runs"]["video"], video_proxy, videos, media, credence, browser)
        _check_hardening(browser, results["runs"]["hardening"], hard_proxy, hardening)
        _check_cloak(browser, results["runs"]["cloak"], cloak_proxy, cloak)
        _check_uploads(results["runs"]["uploads"], uploads_proxy, uploaded)
        elapsed = time.monotonic() - started
        scan = proxy.between(None, "before-force")
        sizes = [len(json.loads(r.body)["urls"]) for r in scan if r.method == "POST" and r.path == "/api/v1/checks"]
        streams = [r for r in scan if r.method == "GET" and r.path.startswith("/api/v1/checks/events?")]
        print(f"\n{browser}: {len(set(_sent_urls(scan)))} images -> {len(sizes)} POST /api/v1/checks {sizes}, "
              f"{len(streams)} event streams {[len(r.path.split('ids=')[1].split(',')) for r in streams]}; "
              f"timings {results['runs']['main']['timings']}; whole test {elapsed:.1f}s")
    finally:
        proxy.close()
        private_proxy.close()
        video_proxy.close()
        hard_proxy.close()
        other_origin.close()
        cloak_proxy.close()
        if uploads_proxy is not None:
            uploads_proxy.close()
        if cloak is not None:
            cloak.close()


def _check_main(browser: str, run: dict, fixtures: list[Fixture], proxy: RecordingProxy, page_url: str,
                media: MediaServer) -> None:
    expect = {s: {f.id: f.expected for f in fixtures if f.section == s} for s in ("initial", "dynamic", "lazy")}
    # Badges of the right level, on images in view, added later, and lazy ones scrolled to.
    assert run["initial"] == expect["initial"]
    assert run["dynamic"] == expect["dynamic"]
    assert run["lazy"] == expect["lazy"]
    assert set(run["skipped"].values()) == {"none"}, run["skipped"]

    # Batched: far fewer requests than images, each URL once, at most 100 per request.
    scan = proxy.between(None, "before-force")  # what the scan sent, before the context-menu check
    posts = [r for r in scan if r.method == "POST" and r.path == "/api/v1/checks"]
    sent = _sent_urls(scan)
    distinct = {media.url(f.path) for f in fixtures if f.section != "skipped"}
    assert set(sent) == distinct, set(sent) ^ distinct
    assert len(sent) == len(set(sent)), "each image URL is sent once"
    assert len(posts) <= len(distinct) // 4, f"{len(posts)} requests for {len(distinct)} images"
    assert all(len(json.loads(p.body)["urls"]) <= 100 for p in posts)
    assert not proxy.api("GET", "/api/v1/checks?"), "pending checks are followed by streams, not long polls"
    # The slow image (2.5 s, longer than a POST's wait) is followed by a stream that pushes its verdict.
    streams = [r for r in scan if r.method == "GET" and r.path.startswith("/api/v1/checks/events?")]
    slow = media.url(next(f.path for f in fixtures if f.id == "slow"))
    assert any(b"event: result" in r.response and slow.encode() in r.response for r in streams), streams
    assert all(r.status == 200 and r.response.endswith(b"\n\n") for r in streams)
    # Issue 18's goal, at most one request per 50 images: 100 URLs per POST and one stream for all pending
    # checks make that for a page of hundreds. This page shows its 32 images in three waves (in view, added
    # later, scrolled to), each discovered on its own: each may need a POST and a stream, and one more
    # (its batch split by the coalescing window, a stream reopened after CREDENCE_MAX_STREAM_S or for checks
    # added while it was open). Long polls took up to 8 polls on top of the POSTs here.
    waves = 3
    assert len(posts) + len(streams) <= len(distinct) // 50 + 3 * waves, (len(posts), len(streams), len(distinct))
    # Discovery is lazy and respects what is shown: nothing below the fold before scrolling,
    # srcset/<picture> fallbacks and tiny/hidden images never.
    before_lazy = _sent_urls(proxy.between(None, "before-lazy"))
    assert not {media.url(f.path) for f in fixtures if f.section == "lazy"} & set(before_lazy)
    before_dynamic = _sent_urls(proxy.between(None, "before-dynamic"))
    assert not {media.url(f.path) for f in fixtures if f.section == "dynamic"} & set(before_dynamic)
    never = {f"/{browser}/{name}" for name in ("srcset-2x.jpg", "srcset-fallback.html", "picture-fallback.html",
                                               "tiny.jpg", "hidden.jpg")}
    assert not {media.url(p) for p in never} & set(sent)
    # Outside privacy mode the page address stays in the browser ("send page context" is off).
    assert not [r.path for r in proxy.api() if page_url in r.text()]

    # Reports: Enter on the focused badge and a click on another open the report on the server.
    assert run["focused"] == "credence-badges", "Tab reaches a badge; the page sees only the host"
    assert run["focusedAfterEscape"] == "body", "Escape dismisses the tooltip and leaves the badge"
    # (Tab reaches whichever badge was drawn first; one report per key press, whatever the browser.)
    # The report is the newsroom desk's page (readable without an account when anonymous checks are allowed).
    assert re.fullmatch(re.escape(proxy.url) + r"/desk/(media/[0-9a-f]{64}|checks/[\w-]+)",
                        run["keyboardReport"]["url"] or "")
    report = run["keyboardReport"]["body"].upper()  # a verdict, or (if drawn first) the unavailable one's reason
    assert "CREDENCE DESK" in report and ("VERDICT" in report or "COULD NOT CHECK" in report), report[:500]
    opened = [r for r in proxy.between("before-report", "before-attack")
              if r.method == "GET" and re.match(r"/desk/(media|checks)/", r.path)]
    assert len(opened) == 2, [r.path for r in opened]
    assert re.fullmatch(re.escape(proxy.url) + r"/desk/checks/[\w-]+", run["clickReport"]["url"] or "")
    assert "Could not check" in run["clickReport"]["body"]

    # The page cannot reach into the badges, and what it does to the host is undone.
    attack = run["attack"]
    assert attack["hosts"] == ["credence-badges"] and attack["shadowRoots"] == [None]
    assert attack["attachShadowBlocked"] and attack["buttonsReachable"] == 0 and attack["removed"] == 1
    assert run["afterAttack"] == expect["initial"], "badges still there, same levels, after the attack"
    after = run["afterAttackPage"]
    assert after["hosts"] == ["credence-badges"] and after["attributes"] == [["style"]]
    if browser == "chromium":
        (host,) = run["shadow"]
        assert host["shadowRootType"] == "closed"
        levels = [b["level"] for b in host["badges"]]
        assert sorted(set(levels)) == sorted({f.expected for f in fixtures if f.section != "skipped"})
        assert len(levels) == len([f for f in fixtures if f.section != "skipped"])
        assert all(b["label"].startswith("Credence: ") for b in host["badges"])
        assert all("authentic" not in b["label"].replace("does not mean it is authentic", "") for b in host["badges"])

        popup = run["popup"]
        groups = {g["level"]: g for g in popup["groups"]}
        per_level: dict[str, set[str]] = {}
        for f in fixtures:
            if f.section != "skipped":
                per_level.setdefault(f.expected, set()).add(f.path)
        assert list(groups) == [level.value for level in Level if level.value in per_level], "priority order"
        assert {level: g["count"] for level, g in groups.items()} == {k: len(v) for k, v in per_level.items()}
        assert all(link.startswith(f"{proxy.url}/desk/") for g in popup["groups"] for link in g["links"])
        assert popup["switchOn"] and popup["host"] == "127.0.0.1"
        assert set(run["switchedOff"].values()) == {"none"}, "switching the site off removes its badges"
        assert run["popupAfterOff"]["status"].startswith("Not checking")
        assert run["switchedOn"] == expect["initial"], "switching it on again brings them back"
        assert _sent_urls(proxy.between("before-switch", "before-force")) == [], "... from the cache, no new checks"
        # The menu's "Check this image": the skipped tiny image is checked at once, and badged.
        assert run["forceAnswer"] == {"ok": True}
        assert _sent_urls(proxy.between("before-force", None)) == [media.url(f"/{browser}/tiny.jpg")]
        assert run["forced"] == "no-evidence"
        assert run["workerRestarted"] == {"before": 1, "stopped": True}, "the worker was stopped before the dynamic images"


HOSTILE_WATCH_MS = 6000
HOSTILE_MAX_REMOVALS = 10  # re-attached with backoff: 3 at once, then after 0.25, 0.5, 1, 2, 4 s...


def _check_hardening(browser: str, run: dict, proxy: RecordingProxy, pages: HardeningPages) -> None:
    """Images that are not plain <img> of the document get badges; a page hiding or covering badges
    is reported in the browser's own chrome (the toolbar action, the popup) instead of fought forever."""
    # Shadow root, same- and cross-origin iframe, CSS background, the visible slide: their levels.
    # The clipped slide has no badge, neither on it nor (an orphan) beside the slider.
    assert run["features"] == {**pages.expected, "slide2": "none"}, run["features"]
    sent = set(_sent_urls(proxy.api("POST")))
    assert {pages.image_urls[s] for s in ("shadow", "same", "cross", "bg", "slide1", "cov")} <= sent, sent
    # Slid by 70 px: slide 1's badge sits in its visible part (the slider's edge); slide 2 is checked.
    assert run["slid"] == {"slide1part": "no-evidence", "slide2": "no-evidence"}, run["slid"]
    assert pages.image_urls["slide2"] in set(_sent_urls(proxy.api("POST")))
    # A page removing every node it did not create: re-attached with backoff, not in a hot loop
    # (the issue saw 541 removals in 28 s).
    assert 3 <= run["hostileRemovals"] <= HOSTILE_MAX_REMOVALS, run["hostileRemovals"]
    if browser != "chromium":
        return  # Firefox: automation cannot read the toolbar action nor open the popup (moz-extension://)
    # The toolbar action: the worst level's colour, its count, every count in the title.
    assert run["action"]["text"] == "1" and run["action"]["color"] == [106, 27, 154, 255], run["action"]
    assert run["action"]["title"] == ("Credence: 6 images checked: 1 declared ai-made, 1 verified credentials, "
                                      "1 signed, signer not trusted, 3 no evidence either way."), run["action"]
    warning = "Credence warning: This page hides or covers Credence's badges: trust this list, not the page."
    # The page's fake green badge is what the page shows; the action says the page covers badges.
    assert run["covered"] == "verified", "the fake is on top (the top layer)"
    covered, hostile = run["actionCovered"], run["hostileAction"]
    assert covered["text"] == "!" and covered["title"].startswith(warning), covered
    assert "This page draws over Credence's badges." in covered["title"]
    assert hostile["text"] == "!" and hostile["title"].startswith(warning), hostile
    assert "This page keeps removing Credence's badges." in hostile["title"]
    assert "3 no evidence either way" in run["hostileAction"]["title"]
    # The popup still lists every image with its level and thumbnail, and says why to trust it.
    popup = run["hostilePopup"]
    groups = [{k: g[k] for k in ("level", "count", "thumbs")} for g in popup["groups"]]
    assert groups == [{"level": "no-evidence", "count": 3, "thumbs": 3}], popup
    assert popup["status"] == warning.removeprefix("Credence warning: "), popup


def _check_cloak(browser: str, run: dict, proxy: RecordingProxy, site: CloakSite) -> None:
    """A site serving Credence's fetcher other bytes than the reader (by User-Agent, by cookie, by Referer) is
    flagged "you see different bytes", and the badge shows the verdict of what the browser shows."""
    assert run["rotated"] == {"turned": "no-evidence", "box": "none"}, "a turned image's badge is on its own corner"
    # An image turned 30° by its two ancestors (15° each): the badge's centre, found in the screenshot, lies
    # inside the image's quad as the browser lays it out (Chromium: DevTools' box model; Firefox: getBoxQuads),
    # 15 px along both edges from the image's own top-left corner; its bounding box's corner is empty.
    turned = run["parentRotated"]
    quad = [(p["x"], p["y"]) for p in turned["quad"]]
    badge = turned["badge"]
    assert badge["n"] >= 150, turned  # a badge's fill, not stray pixels
    assert _in_convex(quad, (badge["x"], badge["y"])), turned
    assert abs(math.dist(quad[0], (badge["x"], badge["y"])) - 15 * math.sqrt(2)) < 3, turned
    assert turned["boxCorner"] == "none", turned
    # Seen through perspective (rotateY under `perspective`): no arithmetic places it; the badge's centre lies
    # inside the image's projected quad, near its own top-left corner, and the box's empty corner has none.
    seen = run["perspective"]
    quad = [(p["x"], p["y"]) for p in seen["quad"]]
    badge = seen["badge"]
    assert badge["n"] >= 150 and _in_convex(quad, (badge["x"], badge["y"])), seen
    assert math.dist(quad[0], (badge["x"], badge["y"])) < 60, seen
    assert seen["boxCorner"] == "none", seen
    assert run["cookie"] == "reader=yes", "the page set the reader's cookie"
    assert run["levels"] == site.expected, run
    assert run["marked"] == site.marked, run
    # The extension looked up the bytes it read (with the page's cookie, the browser's User-Agent, the
    # page's referrer set by a declarativeNetRequest rule), then uploaded them (the server did not know
    # them): their verdicts are the ones shown.
    looked_up = {d for r in proxy.api("POST", "/api/v1/lookup") for d in json.loads(r.body)["sha256"]}
    assert {_sha(site.seen[i]) for i in ("ua", "cookie", "referer")} <= looked_up, looked_up
    assert _sha(site.seen["plain"]) not in looked_up, "the same bytes as checked: nothing more to ask"
    # referer.jpg: the page's load and the extension's read sent the page's address, Credence's fetcher none.
    assert site.referers.count(site.url) >= 2 and None in site.referers, site.referers
    # ua.jpg, from another origin: the page's `Referrer-Policy: same-origin` header (no meta) says no Referer, so
    # the page's load and the extension's read (after it, the "different bytes" marker) sent none.
    browser_reads = [referer for fetcher, referer in site.ua_referers if not fetcher]
    assert len(browser_reads) >= 2 and browser_reads == [None] * len(browser_reads), site.ua_referers
    uploads = [r for r in proxy.api("POST", "/api/v1/checks/upload")]
    assert len(uploads) == 3 and all(b'filename="image"' in r.body for r in uploads)
    assert all(site.url.split("/", 3)[2] not in r.text() for r in uploads), "bytes only, no address"
    if browser == "chromium":  # DevTools reads the closed shadow root (Firefox automation cannot)
        (host,) = run["shadow"]
        flagged = [b for b in host["badges"] if b["mismatch"]]
        assert len(flagged) == 3 and all("You see different bytes than Credence checked" in b["label"] for b in flagged)


def _in_convex(quad: list[tuple[float, float]], point: tuple[float, float]) -> bool:
    """Is ``point`` inside the convex polygon ``quad`` (its points in order, either way round)?"""
    px, py = point
    sides = [(bx - ax) * (py - ay) - (by - ay) * (px - ax)
             for (ax, ay), (bx, by) in zip(quad, quad[1:] + quad[:1])]
    return all(side > 0 for side in sides) or all(side < 0 for side in sides)


def _check_report(run: dict, proxy: RecordingProxy, key: str, image_url: str) -> None:
    """Options page takes the reporter's key; "Report as fake" sends the URL and the note with it."""
    assert run["optionsSaved"] == "Saved."
    reports = [r for r in proxy.api("POST") if r.path == "/api/v1/reports"]
    assert [r.status for r in reports] == [401, 201], "first with a wrong key, then with the reporter's"
    report = reports[-1]
    assert json.loads(report.body) == {"url": image_url, "note": "Seen in a debunk: this photo is from 2015."}
    assert report.headers.get("Authorization") == f"Bearer {key}"
    assert report.status == 201, report.response
    entry = json.loads(report.response)
    assert entry["status"] == "pending" and entry["notes"] == "Seen in a debunk: this photo is from 2015."
    assert run["reportResult"].startswith("Thank you")
    assert run["reportWithoutKey"].startswith("The server did not accept this API key"), run["reportWithoutKey"]


def _check_privacy(run: dict, expected: dict[str, str], proxy: RecordingProxy, page_url: str,
                   served: dict[str, bytes], inline_b64: str, media: MediaServer, uploads: bool) -> None:
    assert run["initial"] == expected
    records = [r for r in proxy.records if r.method != "MARK"]
    assert records, "privacy mode still talks to the server"
    host = f"127.0.0.1:{media.port}"
    for record in records:
        text = record.text()
        assert page_url not in text and host not in text, f"address leaked: {record.method} {record.path}"
        assert inline_b64[:64] not in text, "the data: URL itself never leaves"
        assert record.path in ("/api/v1/lookup", "/api/v1/checks/upload") or record.path.startswith("/api/v1/checks?ids="), record.path
    lookups = [json.loads(r.body)["sha256"] for r in records if r.path == "/api/v1/lookup" and r.method == "POST"]
    looked_up = {d for body in lookups for d in body}
    assert _sha(served["known"]) in looked_up and _sha(served["unknown"]) in looked_up
    assert len(lookups) <= 2, "hashes are looked up in batches"
    upload_posts = [r for r in records if r.path == "/api/v1/checks/upload" and r.method == "POST"]
    assert len(upload_posts) == (2 if uploads else 0)
    for r in upload_posts:
        assert b'filename="image"' in r.body


UPLOAD_HELD = "u0"  # the image whose upload's answer the proxy holds back


def _check_uploads(run: dict, proxy: RecordingProxy, uploaded: dict[str, bytes]) -> None:
    """Privacy-mode uploads in parallel, each verdict shown as it comes (issue 18: 40 unknown images showed
    nothing for 19 s, then all at once): the other images' badges showed while one upload's answer was held."""
    others = {name: "no-evidence" for name in uploaded if name != UPLOAD_HELD}
    assert run["beforeRelease"] == {**others, UPLOAD_HELD: "none"}, run["beforeRelease"]
    assert run["after"] == dict.fromkeys(uploaded, "no-evidence"), run["after"]
    names = [r.path for r in proxy.records if r.method == "MARK"]
    assert names.index("held") < names.index("others-shown") < names.index("released"), names
    # Each image went up once, and nothing was asked after the release but (at most) a stream following the
    # held upload: so the held answer itself gave its badge, and it was still awaited while the others showed
    # (an upload given up on by the extension's 20 s timeout would have left it without one).
    ups = proxy.api("POST", "/api/v1/checks/upload")
    assert len(ups) == len(uploaded) and all(sum(data in r.body for r in ups) == 1 for data in uploaded.values())
    after = proxy.between("released", None)
    assert all(r.method == "GET" and r.path.startswith("/api/v1/checks") for r in after), [r.path for r in after]
    for r in proxy.records:
        assert "uploads-page.html" not in r.text() and "/u0.jpg" not in r.text(), "no address leaves"


def _server_levels(base: str, urls: list[str]) -> dict[str, str]:
    """The server's own verdict level for each URL (its cache answers: the extension checked them)."""
    results = requests.post(f"{base}/api/v1/checks", json={"urls": urls, "wait": 5}, timeout=30).json()["results"]
    pending = [r["check_id"] for r in results if r["status"] != "done"]
    done = wait_done(base, pending, timeout=120) if pending else {}
    return {url: (done.get(r["check_id"], r)["verdict"] or {}).get("level") for url, r in zip(urls, results)}


def _check_video(run: dict, proxy: RecordingProxy, videos: VideoPage, media: MediaServer, base: str,
                 browser: str) -> None:
    p = {name: media.url(path) for name, path in videos.paths.items()}
    # What the server received: the file each video plays, and the poster (an image of its own, by its
    # URL); not the <source> no browser plays, never a blob: address or a stream.
    first = _sent_urls(proxy.between(None, "before-dynamic"))
    assert sorted(first) == sorted([p["mp4"], p["webm"], p["poster"]]), first
    assert _sent_urls(proxy.between("before-dynamic", "before-swap")) == [p["dynamic"]]
    assert _sent_urls(proxy.between("before-swap", None)) == [p["swap"]], "the new source is checked, not the poster"
    for record in proxy.records:
        text = record.text()
        assert "blob:" not in text and "stream:" not in text, f"a streamed video leaked: {record.path}"
        for name in ("blob", "mse", "unplayable"):
            assert videos.paths[name] not in text, f"{name} was sent: {record.path}"

    # Badges with the server's level on videos with a file, "not checkable" on streamed ones.
    server = _server_levels(base, [p["mp4"], p["webm"], p["dynamic"], p["swap"], p["poster"]])
    assert all(server.values()), server
    # The poster: its own badge beside the video's while the video shows it, with the poster's level
    # (not the video's), gone once the video plays, back when a new load shows the poster again.
    assert server[p["poster"]] == POSTER_LEVEL != server[p["mp4"]], server
    assert run["poster"] == {"video": server[p["mp4"]], "poster": POSTER_LEVEL}, run["poster"]
    assert run["posterPlaying"] == {"video": server[p["mp4"]], "poster": "none"}, run["posterPlaying"]
    assert run["posterAfterSwap"] == {"video": server[p["swap"]], "poster": POSTER_LEVEL}, run["posterAfterSwap"]
    states = run["states"]
    assert states["vblob"]["currentSrc"].startswith("blob:") and states["vmse"]["currentSrc"].startswith("blob:")
    assert states["vsources"]["currentSrc"] == p["webm"], states
    assert run["initial"] == {"vsrc": server[p["mp4"]], "vsources": server[p["webm"]],
                              "vblob": "not-checkable", "vmse": "not-checkable"}, (run["initial"], server)
    # On a playing video, and following it when it is resized and scrolled.
    play = run["play"]
    assert "error" not in play and play["paused"] is False and play["currentTime"] > 0, play
    assert run["playing"] == server[p["mp4"]]
    moved = run["moved"]
    assert moved["to"]["left"] != moved["from"]["left"] and moved["to"]["top"] != moved["from"]["top"], moved
    assert moved["level"] == server[p["mp4"]] and moved["oldCorner"] != server[p["mp4"]], moved
    assert run["dynamic"] == {"vdyn": server[p["dynamic"]]}
    assert run["swappedSrc"] == p["swap"] and run["swapped"] == {"vsrc": server[p["swap"]]}
    # The player goes fullscreen: the badge goes with it, and comes back to the page after. Headless Firefox
    # ESR denies every fullscreen request (even with the pref that allows untrusted ones), so there the
    # move is not seen; the badge must at least stay on the page.
    if browser == "firefox":
        assert run["fullscreen"] == {"element": None, "error": "TypeError: Fullscreen request denied",
                                     "level": server[p["swap"]], "after": server[p["swap"]]}, run["fullscreen"]
        return  # Firefox: automation reads neither the closed shadow root nor the popup
    assert run["fullscreen"] == {"element": "player", "level": server[p["swap"]], "after": server[p["swap"]]}, \
        run["fullscreen"]
    # The poster's badge says it is the poster's (its accessible label), and so does its popup row.
    (label,) = [b["label"] for b in run["posterLabels"]]
    assert label.startswith("Credence: Poster image, shown before the video plays. Declared AI-made"), label
    rows = {g["level"]: g["texts"] for g in run["popup"]["groups"]}
    assert rows[POSTER_LEVEL] == [f"Video poster: 127.0.0.1:{media.port}{videos.paths['poster']}"], rows
    assert not any(t.startswith("Video poster") for level, texts in rows.items() if level != POSTER_LEVEL
                   for t in texts), rows


@pytest.mark.skipif(not os.environ.get("CREDENCE_EXT_BENCH"), reason="a benchmark, not a test: CREDENCE_EXT_BENCH=1")
@pytest.mark.parametrize("browser", ["chromium", "firefox"])
def test_extension_benchmark(browser: str, credence: Credence, tmp_path: Path) -> None:
    """The extension's cost on a 300-image page in Chromium or Firefox, with and without it
    (extension/e2e/bench.mjs; Firefox has no DevTools metrics: CPU times from /proc in both).

    Prints figures for docs/extension.md; asserts only that it ran. Goals (issue 18): extension script
    < 20 ms per 100 images, <= 1 request per 50 images, all badges within 2x the server's own time.
    """
    need(NODE and (EXTENSION / "node_modules" / "playwright-core").exists(), "npm packages of extension/")
    need(BROWSERS[browser], f"{browser} (Debian package)")
    # CREDENCE_EXT_BENCH_SRC: another copy of the extension's src/ to compare (e.g. an older version).
    source = Path(os.environ.get("CREDENCE_EXT_BENCH_SRC") or EXTENSION / "src")
    config = {"server": credence.base, "browser": browser, "chromium": BROWSERS["chromium"],
              "firefox": BROWSERS["firefox"], "images": 300,
              "extensionDir": str(prepare_extension(tmp_path / "ext-bench", source=source, server=credence.base)),
              "output": str(tmp_path / "bench.json")}
    # A reader's browser and Credence's server are different machines. By default the bench runs the server
    # (its Redis, API and worker) at the lowest CPU priority, so that on this machine's shared cores the
    # server's checks wait for the browser and not the other way round: its work does not count as the
    # extension's script time. CREDENCE_EXT_BENCH_SERVER_NICE=0: the same priority for all.
    nice = int(os.environ.get("CREDENCE_EXT_BENCH_SERVER_NICE", "19"))
    config["server_nice"] = nice
    (tmp_path / "bench-config.json").write_text(json.dumps(config))
    server_side = psutil.Process().children(recursive=True)  # redis-server and `credence serve`'s tree
    try:
        for process in server_side:
            process.nice(nice)
        proc = subprocess.run([NODE, "e2e/bench.mjs", str(tmp_path / "bench-config.json")], cwd=EXTENSION,
                              capture_output=True, text=True, timeout=600)
    finally:
        for process in server_side:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.nice(0)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    result = json.loads((tmp_path / "bench.json").read_text())
    result.update(_server_in_run(credence, result["with"]))
    print("\n" + json.dumps(result, indent=1))


def _server_in_run(credence: Credence, run: dict) -> dict:
    """When the server got and finished the page's checks in the run with the extension (its records), beside the
    browser: how long it took there, and how long after its last verdict the last badge showed."""
    with Database(settings_from(credence.env).sqlalchemy_url).reading() as session:
        first, last = session.execute(
            select(func.min(models.Check.created_at), func.max(models.Check.updated_at))
            .where(models.Check.url.like("%/ext/%.png"), models.Check.status == "done")).one()
    if first is None or run["all_badges_ms"] is None:
        return {}
    start = datetime.fromtimestamp(run["page_start_epoch_ms"] / 1000, timezone.utc)

    def ms(at: datetime) -> int:  # after the page's start (SQLite gives the stored UTC time without its zone)
        return round((at.replace(tzinfo=at.tzinfo or timezone.utc) - start).total_seconds() * 1000)
    return {"server_in_run_ms": ms(last) - ms(first), "server_last_verdict_ms": ms(last),
            "badges_after_last_verdict_ms": run["all_badges_ms"] - ms(last),
            "badges_vs_server_in_run": round(run["all_badges_ms"] / (ms(last) - ms(first)), 2)}
