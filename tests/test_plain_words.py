"""Plain words everywhere a person reads (issue 21): the desk's report for one content of each level and for a
video, in real Chromium, shows no raw code outside the details toggles, and each toggle still holds its code.

Real files (signed with c2pa-python, a video made with PyAV) go through the worker's own job in-process; the
desk is the real app served over HTTP in a thread; one browser session reads every page. The screenshots
go to artifacts/ (CREDENCE_ARTIFACTS overrides) for a person to look at.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import c2pa
import pytest

from server import models
from server.banks import service as banks
from server.checks import records
from server.verdicts import Evidence, Level, fuse
from tests.c2pa_kit import Leaf, SigningCA, make_ca, sign
from tests.clips import make_clip
from tests.helpers import SHARED_TRUST, free_port
from tests.images import jpeg_bytes, photo
from tests.test_desk import PASSWORD, login, make_app, upload
from tests.test_desk_browser import CHROMIUM, LAUNCH_ARGS, artifacts_dir, need_browser_and_trust
from worker.banks import jobs as bank_jobs

AI_INTENT = (c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
# What a reader must never meet outside a details toggle, written out by hand: C2PA action and assertion
# labels, IPTC vocabulary addresses and terms (camelCase), the digitalSourceType property, validation status
# codes (dotted, with a camelCase part), ingredient relationships and FFmpeg's comma lists of format names.
RAW = {
    "C2PA label": re.compile(r"\bc2pa\.[a-z_]"),
    "IPTC address": re.compile(r"cv\.iptc\.org|newscodes/digitalsourcetype", re.I),
    "digitalSourceType": re.compile(r"digitalsourcetype", re.I),
    "relationship": re.compile(r"\b(?:parentOf|componentOf|inputTo)\b"),
    "camelCase term": re.compile(r"\b[a-z]{2,}(?:[A-Z][a-z]+)+\b"),
    "format list": re.compile(r"\b[a-z][a-z0-9]*(?:,[a-z][a-z0-9]*)+\b"),
}
DOTTED = re.compile(r"\b[A-Za-z][\w-]*(?:\.[\w-]+)+\b")
CAMEL = re.compile(r"[a-z][A-Z]")
VISIBLE_TEXT = """() => {
  const hidden = [...document.querySelectorAll('details')];
  const before = hidden.map(d => d.style.display);
  hidden.forEach(d => { d.style.display = 'none'; });
  const text = document.body.innerText;
  hidden.forEach((d, i) => { d.style.display = before[i]; });
  return text;
}"""


def raw_codes(text: str) -> list[str]:
    """Every raw code in ``text``; a validation status code is a dotted name with a camelCase part."""
    found = [(name, m) for name, pattern in RAW.items() for m in pattern.finditer(text)]
    found += [("validation code", m) for m in DOTTED.finditer(text) if CAMEL.search(m.group(0))]
    return [f"{name}: {m.group(0)!r} in …{text[max(0, m.start() - 60):m.end() + 60]!r}…" for name, m in found]


def test_the_patterns_catch_what_the_issue_saw() -> None:
    seen = ["c2pa.opened", "c2pa.color_adjustments", "c2pa.created digitalSourceType in ingredient 'image.webp', "
            "parentOf", "signingCredential.untrusted", "assertion.dataHash.mismatch", "timeStamp.untrusted",
            "claimSignature.mismatch", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "trainedAlgorithmicMedia",
            "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"]
    for text in seen:
        assert raw_codes(text), text
    words = ("Adjusted colour or tone with PhotoDesk 9. Size 12,345 bytes; MP4/QuickTime, H.264 (AVC). Signed by "
             "Daily Planet (Desk Editor). river-capture.jpg, the file this one was made from. PDQ distance 12 of 256.")
    assert raw_codes(words) == []


class Contents:
    """One content of each level and a video, analysed by the worker's job: ``sha`` by level."""

    def __init__(self, app, svc, newsroom: SigningCA, elsewhere: SigningCA) -> None:
        client = app.test_client()
        login(client, "rita")
        camera, editor = newsroom.leaf("Test Camera 7", "Acme Photo"), newsroom.leaf("Desk Editor", "Daily Planet")
        stranger = elsewhere.leaf("Studio Cam", "Unknown Studio")
        edit = {"title": "flood-edit.jpg", "claim_generator_info": [{"name": "PhotoDesk", "version": "9"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "PhotoDesk", "version": "9"}}]}}]}

        def image(seed: int) -> bytes:
            return jpeg_bytes(photo(seed, (480, 360)), 88)

        def edit_of(parent: bytes, title: str, leaf: Leaf, seed: int) -> bytes:
            return sign(image(seed), leaf, edit, intent=(c2pa.C2paBuilderIntent.EDIT,),
                        ingredients=(({"title": title, "relationship": "parentOf"}, "image/jpeg", parent),))[0]

        generated = {"title": "image.webp", "claim_generator_info": [{"name": "ImageGen", "version": "3"}]}
        files = {
            "verified": edit_of(sign(image(3), camera)[0], "river-capture.jpg", editor, 4),
            # Signer and parent both outside the trust list: the untrusted signer is named for each.
            "signed-untrusted": edit_of(sign(image(5), stranger)[0], "studio.jpg", stranger, 6),
            "ai-declared": edit_of(sign(image(7), stranger, generated, intent=AI_INTENT)[0], "image.webp", stranger, 8),
            "tampered": _flip_pixel(sign(image(9), stranger)[0]),
            "unavailable": sign(image(10), camera, remote_url="https://credentials.example/m/10.c2pa", embed=False)[0],
            "no-evidence": image(11),
            "known-fake": image(12),
            "likely-synthetic": image(13),
        }
        self.sha = {level: upload(svc, client, data, f"{level}.jpg") for level, data in files.items()}
        self.sha["video"] = upload(svc, client, make_clip(seed=7, seconds=2.0, size=(320, 180), fmt="mp4"), "clip.mp4")
        with svc.db.session() as session:
            bank = banks.create_bank(session, name="debunked", kind="fake", actor="test")
            fake = session.get(models.Media, self.sha["known-fake"])
            # Hashes only (no stored image): the match shows a placeholder, and so does a pending entry's tile.
            entry = banks.submit_entry(session, bank, actor="test", label="Shark on the flooded highway",
                                       pdq=fake.pdq, pdq_quality=fake.pdq_quality, phash=fake.phash)
            banks.decide(session, entry, action="confirm", actor="desk:rita", note="the 2005 original")
            banks.submit_entry(session, bank, actor="test", label="Pending hashes", pdq="0f" * 32, pdq_quality=90)
            entry_id = entry.id
        bank_jobs.rematch_entry(svc, entry_id)
        _detector_verdict(svc, self.sha["likely-synthetic"])


def _flip_pixel(data: bytes) -> bytes:
    """One bit of the main image's entropy-coded data flipped: the pixels no longer match the signature."""
    at = data.rfind(b"\xff\xda") + 400
    while data[at] in (0x00, 0xFE, 0xFF) or data[at - 1] == 0xFF:
        at += 1
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _detector_verdict(svc, sha: str) -> None:
    """A detector's score recorded beside the real analysis (the instance runs with detection off)."""
    with svc.db.session() as session:
        body = records.current_verdict(session, sha, svc.detectors_stamp()).body
    evidence = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != "detect"] + [
        Evidence(stage="detect", kind="synthetic-score", score=0.87, supports=Level.LIKELY_SYNTHETIC,
                 summary="The image scores 0.87 on the test detector, at or above its threshold 0.62: "
                         "likely synthetic.",
                 details={"detector": "test-cnn", "band": "likely-synthetic", "calibration": {"threshold": 0.62}})]
    with svc.db.session() as session:
        records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                             timings={**body["timings"], "detect": 640.0}))


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The real app over HTTP (a thread), its contents analysed, and one Chromium."""
    need_browser_and_trust()
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("plain-words")
    (folder / "data").mkdir()
    newsroom, elsewhere = make_ca("Newsroom"), make_ca("Elsewhere")
    (folder / "newsroom-root.pem").write_bytes(newsroom.root_pem)
    app, svc = make_app(folder / "data", trust_anchors_path=str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
                        trust_tsa_anchors_path=str(SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"),
                        trust_user_anchors_path=str(folder / "newsroom-root.pem"))
    started = time.monotonic()
    contents = Contents(app, svc, newsroom, elsewhere)
    print(f"\ncontents analysed in {time.monotonic() - started:.1f}s")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield {"base": f"http://127.0.0.1:{server.server_port}", "browser": browser, "sha": contents.sha}
        finally:
            browser.close()
            server.shutdown()
            thread.join(timeout=10)


def test_every_report_speaks_in_words_with_the_codes_on_demand(desk) -> None:
    started = time.monotonic()
    context = desk["browser"].new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    base, sha = desk["base"], desk["sha"]
    try:
        page.goto(f"{base}/desk/login")
        page.get_by_label("User name").fill("rita")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/desk/")
        shown: dict[str, str] = {}
        for level, digest in sha.items():
            page.goto(f"{base}/desk/media/{digest}")
            badge = page.locator("#verdict .badge").get_attribute("data-level")
            expected = "no-evidence" if level == "video" else level
            assert badge == expected, (level, page.locator(".summary").inner_text())
            text = page.evaluate(VISIBLE_TEXT)
            assert not raw_codes(text), (level, raw_codes(text))
            shown[level] = text
            page.screenshot(path=str(artifacts_dir() / f"plain-words-{level}.png"), full_page=True)

        # The words that replaced the codes, as the issue saw them.
        assert "Adjusted colour or tone with PhotoDesk 9" in shown["verified"]
        assert "Opened an existing file to work on" in shown["verified"]
        assert "the file this one was made from" in shown["verified"]
        assert ("found in the digital source type of the “created” step, in the credentials of ingredient "
                "'image.webp', the file this one was made from") in shown["ai-declared"]
        assert "MP4/QuickTime" in shown["video"] and "H.264 (AVC)" in shown["video"]
        assert "The pixels were changed after signing" in shown["tampered"]
        # An untrusted signer is listed once, as not confirmed, never as a failed check beside "Valid".
        untrusted = shown["signed-untrusted"]
        assert "Valid: intact, but the signer is not on your trust list" in untrusted
        assert "What failed validation" not in untrusted and "What could not be confirmed" in untrusted
        listed = page_section(untrusted, "What could not be confirmed")
        assert listed.count("does not chain to an anchor on your trust list") == 1, listed
        assert "What failed validation" in shown["tampered"] and "What could not be confirmed" in shown["tampered"]

        # Each code is one click away: the toggles hold the raw values.
        page.goto(f"{base}/desk/media/{sha['verified']}")
        toggles = " ".join(page.locator("#provenance details.raw").all_text_contents())
        for code in ("c2pa.opened", "c2pa.color_adjustments", "parentOf"):
            assert code in toggles, toggles
        action = page.locator("#provenance .actions-list details.raw").last
        action.locator("summary").click()
        assert "c2pa.color_adjustments" in action.inner_text()
        page.goto(f"{base}/desk/media/{sha['video']}")
        assert "mov,mp4,m4a,3gp,3g2,mj2, h264" in page.locator("#video details.raw").text_content()
        page.goto(f"{base}/desk/media/{sha['signed-untrusted']}")
        assert "signingCredential.untrusted" in page.locator("#provenance .failures details.raw").first.text_content()

        # The JSON export keeps the codes in details and the words in the summaries.
        exported = context.request.get(f"{base}/desk/media/{sha['ai-declared']}/export.json").json()
        [declared] = exported["ai_declarations"]
        assert declared["details"]["declarations"][0]["field"].startswith("c2pa.created digitalSourceType in "
                                                                          "ingredient 'image.webp', parentOf")
        assert not raw_codes(declared["summary"]) and not raw_codes(exported["verdict"]["summary"])
        assert [a["action"] for a in exported["provenance"][0]["details"]["actions"]] == [
            "c2pa.opened", "c2pa.color_adjustments"]

        # A hash-only entry's tile keeps its placeholder whole ("hashes only" on one line, not "has hes only").
        page.goto(f"{base}/desk/curation")
        tile = page.locator("#queue .result").filter(has_text="Pending hashes").locator(".noimg")
        assert tile.inner_text() == "hashes only"
        lines = tile.evaluate("e => { const r = document.createRange(); r.selectNodeContents(e); "
                              "return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }")
        assert lines == 1, f"the placeholder wraps over {lines} lines"
        assert tile.bounding_box()["width"] >= 96
        page.screenshot(path=str(artifacts_dir() / "plain-words-curation.png"), full_page=True)
        assert not problems, problems
    finally:
        context.close()
    elapsed = time.monotonic() - started
    print(f"\nplain-words walk {elapsed:.1f}s")
    assert elapsed < 60


def page_section(text: str, heading: str) -> str:
    """The lines under ``heading`` up to the next heading-like line."""
    after = text.split(heading, 1)[1].strip().splitlines()
    out = []
    for line in after:
        if line.strip() in ("Actions", "Ingredients", "What failed validation") or line.startswith("Thumbnail"):
            break
        out.append(line)
    return "\n".join(out)
