"""The report as a PDF that survives printing: A4 or Letter, images included (fpdf2, pure Python).

Every piece of text that can be long is a wrapped ``multi_cell`` (a hash or a URL breaks inside itself),
and every block is measured before it is drawn, so nothing overprints and nothing runs into the margins
or the footer: a figure moves to the next page with its caption, or shrinks a little to stay on this one.
Images are placed as they are meant to be seen (EXIF orientation), as the desk shows them.
Text uses DejaVu Sans when the system has it (any script a label may be in); otherwise the PDF core
font, with typographic punctuation mapped to ASCII and anything else replaced, so a PDF is always made.
tests/test_pdf_layout.py reads the positions back from the PDF of every report type.
"""
from __future__ import annotations

import io
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image, ImageOps

from server import wording
from server.desk.wording import signed_at
from server.media_store import MediaStore

# ?paper= on the export; fpdf2's names for them. A4 first: the default.
PAPERS = {"a4": "A4", "letter": "Letter"}
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"))
COLOURS = {"red": (185, 28, 28), "orange": (194, 65, 12), "purple": (109, 40, 217), "amber": (161, 98, 7),
           "green": (21, 128, 61), "blue": (29, 78, 216), "grey": (75, 85, 99), "none": (75, 85, 99)}
ASCII = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-",
                       "\u2026": "...", "\u00a0": " ", "\u2192": "->", "\u2022": "*"})
MAX_SIDE = 1400
MARGIN = 16.0  # mm, left, right and top: inside what any office printer can print
BOTTOM = 20.0  # mm below the body, the footer's band
LABEL_W = 38.0  # mm, the name column of name/value rows
GAP = 4.0  # mm between figures in a row
MIN_SHRINK = 0.6  # a figure shrinks to at most this scale to stay on the page, else it moves to the next one
MAX_FRAMES = 12  # keyframe and worst-frame thumbnails drawn; the text names every keyframe


class ReportPDF(FPDF):
    def __init__(self, paper: str = "a4", footer_text: str = "") -> None:
        super().__init__(format=PAPERS[paper])
        self.footer_text = footer_text
        self.unicode = False
        for folder in FONT_DIRS:
            if (folder / "DejaVuSans.ttf").is_file() and (folder / "DejaVuSans-Bold.ttf").is_file():
                self.add_font("Body", "", str(folder / "DejaVuSans.ttf"))
                self.add_font("Body", "B", str(folder / "DejaVuSans-Bold.ttf"))
                self.unicode = True
                break
        self.family = "Body" if self.unicode else "Helvetica"
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=BOTTOM)

    def t(self, text: Any) -> str:
        text = "" if text is None else str(text)
        if self.unicode:
            return text
        text = unicodedata.normalize("NFKC", text).translate(ASCII)
        return text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        # Below the body's bottom margin, one short line each side, so it can never meet the body.
        self.set_y(self.h - BOTTOM + 8)
        self.set_font(self.family, "", 7)
        self.set_text_color(90, 90, 90)
        half = self.epw / 2
        text = self.t(self.footer_text)
        while text and self.get_string_width(text) > half - 2 * self.c_margin:
            text = text[:-2] + "\u2026" if self.unicode else text[:-4] + "..."
        self.set_x(self.l_margin)
        self.cell(half, 4, text, align="L")
        self.set_x(self.l_margin + half)
        self.cell(half, 4, self.t(f"page {self.page_no()} of {{nb}}"), align="R")

    # -- measuring
    @property
    def bottom(self) -> float:
        return self.page_break_trigger

    def room(self) -> float:
        return self.bottom - self.get_y()

    def ensure(self, height: float) -> None:
        """A new page unless ``height`` fits on this one (a block taller than a page starts on a fresh one)."""
        if height > self.room() and self.get_y() > self.t_margin + 0.1:
            self.add_page()

    def text_height(self, text: str, width: float, line: float) -> float:
        return self.multi_cell(width, line, self.t(text), align="L", dry_run=True, output="HEIGHT")

    def text_at(self, x: float, y: float, width: float, line: float, text: str) -> None:
        self.set_xy(x, y)
        self.multi_cell(width, line, self.t(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # -- building blocks
    def heading(self, text: str) -> None:
        self.ensure(3 + 7 + 1.5 + 20)  # a heading never ends a page alone
        self.ln(3)
        self.set_font(self.family, "B", 12)
        self.set_text_color(20, 20, 20)
        self.text_at(self.l_margin, self.get_y(), self.epw, 7, text)
        self.set_draw_color(180, 180, 180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1.5)

    def para(self, text: Any, size: float = 9.5, bold: bool = False, indent: float = 0.0,
             grey: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)
        self.set_text_color(*((95, 95, 95) if grey else (25, 25, 25)))
        line = size * 0.5
        width = self.epw - indent
        self.ensure(min(self.text_height(str(text), width, line), 3 * line))  # no line left alone
        self.text_at(self.l_margin + indent, self.get_y(), width, line, str(text))

    def field(self, name: str, value: Any, indent: float = 0.0) -> None:
        """A name and its value side by side, each wrapped in its own column."""
        if value in (None, "", [], {}):
            return
        line = 4.8
        x = self.l_margin + indent
        value_w = self.epw - indent - LABEL_W
        self.set_font(self.family, "B", 9)
        name_h = self.text_height(name, LABEL_W, line)
        self.set_font(self.family, "", 9)
        value_h = self.text_height(str(value), value_w, line)
        self.ensure(min(max(name_h, value_h), max(name_h, 3 * line)))
        y, page = self.get_y(), self.page
        self.set_font(self.family, "B", 9)
        self.set_text_color(70, 70, 70)
        self.text_at(x, y, LABEL_W, line, name)
        name_end = self.get_y()
        self.set_font(self.family, "", 9)
        self.set_text_color(25, 25, 25)
        self.text_at(x + LABEL_W, y, value_w, line, str(value))
        self.set_y(max(self.get_y(), name_end) if self.page == page else self.get_y())

    def caption_height(self, caption: str, width: float) -> float:
        if not caption:
            return 0.0
        self.set_font(self.family, "", 7)
        return 0.8 + self.text_height(caption, width, 3.4)

    def first_row(self, items: list[tuple[Image.Image, str]], box_w: float, box_h: float) -> float:
        """The height the first row of ``figures`` takes unshrunk, to keep a label with it."""
        row = items[:self.per_row(box_w)]
        if not row:
            return 0.0
        return 1 + max(_fit(img, box_w, box_h)[1] for img, _ in row) \
            + max(self.caption_height(caption, box_w) for _, caption in row) + 1.5

    def per_row(self, box_w: float) -> int:
        return max(1, int((self.epw + GAP) // (box_w + GAP)))

    def figures(self, items: list[tuple[Image.Image | None, str]], box_w: float, box_h: float) -> None:
        """Images in rows, each over its caption in a column ``box_w`` wide; a row and its captions stay on one
        page, shrunk to fit what is left of it, or moved to the next page when shrinking would take too much."""
        shown = [(img, caption) for img, caption in items if img is not None]
        per_row = self.per_row(box_w)
        for start in range(0, len(shown), per_row):
            row = shown[start:start + per_row]
            sizes = [_fit(img, box_w, box_h) for img, _ in row]
            captions = max(self.caption_height(caption, box_w) for _, caption in row)
            tallest = max(h for _, h in sizes)
            room = self.room() - 1.2 - captions
            if tallest > room:
                if room >= tallest * MIN_SHRINK:
                    scale = room / tallest
                else:
                    self.add_page()
                    scale = min(1.0, (self.room() - 1.2 - captions) / tallest)
                sizes = [(w * scale, h * scale) for w, h in sizes]
            y = self.get_y() + 1
            for i, ((img, caption), (w, h)) in enumerate(zip(row, sizes)):
                x = self.l_margin + i * (box_w + GAP)
                self.image(img, x=x, y=y, w=w, h=h, alt_text=caption or None)
                if caption:
                    self.set_font(self.family, "", 7)
                    self.set_text_color(90, 90, 90)
                    self.set_xy(x, y + h + 0.8)
                    self.multi_cell(box_w, 3.4, self.t(caption), align="L")
            self.set_y(y + max(h for _, h in sizes) + captions + 1.5)


def _fit(img: Image.Image, w: float, h: float) -> tuple[float, float]:
    ratio = min(w / img.width, h / img.height)
    return img.width * ratio, img.height * ratio


def _image(store: MediaStore, sha256: str | None, max_pixels: int) -> Image.Image | None:
    data = store.get(sha256) if sha256 else None
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                return None
            img.seek(0)
            # Upright as a browser shows it: a phone's portrait capture is stored sideways with orientation 6.
            out = ImageOps.exif_transpose(img).convert("RGB")
        out.thumbnail((MAX_SIDE, MAX_SIDE))
        return out
    except Exception:  # noqa: BLE001 - an undecodable file is shown as text only
        return None


def _sentence(words: Any) -> str:
    text = str(words or "").strip()
    return text[:1].upper() + text[1:]


def _with_code(words: str, code: Any) -> str:
    """Words first; the raw code after them, for whoever needs to look it up (a PDF has no details toggle)."""
    return f"{words} ({code})" if code else words


def _when(value: Any) -> str | None:
    """ISO times as people read them: 2026-12-01 11:58:14 UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _thumb_sha(value: Any) -> str | None:
    return value.get("sha256") if isinstance(value, dict) else None


def render_pdf(report: dict[str, Any], permalink: str, store: MediaStore, max_pixels: int, *,
               paper: str = "a4", instance: str = "credence") -> bytes:
    """``paper`` is a key of PAPERS; ``instance`` names who made the report in the citation line."""
    sha = report["sha256"]
    pdf = ReportPDF(paper, footer_text=f"Credence report {sha[:16]}\u2026 by {instance}")
    pdf.alias_nb_pages()
    pdf.set_title(f"Credence report {sha}")
    pdf.set_creator("Credence")
    pdf.add_page()
    verdict = report.get("verdict") or {}
    facts = report["facts"]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    pdf.set_font(pdf.family, "B", 16)
    pdf.set_text_color(20, 20, 20)
    pdf.text_at(pdf.l_margin, pdf.get_y(), pdf.epw, 9, "Credence report")
    pdf.ln(1)

    # The verdict and why, first.
    colour = COLOURS.get(verdict.get("badge") or "grey", COLOURS["grey"])
    label = verdict.get("label") or "Not analysed yet"
    level = verdict.get("level") or "pending"
    pdf.set_fill_color(*colour)
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(pdf.family, "B", 13)
    pdf.multi_cell(0, 8, pdf.t(f"{label}  ({level})"), fill=True, align="L", padding=(1.5, 2.5),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)
    pdf.para(verdict.get("summary") or "The analysis has not finished.", size=10.5)
    for item in report.get("why") or []:
        if item.get("summary") != verdict.get("summary"):
            pdf.para(f"- {item['summary']}", size=9, indent=3)

    # How to cite: everything a reader needs to find this report again and check it is the same file.
    pdf.ln(2)
    pdf.para("How to cite", size=9, bold=True)
    pdf.para(f"{instance} (Credence), report on the file with SHA-256 {sha}, verdict \u201c{label}\u201d, "
             f"generated {generated}. {permalink}", size=8.5, grey=True)
    pdf.ln(1)

    # The image with its facts beside it.
    picture = _image(store, sha, max_pixels)
    side = 76.0 if picture is not None else 0.0
    if picture is not None:
        pdf.ensure(_fit(picture, 70, 70)[1] + 1.5 + pdf.caption_height("The checked image", 70))
    top, page = pdf.get_y(), pdf.page
    pdf.figures([(picture, "The checked image")], 70, 70)
    image_end = pdf.get_y()
    pdf.set_y(top)
    for name, value in (("Format", facts.get("format") or facts.get("mime")), ("Size", f"{facts['size']:,} bytes"),
                        ("Dimensions", f"{facts['width']} x {facts['height']} px" if facts.get("width") else None),
                        ("PDQ", facts.get("pdq")), ("pHash", facts.get("phash")),
                        *[(k.capitalize(), v) for k, v in (facts.get("exif") or {}).items()]):
        pdf.field(name, value, indent=side)
    pdf.set_y((max(pdf.get_y(), image_end) if pdf.page == page else pdf.get_y()) + 2)
    if report.get("video"):
        _video(pdf, report["video"], store, max_pixels)

    panels = report["panels"]
    if panels["provenance"]:
        _provenance(pdf, panels["provenance"], store, max_pixels)

    if panels["declarations"]:
        pdf.heading("AI declarations")
        for item in panels["declarations"]:
            d = item.get("details") or {}
            pdf.para(item["summary"])
            pdf.field("Found in", wording.declaration_source_words(d.get("source")) if d.get("source") else None)
            for decl in d.get("declarations") or []:
                pdf.para(f"{wording.field_words(decl.get('field'))}: {decl.get('value')} ({decl.get('says')})",
                         size=8.5, indent=4)
                pdf.para(f"as recorded: {decl.get('field')}", size=7.5, indent=4, grey=True)

    if panels.get("recovered"):
        _recovered(pdf, report, panels["recovered"], store, max_pixels)

    if panels["matches"]:
        _matches(pdf, report, panels["matches"], store, max_pixels)

    if panels["detection"]:
        pdf.heading("Detectors")
        for item in panels["detection"]:
            d = item.get("details") or {}
            pdf.para(item["summary"])
            pdf.field("Score", f"{item['score']:.2f}" if item.get("score") is not None else None)
            pdf.field("Band", d.get("band"))
            pdf.field("Detector", " ".join(str(x) for x in (d.get("detector"), d.get("version")) if x))
            for box in item.get("boxes") or []:
                score = f": {box['score']:.2f}" if box.get("score") is not None else ""
                pdf.field("Face", f"at {box['x']:.0f},{box['y']:.0f} ({box['w']:.0f} x {box['h']:.0f} px){score}")
            if item.get("curve"):
                _curve(pdf, item["curve"], store, max_pixels)
            heat = _image(store, item.get("heatmap_sha"), max_pixels)
            pdf.figures([(heat, "Heat map (red pushed the score up)")], 80, 80)

    if panels["other"]:
        pdf.heading("Other findings")
        for item in panels["other"]:
            pdf.para(f"{wording.stage_words(item['stage'])}: {item['summary']}", size=9)

    sightings = report.get("sightings")
    if sightings:
        pdf.heading("Where this instance saw it")
        pdf.field("First seen", _when(sightings["first_seen"]))
        for url in sightings["urls"]:
            pdf.para(f"{_when(url['fetched_at'])}  {url['url']}", size=8.5)

    if report.get("history"):
        pdf.heading("Verdict history")
        for v in report["history"]:
            pdf.para(f"{_when(v['created_at'])}  {v['level']}  (pipeline {v['pipeline_version']})", size=8.5)
    versions = verdict.get("versions") or {}
    if versions:
        pdf.field("Made with", ", ".join(f"{k} {v}" for k, v in versions.items()))
    return bytes(pdf.output())


def _provenance(pdf: ReportPDF, items: list[dict[str, Any]], store: MediaStore, max_pixels: int) -> None:
    pdf.heading("Content Credentials (C2PA)")
    for item in items:
        d = item.get("details") or {}
        signer = d.get("signer") or {}
        pdf.para(item["summary"])
        if not (d.get("state") or signer):
            continue
        state = d.get("state")
        pdf.field("Validation", f"{state}: {item.get('state_words') or wording.state_words(state)}" if state else None)
        pdf.field("Signer", ", ".join(x for x in (signer.get("organisation"), signer.get("common_name")) if x))
        pdf.field("Certificate issuer", signer.get("issuer"))
        pdf.field("Algorithm", signer.get("algorithm"))
        pdf.field("Signed at", signed_at(d))
        pdf.field("Claim generator", d.get("claim_generator"))
        # The service splits what failed from what could not be confirmed (an untrusted signer is not a failure).
        for name, failures in (("Failed check", item.get("failed", d.get("failures"))),
                               ("Not confirmed", item.get("unconfirmed"))):
            for failure in failures or []:
                pdf.field(name, _with_code(_sentence(failure.get("words")), failure.get("code")))
        for action in d.get("actions") or []:
            who = f" with {action['software_agent']}" if action.get("software_agent") else ""
            source = action.get("digital_source_type")
            kind = f"; source: {wording.source_type_words(source)}" if source else ""
            raw = ", ".join(x for x in (action.get("action"), wording.source_type_term(source) if source else "") if x)
            pdf.field("Action", _with_code(f"{wording.action_words(action.get('action'))}{who}{kind}", raw))
        thumb = _image(store, _thumb_sha(d.get("thumbnail")), max_pixels)
        pdf.figures([(thumb, "Thumbnail signed with the file")], 40, 40)
        if item.get("tree"):
            pdf.para("Ingredients", bold=True)
            for node in item["tree"]:
                _ingredient(pdf, node, store, max_pixels)


def _ingredient(pdf: ReportPDF, node: dict[str, Any], store: MediaStore, max_pixels: int) -> None:
    """One node of the ingredient tree: its thumbnail beside its text, indented by depth, kept on one page."""
    indent = min(4 + 8 * node["depth"], 60)
    thumb = _image(store, _thumb_sha(node.get("thumbnail")), max_pixels)
    size = _fit(thumb, 16, 16) if thumb is not None else (0.0, 0.0)
    text_x = indent + (19 if thumb is not None else 0)
    width = pdf.epw - text_x
    raw = ", ".join(str(x) for x in (node.get("relationship"), node.get("validation")) if x)
    lines = [(_with_code(f"{node.get('title') or 'untitled'}: {wording.relationship_words(node.get('relationship'))}, "
                         f"{wording.ingredient_state_words(node.get('validation'))}", raw), 9)]
    lines += [(_with_code(_sentence(failure.get("words")), failure.get("code")), 8)
              for failure in node.get("failures") or []]
    height = 0.0
    for text, font in lines:
        pdf.set_font(pdf.family, "", font)
        height += pdf.text_height(text, width, font * 0.5)
    pdf.ensure(max(size[1], height) + 1)
    y, page = pdf.get_y(), pdf.page
    if thumb is not None:
        pdf.image(thumb, x=pdf.l_margin + indent, y=y, w=size[0], h=size[1])
    for text, font in lines:
        pdf.para(text, size=font, indent=text_x)
    pdf.set_y((max(pdf.get_y(), y + size[1]) if pdf.page == page else pdf.get_y()) + 1)


BINDINGS = {"pdq": ("PDQ", 256), "io.iscc.v0": ("ISCC Image-Code", 64)}
RECOVERY_LIMITS = ("The original's credentials say who signed that picture and what they declared; they cannot "
                   "say who made this copy or what was changed in it.")


def _recovered(pdf: ReportPDF, report: dict[str, Any], items: list[dict[str, Any]], store: MediaStore,
               max_pixels: int) -> None:
    """A stripped copy beside the original its credentials were recovered from, with what that can prove."""
    pdf.heading("Credentials recovered for a matching original")
    half = (pdf.epw - GAP) / 2
    for item in items:
        d = item.get("details") or {}
        pdf.para(item["summary"])
        pdf.figures([(_image(store, report["sha256"], max_pixels), "This copy (no credentials of its own)"),
                     (_image(store, _thumb_sha(d.get("thumbnail")), max_pixels), "The original's signed thumbnail")],
                    half, 65)
        signer = d.get("signer") or {}
        who = signer.get("organisation") or signer.get("common_name")
        pdf.field("Signed by", f"{who} ({'on' if d.get('state') == 'trusted' else 'not on'} your trust list)"
                  if who else None)
        pdf.field("Signed at", d.get("signing_time"))
        name, bits = BINDINGS.get(d.get("binding") or "", (d.get("binding"), None))
        pdf.field("Match", f"{name} distance {d.get('distance')}" + (f" of {bits} bits" if bits else "")
                  if d.get("distance") else f"{name} identical")
        pdf.field("Manifest", d.get("manifest"))
        pdf.para(f"{d.get('caveat') or ''} {RECOVERY_LIMITS}".strip(), size=8.5)


def _matches(pdf: ReportPDF, report: dict[str, Any], matches: list[dict[str, Any]], store: MediaStore,
             max_pixels: int) -> None:
    pdf.heading("Known-fakes banks")
    half = (pdf.epw - GAP) / 2
    for match in matches:
        item, entry = match["evidence"], match["entry"] or {}
        d = item.get("details") or {}
        pdf.para(item["summary"])
        pdf.figures([(_image(store, report["sha256"], max_pixels), "Checked image"),
                     (_image(store, entry.get("sha256"), max_pixels),
                      f"Bank entry: {entry.get('label') or d.get('label')}")], half, 65)
        pdf.field("Bank", f"{d.get('bank')} ({d.get('bank_kind')})")
        bits = {"pdq": ("PDQ", 256), "phash": ("pHash", 64)}.get(d.get("method") or "", (d.get("method"), "?"))
        pdf.field("Match", "identical file" if d.get("method") == "sha256"
                  else f"{bits[0]} distance {d.get('distance')} of {bits[1]} ({d.get('transform')})")
        pdf.field("Label", entry.get("label") or d.get("label"))
        pdf.field("Notes", entry.get("notes") or d.get("notes"))
        status = entry.get("status")
        pdf.field("Entry status", f"{status}, disputed" if status and entry.get("disputed") else status)
        for dispute in entry.get("disputes") or d.get("disputes") or []:
            when = _when(dispute.get("at"))
            pdf.field("Disputed by", f"{dispute.get('by')}: {dispute.get('reason') or 'no reason given'}"
                      + (f" ({when})" if when else ""))
        did = {"retracted": "Retracted", "rejected": "Rejected"}.get(status or "", "Confirmed")
        pdf.field(f"{did} by", entry.get("reviewed_by"))
        pdf.field(f"{did} at", _when(entry.get("reviewed_at")))
        pdf.field("Review note", entry.get("review_note"))
        pdf.field("Sources", "\n".join(entry.get("source_links") or d.get("source_links") or []))


def _frames(frames: list[tuple[str | None, str]], store: MediaStore, max_pixels: int) -> list[tuple[Image.Image, str]]:
    """The stored thumbnails among ``frames``, at most MAX_FRAMES: the text names every frame anyway."""
    loaded = ((_image(store, sha, max_pixels), caption) for sha, caption in frames)
    return [(img, caption) for img, caption in loaded if img is not None][:MAX_FRAMES]


def _video(pdf: ReportPDF, video: dict[str, Any], store: MediaStore, max_pixels: int) -> None:
    f = video["facts"]
    pdf.heading("Video")
    raw = ", ".join(str(x) for x in (f.get("container"), f.get("codec")) if x)
    pdf.field("Container, codec", raw and _with_code(
        f"{wording.container_words(f.get('container'))}, {wording.codec_words(f.get('codec'))}", f"as recorded: {raw}"))
    pdf.field("Frame size", f"{f['width']} x {f['height']} px" if f.get("width") else None)
    pdf.field("Duration", video.get("duration"))
    pdf.field("Frame rate", f"{f['fps']:.3g} fps" if isinstance(f.get("fps"), (int, float)) else None)
    if video.get("analysed"):
        pdf.field("Analysed", f"the first {video['analysed']}" + (" (capped: the rest was not looked at)"
                                                                  if f.get("capped") else ""))
    pdf.field("Keyframes", f"{video['count']}" + (" (capped)" if video.get("keyframes_capped") else ""))
    frames = video.get("keyframes") or []
    shown = _frames([(k["thumb"], f"Keyframe {k['clock']} ({k['why']})") for k in frames], store, max_pixels)
    listed = ", ".join(f"{k['clock']} {k['why']}" for k in frames)
    pdf.set_font(pdf.family, "", 8.5)
    pdf.ensure(min(pdf.text_height(listed, pdf.epw, 4.25), 3 * 4.25) + pdf.first_row(shown, 27, 20))
    pdf.para(listed, size=8.5)
    pdf.figures(shown, 27, 20)


def _curve(pdf: ReportPDF, curve: dict[str, Any], store: MediaStore, max_pixels: int) -> None:
    """The per-frame scores as a small line chart, and the worst frames."""
    aggregate = f", the video's score is their {curve['aggregate']}" if curve.get("aggregate") else ""
    pdf.field("Frames scored", f"{curve['count']}{aggregate}; highest {curve['max']:.2f}")
    w, h = min(120.0, pdf.epw), 24.0
    pdf.ensure(h + 2)
    x0, y0 = pdf.l_margin, pdf.get_y() + 1
    sx, sy = w / curve["w"], h / curve["h"]
    pdf.set_draw_color(180, 180, 180)
    pdf.rect(x0, y0, w, h)
    if curve.get("threshold_y") is not None:
        pdf.set_draw_color(185, 28, 28)
        pdf.line(x0, y0 + curve["threshold_y"] * sy, x0 + w, y0 + curve["threshold_y"] * sy)
    pdf.set_draw_color(161, 98, 7)
    points = [(x0 + d["x"] * sx, y0 + d["y"] * sy) for d in curve["dots"]]
    if len(points) > 1:
        pdf.polyline(points)
    pdf.set_y(y0 + h + 1)
    if curve.get("worst"):
        shown = _frames([(wf["thumb"], f"{wf['clock']}: {wf['score']:.2f}") for wf in curve["worst"]], store,
                        max_pixels)
        pdf.ensure(2 * 4.8 + pdf.first_row(shown, 27, 20))
        pdf.field("Worst frames", ", ".join(f"{wf['clock']}: {wf['score']:.2f}" for wf in curve["worst"]))
        pdf.figures(shown, 27, 20)
