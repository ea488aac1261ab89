"""Forensic views a trained eye reads beside the verdict: error levels, noise residual, JPEG quantisation and
the file's whole metadata (issue 21).

Pure functions over decoded pixels or the file's bytes; the worker job (worker/forensics_jobs.py) bounds and
stores them. None of this is evidence for the verdict: each view is an aid with a known way to mislead
(a re-saved photo lights up in ELA everywhere, a smooth sky has no noise), so it is shown, never scored.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageFilter, IptcImagePlugin

ELA_QUALITY = 90
GHOST_QUALITIES = tuple(range(30, 100, 2))
GHOST_RISE = 0.05  # how far the curve must climb back after a dip (share of the dip's value)
GHOST_SIDE = 512  # the double-compression hint looks at a central crop this big (aligned to the 8 px grid)
MAX_ROWS = 400
MAX_VALUE = 500

# ITU-T T.81 Annex K tables in natural (row-major) order, as Pillow reports ``quantization``.
IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
IJG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))


# ---------------------------------------------------------------------------- pixel views

def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def _resaved(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    _rgb(img).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _diff(a: Image.Image, b: Image.Image) -> np.ndarray:
    """|a - b| per sample, in 16 bits: a third of the memory float32 would take on a large image."""
    return np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))


def _amplified(diff: np.ndarray) -> Image.Image:
    """Scale a non-negative difference so its 99.5th percentile is white: faint differences become visible
    without one bright outlier deciding the scale."""
    sample = diff.reshape(-1)[::7]  # the percentile of a sample: exact enough, and fast on large images
    top = float(np.percentile(sample, 99.5)) if sample.size else 0.0
    gain = 255.0 / max(top, 1.0)
    return Image.fromarray(np.clip(diff.astype(np.float32) * gain, 0, 255).astype(np.uint8))


def ela_map(img: Image.Image, quality: int = ELA_QUALITY) -> np.ndarray:
    """Per-pixel error level: the mean absolute change over the channels when re-saved at ``quality``.

    Parts that were compressed like the rest change alike; a region pasted from a file saved differently
    (or not compressed at all) changes by a different amount."""
    return _diff(_rgb(img), _resaved(img, quality)).mean(axis=2, dtype=np.float32)


def ela_image(img: Image.Image, quality: int = ELA_QUALITY) -> Image.Image:
    """The error levels as a picture, per channel, amplified."""
    return _amplified(_diff(_rgb(img), _resaved(img, quality)))


def noise_residual(img: Image.Image) -> Image.Image:
    """The image minus its 3x3 median: what is left is sensor noise, grain and compression, which a camera
    leaves evenly; a patch from elsewhere, a blur or a generated area often has noise of its own."""
    rgb = _rgb(img)
    return _amplified(_diff(rgb, rgb.filter(ImageFilter.MedianFilter(3))))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# ---------------------------------------------------------------------------- JPEG quantisation

def ijg_table(base: tuple[int, ...], quality: int) -> list[int]:
    """libjpeg's ``jpeg_quality_scaling`` applied to a base table (baseline: clamped to 1..255)."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    return [min(max((v * scale + 50) // 100, 1), 255) for v in base]


@dataclass(frozen=True)
class QualityEstimate:
    quality: int  # the IJG quality whose tables are closest
    standard: bool  # the tables are exactly IJG's at that quality (else a camera's or an app's own)
    mean_error: float  # mean absolute difference per coefficient from those tables


def quant_tables(data: bytes) -> list[list[int]] | None:
    """The file's quantisation tables (natural order), read from the header; None if it is not a JPEG."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                return None
            tables = getattr(img, "quantization", None) or {}
            return [list(tables[k]) for k in sorted(tables)]
    except (OSError, ValueError, SyntaxError):
        return None


def estimate_quality(tables: list[list[int]]) -> QualityEstimate | None:
    """Invert the IJG scaling: the quality whose standard tables are nearest the file's (luma first, then
    chroma when present). Tables that are not IJG's still get their nearest quality, marked as not standard."""
    if not tables or len(tables[0]) != 64:
        return None
    bases = [IJG_LUMA, IJG_CHROMA][:min(len(tables), 2)]
    best: tuple[float, int] | None = None
    for quality in range(1, 101):
        error = 0.0
        for table, base in zip(tables, bases):
            error += sum(abs(a - b) for a, b in zip(table, ijg_table(base, quality))) / 64
        error /= len(bases)
        if best is None or error < best[0]:
            best = (error, quality)
    assert best is not None
    return QualityEstimate(quality=best[1], standard=best[0] == 0.0, mean_error=round(best[0], 3))


def compression_ghosts(img: Image.Image, qualities: tuple[int, ...] = GHOST_QUALITIES) -> list[tuple[int, float]]:
    """Farid's JPEG ghosts: the mean squared change of a central crop re-saved at each quality. A file once
    saved at a lower quality than its last save keeps a dip at that earlier quality."""
    rgb = _rgb(img)
    side_w, side_h = min(GHOST_SIDE, rgb.width // 8 * 8), min(GHOST_SIDE, rgb.height // 8 * 8)
    if side_w < 16 or side_h < 16:
        return []
    left = (rgb.width - side_w) // 2 // 8 * 8  # on the file's own 8 px grid
    top = (rgb.height - side_h) // 2 // 8 * 8
    crop = rgb.crop((left, top, left + side_w, top + side_h))
    base = np.asarray(crop, dtype=np.float32)
    return [(q, float(((base - np.asarray(_resaved(crop, q), dtype=np.float32)) ** 2).mean())) for q in qualities]


def double_compression_hint(curve: list[tuple[int, float]], last_quality: int | None) -> dict[str, Any]:
    """A dip in the ghost curve well below the last save's quality hints at an earlier, lower-quality save.

    A hint, not a finding: resizing, cropping off the grid or heavy editing hide the dip, and a file saved
    twice at the same quality shows none."""
    out: dict[str, Any] = {"earlier_quality": None, "curve": [[q, round(v, 3)] for q, v in curve]}
    if len(curve) < 5 or last_quality is None:
        return out
    values = [v for _, v in curve]
    best: tuple[float, int] | None = None
    for i, (q, v) in enumerate(curve[:-1]):
        if q > last_quality - 6:
            break
        # A single save's curve only falls as the quality rises; an earlier save makes it rise again after it.
        rise = (max(values[i + 1:i + 5]) - v) / max(v, 1e-6)
        if rise > GHOST_RISE and (best is None or rise > best[0]):
            best = (rise, q)
    if best is not None:
        out["earlier_quality"] = best[1]
        out["rise"] = round(best[0], 3)
    return out


# ---------------------------------------------------------------------------- metadata

IPTC_NAMES = {
    (1, 90): "CodedCharacterSet", (2, 5): "ObjectName", (2, 10): "Urgency", (2, 15): "Category",
    (2, 20): "SupplementalCategories", (2, 25): "Keywords", (2, 40): "SpecialInstructions", (2, 55): "DateCreated",
    (2, 60): "TimeCreated", (2, 62): "DigitalCreationDate", (2, 63): "DigitalCreationTime",
    (2, 65): "OriginatingProgram", (2, 80): "By-line", (2, 85): "By-lineTitle", (2, 90): "City",
    (2, 92): "Sub-location", (2, 95): "Province-State", (2, 100): "Country-PrimaryLocationCode",
    (2, 101): "Country-PrimaryLocationName", (2, 103): "OriginalTransmissionReference", (2, 105): "Headline",
    (2, 110): "Credit", (2, 115): "Source", (2, 116): "CopyrightNotice", (2, 118): "Contact",
    (2, 120): "Caption-Abstract", (2, 122): "Writer-Editor",
}
_IFDS = ((ExifTags.IFD.Exif, "EXIF", ExifTags.TAGS), (ExifTags.IFD.GPSInfo, "GPS", ExifTags.GPSTAGS),
         (ExifTags.IFD.Interop, "EXIF", ExifTags.TAGS))
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        printable = value.rstrip(b"\x00")
        try:
            text = printable.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(value)} bytes of binary data)"
        if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
            return f"({len(value)} bytes of binary data)"
        value = text
    elif isinstance(value, (tuple, list)):
        value = ", ".join(_text(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:g}"
    text = str(value).strip("\x00 ")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "…"


@dataclass
class _Rows:
    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, group: str, tag: str, value: Any) -> None:
        if len(self.rows) < MAX_ROWS:
            text = _text(value)
            if text:
                self.rows.append({"group": group, "tag": tag, "value": text})


def _exif_rows(img: Image.Image, out: _Rows) -> None:
    exif = img.getexif()
    for tag, value in exif.items():
        if tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, ExifTags.IFD.Interop):
            continue  # pointers to the sub-directories read below
        out.add("EXIF", ExifTags.TAGS.get(tag, f"0x{tag:04x}"), value)
    for ifd, group, names in _IFDS:
        try:
            items = exif.get_ifd(ifd).items()
        except (KeyError, ValueError, TypeError, OSError):
            continue
        for tag, value in items:
            if names is ExifTags.TAGS and tag == 0x927C:  # MakerNote: a vendor's own binary
                value = f"({len(value) if isinstance(value, bytes) else '?'} bytes, maker-specific)"
            out.add(group, names.get(tag, f"0x{tag:04x}"), value)


def _local(name: str, prefixes: dict[str, str]) -> str:
    if name.startswith("{"):
        uri, _, local = name[1:].partition("}")
        return f"{prefixes.get(uri, uri.rstrip('/#').rsplit('/', 1)[-1])}:{local}"
    return name


def _xmp_rows(packet: bytes | str, out: _Rows) -> None:
    from defusedxml import ElementTree  # entity expansion and external entities refused

    raw = packet.encode() if isinstance(packet, str) else packet
    start, end = raw.find(b"<x:xmpmeta"), raw.rfind(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        start, end = raw.find(b"<rdf:RDF"), raw.rfind(b"</rdf:RDF>")
        closing = len(b"</rdf:RDF>")
    else:
        closing = len(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        return
    xml = raw[start:end + closing]
    try:
        prefixes = {uri: prefix for _, (prefix, uri) in ElementTree.iterparse(io.BytesIO(xml), events=("start-ns",))}
        root = ElementTree.fromstring(xml)
    except Exception:  # noqa: BLE001 - a broken packet is said, not raised
        out.add("XMP", "packet", f"({len(raw)} bytes that could not be read as XML)")
        return
    for desc in root.iter(f"{_RDF}Description"):
        for name, value in desc.attrib.items():
            if not name.startswith(_RDF):
                out.add("XMP", _local(name, prefixes), value)
        for child in desc:
            items = [li.text.strip() for li in child.iter(f"{_RDF}li") if li.text and li.text.strip()]
            if items:
                out.add("XMP", _local(child.tag, prefixes), items)
            elif child.text and child.text.strip():
                out.add("XMP", _local(child.tag, prefixes), child.text)
            elif child.attrib:
                out.add("XMP", _local(child.tag, prefixes),
                        "; ".join(f"{_local(k, prefixes)}={v}" for k, v in child.attrib.items()
                                  if not k.startswith(_RDF)))


def _iptc_rows(img: Image.Image, out: _Rows) -> None:
    try:
        info = IptcImagePlugin.getiptcinfo(img) or {}
    except Exception:  # noqa: BLE001 - Pillow raises several types on a broken IPTC block
        return
    for key, value in sorted(info.items()):
        out.add("IPTC", IPTC_NAMES.get(key, f"{key[0]}:{key[1]:03d}"), value)


def metadata_rows(data: bytes) -> list[dict[str, str]]:
    """Every EXIF (with its Exif, GPS and interoperability directories), XMP and IPTC field, and the format's
    own text fields (PNG text chunks, where generators write their prompts), as rows; parsed, never decoded."""
    out = _Rows()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                _exif_rows(img, out)
                xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
                if xmp:
                    _xmp_rows(xmp, out)
                if img.format == "JPEG":
                    _iptc_rows(img, out)
                for key, value in img.info.items():
                    if key in ("xmp", "XML:com.adobe.xmp", "exif", "icc_profile", "photoshop") or \
                            not isinstance(value, (str, bytes)):
                        continue
                    out.add(img.format or "File", key, value)
                if img.info.get("icc_profile"):
                    out.add("ICC", "profile", f"({len(img.info['icc_profile'])} bytes)")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        pass
    return out.rows
