"""The report as a PDF that prints cleanly on A4, images included (fpdf2, pure Python).

Text uses DejaVu Sans when the system has it (any script a label may be in); otherwise the PDF core
font, with typographic punctuation mapped to ASCII and anything else replaced, so a PDF is always made.
"""
from __future__ import annotations

import io
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from server.desk.wording import signed_at
from server.media_store import MediaStore

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"))
COLOURS = {"red": (185, 28, 28), "orange": (194, 65, 12), "purple": (109, 40, 217), "amber": (161, 98, 7),
           "green": (21, 128, 61), "blue": (29, 78, 216), "grey": (75, 85, 99), "none": (75, 85, 99)}
ASCII = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-",
                       "\u2026": "...", "\u00a0": " ", "\u2192": "->", "\u2022": "*"})
MAX_SIDE = 1400


class ReportPDF(FPDF):
    def __init__(self, permalink: str) -> None:
        super().__init__(format="A4")
        self.permalink = permalink
        self.unicode = False
        for folder in FONT_DIRS:
            if (folder / "DejaVuSans.ttf").is_file() and (folder / "DejaVuSans-Bold.ttf").is_file():
                self.add_font("Body", "", str(folder / "DejaVuSans.ttf"))
                self.add_font("Body", "B", str(folder / "DejaVuSans-Bold.ttf"))
                self.unicode = True
                break
        self.family = "Body" if self.unicode else "Helvetica"
        self.set_auto_page_break(True, margin=18)
        self.set_margins(16, 16, 16)

    def t(self, text: Any) -> str:
        text = "" if text is None else str(text)
        if self.unicode:
            return text
        text = unicodedata.normalize("NFKC", text).translate(ASCII)
        return text.encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 7)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, self.t(f"Credence report - {self.permalink} - page {self.page_no()}/{{nb}}"), align="C")

    # -- building blocks
    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 45:
            self.add_page()
        self.ln(3)
        self.set_font(self.family, "B", 12)
        self.set_text_color(20, 20, 20)
        self.cell(0, 7, self.t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(180, 180, 180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1.5)

    def para(self, text: Any, size: float = 9.5, bold: bool = False, indent: float = 0.0) -> None:
        self.set_font(self.family, "B" if bold else "", size)
        self.set_text_color(25, 25, 25)
        self.set_x(self.l_margin + indent)
        self.multi_cell(self.w - self.l_margin - self.r_margin - indent, size * 0.5, self.t(text),
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def field(self, name: str, value: Any, indent: float = 0.0) -> None:
        if value in (None, "", [], {}):
            return
        self.set_x(self.l_margin + indent)
        self.set_font(self.family, "B", 9)
        self.set_text_color(70, 70, 70)
        self.cell(42, 4.8, self.t(name))
        self.set_font(self.family, "", 9)
        self.set_text_color(25, 25, 25)
        self.multi_cell(self.w - self.l_margin - self.r_margin - indent - 42, 4.8, self.t(value),
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def picture(self, img: Image.Image | None, x: float, y: float, w: float, h: float, caption: str = "") -> float:
        """Fit ``img`` in the box; returns the height used (0 when there is no image)."""
        if img is None:
            return 0.0
        ratio = min(w / img.width, h / img.height)
        iw, ih = img.width * ratio, img.height * ratio
        self.image(img, x=x, y=y, w=iw, h=ih, alt_text=caption or None)
        if not caption:
            return ih
        width = max(w, 45.0)
        self.set_xy(x, y + ih + 0.5)
        self.set_font(self.family, "", 7)
        self.set_text_color(90, 90, 90)
        height = self.multi_cell(width, 3.2, self.t(caption), dry_run=True, output="HEIGHT")
        self.set_xy(x, y + ih + 0.5)
        self.multi_cell(width, 3.2, self.t(caption))
        return ih + 1 + height


def _image(store: MediaStore, sha256: str | None, max_pixels: int) -> Image.Image | None:
    data = store.get(sha256) if sha256 else None
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                return None
            img.seek(0)
            out = img.convert("RGB")
        out.thumbnail((MAX_SIDE, MAX_SIDE))
        return out
    except Exception:  # noqa: BLE001 - an undecodable file is shown as text only
        return None


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


def render_pdf(report: dict[str, Any], permalink: str, store: MediaStore, max_pixels: int) -> bytes:
    pdf = ReportPDF(permalink)
    pdf.alias_nb_pages()
    pdf.set_title(f"Credence report {report['sha256']}")
    pdf.set_creator("Credence")
    pdf.add_page()
    verdict = report.get("verdict") or {}
    facts = report["facts"]

    pdf.set_font(pdf.family, "B", 16)
    pdf.cell(0, 9, pdf.t("Credence report"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(pdf.family, "", 8)
    pdf.set_text_color(80, 80, 80)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pdf.multi_cell(0, 4, pdf.t(f"SHA-256 {report['sha256']}\nPermalink {permalink}\nGenerated {generated}"),
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    # The verdict and why, first.
    colour = COLOURS.get(verdict.get("badge") or "grey", COLOURS["grey"])
    pdf.set_fill_color(*colour)
    pdf.set_text_color(255, 255, 255)
    pdf.set_font(pdf.family, "B", 13)
    label = verdict.get("label") or "Not analysed yet"
    level = verdict.get("level") or "pending"
    pdf.cell(0, 10, pdf.t(f"  {label}  ({level})"), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1.5)
    pdf.para(verdict.get("summary") or "The analysis has not finished.", size=10.5)
    for item in report.get("why") or []:
        if item.get("summary") != verdict.get("summary"):
            pdf.para(f"- {item['summary']}", size=9, indent=3)

    top = pdf.get_y() + 2
    used = pdf.picture(_image(store, report["sha256"], max_pixels), pdf.l_margin, top, 70, 70, "The checked image")
    pdf.set_y(top)
    for name, value in (("Format", facts.get("format") or facts.get("mime")), ("Size", f"{facts['size']:,} bytes"),
                        ("Dimensions", f"{facts['width']} x {facts['height']} px" if facts.get("width") else None),
                        ("PDQ", facts.get("pdq")), ("pHash", facts.get("phash")),
                        *[(k.capitalize(), v) for k, v in (facts.get("exif") or {}).items()]):
        pdf.field(name, value, indent=76 if used else 0)
    pdf.set_y(max(pdf.get_y(), top + used) + 2)
    if report.get("video"):
        _video(pdf, report["video"], store, max_pixels)

    panels = report["panels"]
    if panels["provenance"]:
        pdf.heading("Content Credentials (C2PA)")
        for item in panels["provenance"]:
            d = item.get("details") or {}
            signer = d.get("signer") or {}
            pdf.para(item["summary"])
            if not (d.get("state") or signer):
                continue
            pdf.field("Validation", d.get("state"))
            pdf.field("Signer", ", ".join(x for x in (signer.get("organisation"), signer.get("common_name")) if x))
            pdf.field("Certificate issuer", signer.get("issuer"))
            pdf.field("Algorithm", signer.get("algorithm"))
            pdf.field("Signed at", signed_at(d))
            pdf.field("Claim generator", d.get("claim_generator"))
            for failure in d.get("failures") or []:
                pdf.field(failure.get("code", ""), failure.get("words"))
            for action in d.get("actions") or []:
                who = f" by {action['software_agent']}" if action.get("software_agent") else ""
                source = action.get("digital_source_type")
                kind = f" ({source.rsplit('/', 1)[-1]})" if source else ""
                pdf.field("Action", f"{action.get('action')}{who}{kind}")
            thumb = _image(store, _thumb_sha(d.get("thumbnail")), max_pixels)
            if thumb is not None:
                y = pdf.get_y() + 1
                pdf.set_y(y + pdf.picture(thumb, pdf.l_margin, y, 30, 30, "Thumbnail signed with the file") + 1)
            if item.get("tree"):
                pdf.para("Ingredients", bold=True)
                for node in item["tree"]:
                    indent = 4 + 8 * node["depth"]
                    if pdf.get_y() > pdf.h - 40:
                        pdf.add_page()
                    y = pdf.get_y()
                    h = pdf.picture(_image(store, _thumb_sha(node.get("thumbnail")), max_pixels),
                                    pdf.l_margin + indent, y, 16, 16)
                    text = (f"{node.get('title') or 'untitled'} ({node.get('relationship') or 'ingredient'}), "
                            f"credentials: {node.get('validation')}")
                    pdf.set_y(y)
                    pdf.para(text, size=9, indent=indent + (19 if h else 0))
                    for failure in node.get("failures") or []:
                        pdf.para(f"{failure['code']}: {failure['words']}", size=8, indent=indent + (19 if h else 0))
                    pdf.set_y(max(pdf.get_y(), y + h) + 1)

    if panels["declarations"]:
        pdf.heading("AI declarations")
        for item in panels["declarations"]:
            pdf.para(item["summary"])
            for decl in (item.get("details") or {}).get("declarations") or []:
                pdf.para(f"{decl.get('field')}: {decl.get('value')} ({decl.get('says')})", size=8.5, indent=4)

    if panels["matches"]:
        pdf.heading("Known-fakes banks")
        for match in panels["matches"]:
            item, entry = match["evidence"], match["entry"] or {}
            d = item.get("details") or {}
            pdf.para(item["summary"])
            if pdf.get_y() > pdf.h - 70:
                pdf.add_page()
            y = pdf.get_y() + 1
            left = pdf.picture(_image(store, report["sha256"], max_pixels), pdf.l_margin, y, 55, 45, "Checked image")
            right = pdf.picture(_image(store, entry.get("sha256"), max_pixels), pdf.l_margin + 62, y, 55, 45,
                                f"Bank entry: {entry.get('label') or d.get('label')}")
            pdf.set_y(y + max(left, right) + 1)
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
            if heat is not None:
                y = pdf.get_y() + 1
                pdf.set_y(y + pdf.picture(heat, pdf.l_margin, y, 50, 50, "Heat map (red pushed the score up)") + 1)

    if panels["other"]:
        pdf.heading("Other findings")
        for item in panels["other"]:
            pdf.para(f"[{item['stage']}] {item['summary']}", size=9)

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


def _strip(pdf: ReportPDF, frames: list[tuple[str | None, str]], store: MediaStore, max_pixels: int) -> None:
    """A row of small thumbnails with captions; at most six, the rest are named in the text."""
    shown = [(img, caption) for img, caption in ((_image(store, sha, max_pixels), caption) for sha, caption in frames)
             if img is not None][:6]
    if not shown:
        return
    if pdf.get_y() > pdf.h - 50:
        pdf.add_page()
    y = pdf.get_y() + 1
    used = [pdf.picture(img, pdf.l_margin + i * 30, y, 27, 20, caption) for i, (img, caption) in enumerate(shown)]
    pdf.set_y(y + max(used) + 1)


def _video(pdf: ReportPDF, video: dict[str, Any], store: MediaStore, max_pixels: int) -> None:
    f = video["facts"]
    pdf.heading("Video")
    pdf.field("Container, codec", ", ".join(str(x) for x in (f.get("container"), f.get("codec")) if x))
    pdf.field("Frame size", f"{f['width']} x {f['height']} px" if f.get("width") else None)
    pdf.field("Duration", video.get("duration"))
    pdf.field("Frame rate", f"{f['fps']:.3g} fps" if isinstance(f.get("fps"), (int, float)) else None)
    if video.get("analysed"):
        pdf.field("Analysed", f"the first {video['analysed']}" + (" (capped: the rest was not looked at)"
                                                                  if f.get("capped") else ""))
    pdf.field("Keyframes", f"{video['count']}" + (" (capped)" if video.get("keyframes_capped") else ""))
    frames = video.get("keyframes") or []
    pdf.para(", ".join(f"{k['clock']} {k['why']}" for k in frames), size=8.5)
    _strip(pdf, [(k["thumb"], f"Keyframe {k['clock']} ({k['why']})") for k in frames], store, max_pixels)


def _curve(pdf: ReportPDF, curve: dict[str, Any], store: MediaStore, max_pixels: int) -> None:
    """The per-frame scores as a small line chart, and the worst frames."""
    aggregate = f", the video's score is their {curve['aggregate']}" if curve.get("aggregate") else ""
    pdf.field("Frames scored", f"{curve['count']}{aggregate}; highest {curve['max']:.2f}")
    if pdf.get_y() > pdf.h - 45:
        pdf.add_page()
    x0, y0, w, h = pdf.l_margin, pdf.get_y() + 1, 120.0, 24.0
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
        pdf.field("Worst frames", ", ".join(f"{wf['clock']}: {wf['score']:.2f}" for wf in curve["worst"]))
        _strip(pdf, [(wf["thumb"], f"{wf['clock']}: {wf['score']:.2f}") for wf in curve["worst"]], store, max_pixels)
