"""Issue 21: PDF reports that print. Every report type (an image at each level, a known fake beside its
bank entry, a detector's heat map, a video with keyframes) is exported through the desk's route on A4 and
on Letter, and the positions are read back from the PDF itself (glyph advances from the embedded font
widths, images from the drawing operators), not from what the renderer meant to draw: no two text boxes
overlap, no text overlaps an image, nothing leaves the page box minus its margins, figures keep their
captions, page 1 has the verdict and how to cite, and every page says "page N of M".

The PDFs go to artifacts/pdf/ (CREDENCE_ARTIFACTS overrides), with page images when poppler's pdftoppm
is installed.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ArrayObject, ContentStream, NumberObject, TextStringObject

from server import models
from server.banks import service as banks
from server.checks import records
from server.verdicts import Evidence, Level, fuse
from tests.helpers import ROOT
from tests.images import jpeg_bytes, photo
from tests.test_desk import login, make_app, record_video_verdict, upload, video_thumbs
from worker.banks import jobs as bank_jobs

MM = 72 / 25.4
PAPERS = {"a4": (210.0, 297.0), "letter": (215.9, 279.4)}  # mm
SIDE = 15.0  # mm: text and images stay this far inside the left, right and top edges
FOOT = 6.0  # mm: the footer stays this far above the bottom edge
EPS = 0.05  # mm: touching is not overlapping
INSTANCE = "Daily Planet verification desk"
LONG_URL = ("https://www.example-news-site.org/2026/11/30/world/europe/flooded-highway-shark-photo-"
            "debunked-composite-image-viral-again/index.html?utm_source=twitter&utm_medium=social&"
            "utm_campaign=factcheck_0123456789abcdef0123456789abcdef")


# ---------------------------------------------------------------------------- reading positions back

@dataclass(frozen=True)
class Box:
    """A drawn thing on one page in millimetres from the top-left corner."""

    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    text: str = ""
    pixels: tuple[int, int] | None = None  # an image's own size

    def overlaps(self, other: Box) -> bool:
        return (min(self.x1, other.x1) - max(self.x0, other.x0) > EPS
                and min(self.bottom, other.bottom) - max(self.top, other.top) > EPS)


class Font:
    """Advance widths (1/1000 em) and the ascent and descent of a font as the PDF declares it."""

    def __init__(self, font) -> None:
        if font["/Subtype"] == "/Type0":  # fpdf2's embedded TrueType subset: 2-byte glyph ids
            cid = font["/DescendantFonts"][0].get_object()
            self.two_bytes, self.default = True, float(cid.get("/DW", 1000))
            self.widths = _cid_widths(cid.get("/W", []))
            descriptor = cid["/FontDescriptor"].get_object()
            self.ascent, self.descent = float(descriptor["/Ascent"]), float(descriptor["/Descent"])
            self.chars = _to_unicode(font["/ToUnicode"].get_object().get_data().decode("latin-1"))
        else:  # a core font: the standard metrics fpdf2 ships (Adobe's AFM widths)
            from fpdf.fonts import CORE_FONTS, CORE_FONTS_CHARWIDTHS

            key = {v: k for k, v in CORE_FONTS.items()}[str(font["/BaseFont"])[1:]]
            self.two_bytes, self.default = False, 0.0
            self.widths = {ord(c): float(w) for c, w in CORE_FONTS_CHARWIDTHS[key].items()}
            self.ascent, self.descent = 718.0, -207.0  # Helvetica's
            self.chars = {code: bytes([code]).decode("cp1252", "replace") for code in range(256)}

    def glyphs(self, raw: bytes) -> list[tuple[str, float]]:
        codes = ([int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)] if self.two_bytes
                 else list(raw))
        return [(self.chars.get(c, "?"), self.widths.get(c, self.default)) for c in codes]


def _cid_widths(w: list) -> dict[int, float]:
    out: dict[int, float] = {}
    i = 0
    while i < len(w):
        first = int(w[i])
        if isinstance(w[i + 1], ArrayObject):
            out.update({first + k: float(v) for k, v in enumerate(w[i + 1])})
            i += 2
        else:
            out.update({c: float(w[i + 2]) for c in range(first, int(w[i + 1]) + 1)})
            i += 3
    return out


def _to_unicode(cmap: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = bytes.fromhex(dst).decode("utf-16-be", "replace")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        for lo, hi, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            for k in range(int(hi, 16) - int(lo, 16) + 1):
                out[int(lo, 16) + k] = chr(int(dst, 16) + k)
    return out


def _mul(m: list[float], n: list[float]) -> list[float]:
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return [a * p + b * r, a * q + b * s, c * p + d * r, c * q + d * s, e * p + f * r + t, e * q + f * s + u]


def _raw(value) -> bytes:
    """A string operand's bytes (pypdf may have read 2-byte glyph ids as UTF-16 and gives them back with a BOM)."""
    raw = value.get_original_bytes() if isinstance(value, TextStringObject) else bytes(value)
    return raw[2:] if raw.startswith(b"\xfe\xff") else raw


def page_boxes(reader: PdfReader, index: int) -> tuple[list[Box], list[Box]]:
    """(text boxes, image boxes) of one page: one text box per shown string, from its first to its last
    visible glyph, as tall as the font's ascent and descent."""
    page = reader.pages[index]
    resources = page["/Resources"]
    fonts = {name: Font(ref.get_object()) for name, ref in (resources.get("/Font") or {}).items()}
    xobjects = resources.get("/XObject") or {}
    height = float(page.mediabox.height)
    texts: list[Box] = []
    images: list[Box] = []
    ctm, stack = [1.0, 0, 0, 1.0, 0, 0], []
    tm = line = [1.0, 0, 0, 1.0, 0, 0]
    font, size, tc, tw, th, leading, rise = None, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0

    def box(x0: float, y0: float, x1: float, y1: float, **kw) -> Box:
        return Box(index, x0 / MM, (height - y1) / MM, x1 / MM, (height - y0) / MM, **kw)

    def show(parts: list) -> None:
        nonlocal tm
        pen, first, last, text = 0.0, None, None, ""
        for part in parts:
            if isinstance(part, (int, float, NumberObject)) or not hasattr(part, "__len__"):
                pen -= float(part) / 1000 * size * th
                continue
            for char, width in font.glyphs(_raw(part)):
                advance = (width / 1000 * size + tc + (tw if char == " " and not font.two_bytes else 0)) * th
                if not char.isspace():
                    first = pen if first is None else first
                    last = pen + width / 1000 * size * th
                text += char
                pen += advance
        if first is not None:
            m = _mul(tm, ctm)
            assert abs(m[1]) < 1e-6 and abs(m[2]) < 1e-6, "no rotated text"
            x, y = m[4], m[5] + rise * m[3]
            texts.append(box(x + first * m[0], y + font.descent / 1000 * size * m[3],
                             x + last * m[0], y + font.ascent / 1000 * size * m[3], text=text.strip()))
        tm = _mul([1, 0, 0, 1, pen, 0], tm)

    for operands, op in ContentStream(page.get_contents(), reader).operations:
        op = op.decode()
        if op == "q":
            stack.append(ctm)
        elif op == "Q":
            ctm = stack.pop()
        elif op == "cm":
            ctm = _mul([float(v) for v in operands], ctm)
        elif op == "BT":
            tm = line = [1.0, 0, 0, 1.0, 0, 0]
        elif op == "Tf":
            font, size = fonts[operands[0]], float(operands[1])
        elif op in ("Td", "TD"):
            if op == "TD":
                leading = -float(operands[1])
            tm = line = _mul([1, 0, 0, 1, float(operands[0]), float(operands[1])], line)
        elif op == "Tm":
            tm = line = [float(v) for v in operands]
        elif op == "T*":
            tm = line = _mul([1, 0, 0, 1, 0, -leading], line)
        elif op == "TL":
            leading = float(operands[0])
        elif op == "Tc":
            tc = float(operands[0])
        elif op == "Tw":
            tw = float(operands[0])
        elif op == "Tz":
            th = float(operands[0]) / 100
        elif op == "Ts":
            rise = float(operands[0])
        elif op == "Tj":
            show([operands[0]])
        elif op == "TJ":
            show(list(operands[0]))
        elif op in ("'", '"'):
            raise AssertionError(f"text operator {op} is not read by this test")
        elif op == "Do":
            xobject = xobjects[operands[0]].get_object()
            if xobject["/Subtype"] == "/Image":
                corners = [(ctm[0] * u + ctm[2] * v + ctm[4], ctm[1] * u + ctm[3] * v + ctm[5])
                           for u, v in ((0, 0), (1, 0), (0, 1), (1, 1))]
                xs, ys = [p[0] for p in corners], [p[1] for p in corners]
                images.append(box(min(xs), min(ys), max(xs), max(ys),
                                  pixels=(int(xobject["/Width"]), int(xobject["/Height"]))))
    return texts, images


def layout_problems(data: bytes, paper: str) -> list[str]:
    """Everything wrong with where things are; an empty list when the PDF prints cleanly."""
    reader = PdfReader(io.BytesIO(data))
    width, height = PAPERS[paper]
    problems = []
    for index, page in enumerate(reader.pages):
        if abs(float(page.mediabox.width) / MM - width) > 0.5 or abs(float(page.mediabox.height) / MM - height) > 0.5:
            problems.append(f"page {index + 1} is {page.mediabox}, not {paper}")
        texts, images = page_boxes(reader, index)
        numbers = [t for t in texts if t.text.startswith("page ")]
        footer = [t for t in texts if numbers and abs(t.bottom - numbers[-1].bottom) < 0.2]
        line = " ".join(t.text for t in sorted(footer, key=lambda t: t.x0))
        if not line.endswith(f"page {index + 1} of {len(reader.pages)}"):
            problems.append(f"page {index + 1}: no page number in the footer {line!r}")
        body = [t for t in texts if t not in footer] + images
        for item in footer + body:
            if item.x0 < SIDE - EPS or item.x1 > width - SIDE + EPS or item.top < SIDE - EPS \
                    or item.bottom > height - FOOT + EPS:
                problems.append(f"page {index + 1}: outside the margins: {item}")
        footer_top = min((t.top for t in footer), default=height)
        problems += [f"page {index + 1}: runs into the footer: {item}" for item in body if item.bottom > footer_top]
        everything = texts + images
        for i, a in enumerate(everything):
            for b in everything[i + 1:]:
                if a.overlaps(b):
                    problems.append(f"page {index + 1}: overlap:\n  {a}\n  {b}")
    return problems


def caption_problems(data: bytes, captions: tuple[str, ...]) -> list[str]:
    """Each caption's first line sits right under an image on the same page, within its width."""
    reader = PdfReader(io.BytesIO(data))
    problems = []
    for index in range(len(reader.pages)):
        texts, images = page_boxes(reader, index)
        for text in texts:
            if not text.text.startswith(captions):
                continue
            above = [img for img in images if 0 <= text.top - img.bottom <= 2.5 and img.x0 - 0.5 <= text.x0 <= img.x1]
            if not above:
                problems.append(f"page {index + 1}: caption without its figure: {text}")
    return problems


def keep(name: str, data: bytes) -> None:
    """The PDF in the artifacts folder for a person to look at, with each page as a PNG (pdfium renders it)."""
    folder = Path(os.environ.get("CREDENCE_ARTIFACTS") or ROOT / "artifacts") / "pdf"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pdf").write_bytes(data)
    document = pdfium.PdfDocument(data)
    try:
        for number, page in enumerate(document, start=1):
            page.render(scale=1).to_pil().save(folder / f"{name}-{number}.png")
    finally:
        document.close()


# ---------------------------------------------------------------------------- the reports

def _orientation_6_jpeg() -> bytes:
    """A phone's portrait capture: stored 400 x 300 sideways, red in its stored top-left corner, EXIF orientation 6
    (turn 90 degrees clockwise to view), so upright it is 300 x 400 with the red in the top-right corner."""
    img = photo(40, (400, 300))
    img.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _replace_verdict(svc, sha: str, extra: list[Evidence], drop_stage: str | None = None) -> None:
    """The media's verdict again with ``extra`` evidence, as the worker would record it."""
    with svc.db.session() as session:
        body = records.current_verdict(session, sha, svc.detectors_stamp()).body
        check_id = session.query(models.Check.id).filter_by(sha256=sha).first()[0]
    evidence = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != drop_stage] + extra
    with svc.db.session() as session:
        verdict_id = records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                                          timings=body["timings"]))
        records.complete_check(session, check_id, verdict_id)


def _detection(heat_sha: str, summary_words: int = 0) -> list[Evidence]:
    padding = " The detector was trained on press photographs and generated images." * summary_words
    return [
        Evidence(stage="detect", kind="synthetic-score", score=0.91, supports=Level.LIKELY_SYNTHETIC,
                 summary="The image scores 0.91 on the test detector, at or above its threshold 0.50: likely "
                         "synthetic." + padding,
                 details={"detector": "test-cnn", "version": "test-cnn@2026-11-30-" + "f" * 40,
                          "band": "likely-synthetic", "calibration": {"threshold": 0.5},
                          "heatmap": {"sha256": heat_sha, "format": "png", "box": [0, 0, 640, 480]}}),
        Evidence(stage="detect", kind="face-manipulation-score", score=0.2,
                 summary="The face scores 0.20 on the face detector, below its threshold 0.60: inconclusive.",
                 details={"detector": "test-face", "band": "inconclusive",
                          "faces": [{"box": [40.0, 30.0, 120.0, 130.0], "score": 0.2},
                                    {"box": [300.0, 80.0, 420.0, 230.0], "score": 0.31}]}),
    ]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory):
    """One desk with every report type, signed in as a reporter; returns (app, svc, client, {level: sha256})."""
    import c2pa

    from tests.c2pa_kit import make_ca, sign
    from tests.clips import make_clip

    tmp = tmp_path_factory.mktemp("pdf-layout")
    (tmp / "data").mkdir()
    ca, stranger = make_ca("PDF Layout Test"), make_ca("Somebody Else")
    (tmp / "root.pem").write_bytes(ca.root_pem)
    app, svc = make_app(tmp / "data", trust_user_anchors_path=str(tmp / "root.pem"), instance_name=INSTANCE)
    client = app.test_client()
    login(client, "rex")
    shas: dict[str, str] = {}

    shas["no-evidence"] = upload(svc, client, jpeg_bytes(photo(31, (640, 480))), "plain.jpg")
    shas["portrait"] = upload(svc, client, _orientation_6_jpeg(), "portrait.jpg")

    camera, editor = ca.leaf("Test Camera 7", "Acme Photo"), ca.leaf("Desk Editor", "Daily Planet")
    capture, _ = sign(jpeg_bytes(photo(32, (640, 480)), 88), camera)
    title = "flood-edit-of-the-river-capture-near-the-old-bridge-at-dawn-final-final-version-2.jpg"
    edit = {"title": title, "claim_generator_info": [{"name": "PhotoDesk", "version": "9"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "PhotoDesk", "version": "9"}},
                {"action": "c2pa.cropped", "softwareAgent": {"name": "PhotoDesk", "version": "9"}},
                {"action": "c2pa.resized"}]}}]}
    signed, _ = sign(jpeg_bytes(photo(32, (640, 480)).transpose(Image.Transpose.FLIP_LEFT_RIGHT), 88), editor, edit,
                     intent=(c2pa.C2paBuilderIntent.EDIT,),
                     ingredients=(({"title": "river-capture-" + "0123456789" * 6 + ".jpg", "relationship": "parentOf"},
                                   "image/jpeg", capture),))
    shas["verified"] = upload(svc, client, signed, "flood-edit.jpg")
    shas["signed-untrusted"] = upload(
        svc, client, sign(jpeg_bytes(photo(33, (640, 480)), 88), stranger.leaf("Camera 9", "Unknown Studio"))[0])
    tampered = bytearray(capture)
    tampered[-300] ^= 0xFF  # a byte of the pixel data, after the manifest: the hash no longer matches
    shas["tampered"] = upload(svc, client, bytes(tampered), "tampered.jpg")
    ai = {"title": "generated.jpg", "claim_generator_info": [{"name": "ImageMaker", "version": "3"}]}
    shas["ai-declared"] = upload(svc, client, sign(jpeg_bytes(photo(34, (640, 480)), 88), editor, ai, intent=(
        c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA))[0], "generated.jpg")
    remote, _ = sign(jpeg_bytes(photo(35, (640, 480)), 88), camera, remote_url=LONG_URL, embed=False)
    shas["unavailable"] = upload(svc, client, remote, "remote.jpg")

    # A known fake: the original in a bank (long notes and addresses), and a smaller re-encoded copy checked.
    fake = photo(36, (800, 600))
    original = upload(svc, client, jpeg_bytes(fake, 92), "viral-shark.jpg")
    with svc.db.session() as session:
        bank = banks.create_bank(session, name="debunked", kind="fake", actor="test")
        media = session.get(models.Media, original)
        entry = banks.submit_entry(
            session, bank, actor="test", label="Shark on the flooded highway (composite)",
            notes="Composite; the shark photo is from 2005. " * 6, source_links=[LONG_URL, LONG_URL + "&page=2"],
            sha256=original, pdq=media.pdq, pdq_quality=media.pdq_quality, phash=media.phash)
        banks.decide(session, entry, action="confirm", actor="desk:rita", note="Checked with the agency. " * 4)
        entry_id = entry.id
    bank_jobs.rematch_entry(svc, entry_id)
    shas["known-fake"] = upload(svc, client, jpeg_bytes(fake.resize((560, 420)), 70), "repost.jpg")

    # A detector's score with a heat map (a portrait one: the tallest figure a report has).
    shas["likely-synthetic"] = upload(svc, client, jpeg_bytes(photo(37, (480, 640))), "face.jpg")
    heat_sha = svc.store.put(_png(Image.new("RGB", (480, 640), (255, 0, 0))))
    _replace_verdict(svc, shas["likely-synthetic"], _detection(heat_sha), drop_stage="detect")

    # A video: eight keyframes (two rows of thumbnails) and a score per frame.
    clip = make_clip(seed=41, seconds=4.0, fps=25, size=(320, 240), scenes=2, fmt="mp4")
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    thumbs = {t: svc.store.put(jpeg) for t, jpeg in video_thumbs(clip, times).items()}
    evidence = [
        Evidence(stage="decode", kind="decoded", summary="An MP4 video (H.264), 320 x 240, 4.0 s at 25 fps.",
                 details={"format": "video", "container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264", "width": 320,
                          "height": 240, "duration_s": 4.0, "fps": 25.0, "analysed_s": 4.0, "capped": False}),
        Evidence(stage="keyframes", kind="keyframes", summary="8 keyframes.",
                 details={"frames": [{"t": t, "reason": "scene" if i % 3 else "uniform", "thumb": thumbs[t],
                                      "pdq": "a" * 64, "pdq_quality": 90} for i, t in enumerate(times)],
                          "count": 8, "capped": False}),
        Evidence(stage="detect", kind="synthetic-score", score=0.88, supports=Level.LIKELY_SYNTHETIC,
                 summary="The video scores 0.88 (90th percentile of 8 frames) on the test detector: likely synthetic.",
                 details={"detector": "test-cnn", "version": "test-cnn@1", "band": "likely-synthetic",
                          "calibration": {"threshold": 0.5},
                          "frames": [{"t": t, "score": 0.1 + 0.1 * i, "thumb": thumbs[t]} for i, t in enumerate(times)],
                          "aggregate": "p90", "worst": [3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 0.5]}),
    ]
    shas["video"] = record_video_verdict(svc, clip, evidence)

    levels = {name: client.get(f"/desk/media/{sha}/export.json").get_json()["verdict"]["level"]
              for name, sha in shas.items()}
    assert levels == {**{name: name for name in shas}, "portrait": "no-evidence", "video": "likely-synthetic"}, levels
    return app, svc, client, shas


CAPTIONS = ("The checked image", "Heat map", "Keyframe 0:", "Checked image", "Bank entry", "Thumbnail signed")


@pytest.mark.parametrize("paper", ["a4", "letter"])
def test_every_report_type_prints_without_overlaps(desk, paper: str) -> None:
    app, svc, client, shas = desk
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    images = {"known-fake": 2, "likely-synthetic": 2, "video": 9, "verified": 2, "unavailable": 0}
    problems: list[str] = []
    for name, sha in shas.items():
        response = client.get(f"/desk/media/{sha}/export.pdf?paper={paper}")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        data = response.data
        keep(f"{name}-{paper}", data)
        problems += [f"{name}: {p}" for p in layout_problems(data, paper) + caption_problems(data, CAPTIONS)]
        # Page 1 says what the verdict is and how to cite the report (a long hash or address may wrap).
        first = re.sub(r"\s+", "", PdfReader(io.BytesIO(data)).pages[0].extract_text())
        label = client.get(f"/desk/media/{sha}/export.json").get_json()["verdict"]["label"]
        for snippet in (label, "How to cite", INSTANCE, sha, f"http://localhost/desk/media/{sha}",
                        f"generated {today}"):
            if re.sub(r"\s+", "", snippet) not in first:
                problems.append(f"{name}: {snippet!r} not on page 1")
        drawn = sum(len(p.images) for p in PdfReader(io.BytesIO(data)).pages)
        if drawn < images.get(name, 1):
            problems.append(f"{name}: {drawn} images")
    assert not problems, f"on {paper}:\n" + "\n".join(problems[:30])


def test_the_heat_map_and_its_caption_stay_together_wherever_it_lands(desk) -> None:
    """Longer and longer text before the heat map moves it down page 1, then onto page 2: it shrinks a little
    or moves with its caption, and never runs into the footer."""
    app, svc, client, shas = desk
    heat_sha = svc.store.put(_png(Image.new("RGB", (480, 640), (200, 30, 30))))
    seen = set()
    for k, words in enumerate(range(0, 10, 2)):
        sha = upload(svc, client, jpeg_bytes(photo(50 + k, (320, 240))), f"sweep-{k}.jpg")
        _replace_verdict(svc, sha, _detection(heat_sha, words), drop_stage="detect")
        for paper in PAPERS:
            data = client.get(f"/desk/media/{sha}/export.pdf?paper={paper}").data
            problems = layout_problems(data, paper) + caption_problems(data, ("Heat map",))
            assert not problems, f"{words} sentences on {paper}:\n" + "\n".join(problems[:12])
            reader = PdfReader(io.BytesIO(data))
            heat = [(i, img) for i in range(len(reader.pages)) for img in page_boxes(reader, i)[1]
                    if img.pixels == (480, 640)]
            assert len(heat) == 1
            page, img = heat[0]
            assert img.bottom - img.top >= 80 * 0.6 - 0.1, "shrunk at most to 60%"
            seen.add("moved" if page else "shrunk" if img.bottom - img.top < 79.9 else "whole")
    assert seen == {"whole", "shrunk", "moved"}, seen


def test_a_portrait_capture_prints_upright(desk) -> None:
    app, svc, client, shas = desk
    data = client.get(f"/desk/media/{shas['portrait']}/export.pdf").data
    reader = PdfReader(io.BytesIO(data))
    texts, images = page_boxes(reader, 0)
    caption = next(t for t in texts if t.text == "The checked image")
    (checked,) = [img for img in images if 0 <= caption.top - img.bottom <= 2.5]
    assert checked.pixels == (300, 400)
    assert (checked.bottom - checked.top) / (checked.x1 - checked.x0) == pytest.approx(4 / 3, rel=0.01)
    (drawn,) = [i.image.convert("RGB") for i in reader.pages[0].images if i.image.size == (300, 400)]
    r, g, b = drawn.getpixel((285, 15))
    assert r > 200 and g < 60 and b < 60, "the stored top-left corner is the upright top-right"
    assert drawn.getpixel((15, 15))[1] > 60 or drawn.getpixel((15, 15))[2] > 60


def test_paper_is_a4_unless_asked_for_letter(desk) -> None:
    app, svc, client, shas = desk
    sha = shas["no-evidence"]
    for query, size in (("", (595.28, 841.89)), ("?paper=a4", (595.28, 841.89)), ("?paper=Letter", (612.0, 792.0))):
        box = PdfReader(io.BytesIO(client.get(f"/desk/media/{sha}/export.pdf{query}").data)).pages[0].mediabox
        assert (float(box.width), float(box.height)) == pytest.approx(size, abs=0.01), query
    refused = client.get(f"/desk/media/{sha}/export.pdf?paper=legal")
    assert refused.status_code == 400 and "a4, letter" in refused.get_data(as_text=True)


def test_without_system_fonts_the_layout_holds(desk, monkeypatch) -> None:
    """The core-font fallback measures its text with its own metrics: the same guarantees."""
    app, svc, client, shas = desk
    monkeypatch.setattr("server.desk.pdf.FONT_DIRS", ())
    for name in ("verified", "known-fake", "video"):
        data = client.get(f"/desk/media/{shas[name]}/export.pdf?paper=letter").data
        assert "/Type0" not in str(PdfReader(io.BytesIO(data)).pages[0]["/Resources"]["/Font"])
        problems = layout_problems(data, "letter") + caption_problems(data, CAPTIONS)
        assert not problems, f"{name}:\n" + "\n".join(problems[:12])


def test_the_checker_sees_overprinting_and_a_figure_off_the_page() -> None:
    """The reading above is what the other tests trust: it must catch the faults of issue 21."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", "", 9)
    pdf.set_xy(20, 30)
    pdf.cell(42, 5, "signingCredential.untrusted")  # a code wider than its column...
    pdf.set_xy(40, 30)
    pdf.cell(100, 5, "the signer is not on the trust list")  # ...overprints the words beside it
    pdf.image(Image.new("RGB", (100, 100), (255, 0, 0)), x=20, y=250, w=60, h=60)  # over the footer and the edge
    pdf.set_xy(0, 285)
    pdf.cell(210, 5, "page 1 of 1", align="C")
    problems = layout_problems(bytes(pdf.output()), "a4")
    assert any("overlap" in p and "signingCredential" in p for p in problems), problems
    assert any("outside the margins" in p and "pixels=(100, 100)" in p for p in problems), problems
    assert any("runs into the footer" in p for p in problems), problems
