"""Declarations of AI generation in a file's own metadata, no C2PA needed.

Generators and the tools around them say what they are in several places: the IPTC
DigitalSourceType in XMP (the standard way), the text chunks diffusion front-ends write into
PNGs (AUTOMATIC1111 "parameters", ComfyUI "prompt"/"workflow", InvokeAI, NovelAI), and the
Software / CreatorTool fields. All of it is trivially stripped, so absence proves nothing; but
presence is the file speaking about itself, which is why it is reported as a declaration.
"""
from __future__ import annotations

import io
import json
import re
import warnings
import zlib
from dataclasses import dataclass

from server.verdicts import Evidence, Level
from server.wording import AI_SOURCE_TERMS, SOURCE_TYPES, field_words

# IPTC digital source types (cv.iptc.org/newscodes/digitalsourcetype/) that mean "not a camera".
AI_SOURCE_TYPES: dict[str, str] = {term: SOURCE_TYPES[term] for term in AI_SOURCE_TERMS}

# Names of generators and front-ends as they appear in Software / CreatorTool / agent fields.
KNOWN_GENERATORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), name) for pattern, name in (
        (r"stable[\s_-]?diffusion|\bsdxl\b", "Stable Diffusion"),
        (r"automatic1111|\ba1111\b|stable-diffusion-webui", "AUTOMATIC1111 web UI"),
        (r"comfyui", "ComfyUI"),
        (r"invokeai", "InvokeAI"),
        (r"fooocus", "Fooocus"),
        (r"novelai", "NovelAI"),
        (r"midjourney", "Midjourney"),
        (r"dall[\s\u00b7.-]?e\b", "DALL-E"),
        (r"chatgpt|\bopenai\b", "OpenAI"),
        (r"\bfirefly\b", "Adobe Firefly"),
        (r"\bimagen\b|\bgemini\b", "Google Imagen / Gemini"),
        (r"leonardo[\s.]?ai", "Leonardo.Ai"),
        (r"ideogram", "Ideogram"),
        (r"flux\.1|black forest labs", "FLUX"),
        (r"runwayml|runway gen", "Runway"),
        (r"bing image creator|image creator from (?:microsoft )?designer|microsoft designer", "Microsoft Designer"),
        (r"dreamstudio|stability\.?\s?ai", "Stability AI"),
        (r"nightcafe", "NightCafe"),
        (r"craiyon", "Craiyon"),
        (r"playground\s?ai", "Playground AI"),
        (r"diffusionbee", "DiffusionBee"),
        (r"draw things", "Draw Things"),
        (r"imagine with meta|\bmeta ai\b", "Meta AI"),
        (r"\bsora\b", "OpenAI Sora"),
        (r"\bkrea\b", "Krea"),
        (r"civitai", "Civitai"),
    )
)

# Free-text phrases (C2PA action descriptions) that say the same in words.
_AI_PHRASES = re.compile(
    r"\b(?:generative (?:ai|fill|expand)|ai[- ]generated|generated (?:by|with|using) (?:an? )?ai|"
    r"text[- ]to[- ]image|image generation model)\b", re.I)
_DST_RE = re.compile(r"digitalsourcetype/([A-Za-z]+)", re.I)
_CREATOR_TOOL_RE = re.compile(
    r"(?:xmp|xap|tiff|exif):(?:CreatorTool|Software)(?:=\"([^\"]{0,300})\"|>([^<]{0,300})<)", re.I)
_XMP_START = (b"<x:xmpmeta", b"<x:xapmeta")
_A1111_RE = re.compile(r"\bSteps: \d+.*\b(?:Sampler|CFG scale|Seed): ", re.S)
_MAX_TEXT = 1024 * 1024
_MAX_CHUNKS = 4096
_MAX_XMP_PACKETS = 4


@dataclass(frozen=True)
class Declaration:
    """One place in a file that says it was made with AI.

    ``strength`` is how directly it says so: 1.0 for an explicit declaration (IPTC/C2PA source
    type), lower for traces that only name a generator or carry its settings.
    """

    source: str   # iptc-xmp, png-text, exif, xmp, c2pa, watermark
    field: str
    value: str
    says: str
    strength: float = 1.0


def generator_named(text: str) -> str | None:
    """The known generator a free-text field names, if any."""
    for pattern, name in KNOWN_GENERATORS:
        if pattern.search(text):
            return name
    return None


def says_ai_in_words(text: str) -> bool:
    """Whether free text (an action's description) itself says generative AI was used."""
    return bool(_AI_PHRASES.search(text))


def source_type_words(value: str) -> tuple[str, str] | None:
    """(term, plain words) when ``value`` names an AI digital source type."""
    match = _DST_RE.search(value) if "/" in value else None
    term = match.group(1) if match else value.strip()
    for known, words in AI_SOURCE_TYPES.items():
        if term.lower() == known.lower():
            return known, words
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# --------------------------------------------------------------------------- extraction

def _inflate(data: bytes) -> str:
    try:
        out = zlib.decompressobj().decompress(data, _MAX_TEXT)  # capped: no zip bombs
    except zlib.error:
        return ""
    return out.decode("utf-8", "replace")


def png_text(data: bytes) -> dict[str, str]:
    """tEXt, zTXt and iTXt chunks of a PNG, wherever they sit (before or after the pixels)."""
    out: dict[str, str] = {}
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return out
    pos, total = 8, 0
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(data):
            break
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND" or len(body) < length:
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or b"\0" not in body:
            continue
        key_raw, rest = body.split(b"\0", 1)
        key = key_raw.decode("latin-1")[:79]
        if kind == b"tEXt":
            text = rest.decode("latin-1")
        elif kind == b"zTXt":
            text = _inflate(rest[1:])
        else:
            if len(rest) < 2:
                continue
            compressed, fields = rest[0], rest[2:]
            parts = fields.split(b"\0", 2)
            if len(parts) < 3:
                continue
            text = _inflate(parts[2]) if compressed else parts[2].decode("utf-8", "replace")
        total += len(text)
        if total > 8 * _MAX_TEXT:
            break
        out[key] = text[:_MAX_TEXT]
    return out


def xmp_packets(data: bytes, extra: list[str] | None = None) -> list[str]:
    """XMP packets found in the raw bytes (JPEG APP1, WebP, TIFF, HEIF all keep them as text)."""
    packets: list[str] = list(extra or [])
    for start_tag in _XMP_START:
        pos = 0
        while len(packets) < _MAX_XMP_PACKETS:
            start = data.find(start_tag, pos)
            if start < 0:
                break
            end_tag = b"</x:xmpmeta>" if start_tag == b"<x:xmpmeta" else b"</x:xapmeta>"
            end = data.find(end_tag, start, start + _MAX_TEXT)
            if end < 0:
                break
            packets.append(data[start:end + len(end_tag)].decode("utf-8", "replace"))
            pos = end
    return packets


def _user_comment(raw: object) -> str:
    """EXIF UserComment: an 8-byte charset prefix, then text (AUTOMATIC1111 writes UTF-16)."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes):
        return ""
    head, body = raw[:8], raw[8:]
    if head.startswith(b"UNICODE"):
        # Big-endian per the standard; some writers use little-endian. Pick the one with fewer NULs.
        be, le = body.decode("utf-16-be", "replace"), body.decode("utf-16-le", "replace")
        return be if be.count("\0") + be.count("\ufffd") <= le.count("\0") + le.count("\ufffd") else le
    return body.decode("utf-8", "replace").strip("\0")


def exif_fields(data: bytes) -> dict[str, str]:
    """The few EXIF text fields that name software or carry generation settings."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                if img.format == "PNG":
                    # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk after the image
                    # data: a 143 KB 7000x7000 PNG cost ~1 GB. Only an eXIf chunk before the data is read.
                    exif = Image.Exif()
                    if img.info.get("exif"):
                        exif.load(img.info["exif"])
                else:
                    exif = img.getexif()
                out = {name: str(exif.get(tag))[:_MAX_TEXT]
                       for tag, name in ((0x0131, "Software"), (0x010E, "ImageDescription"),
                                         (0x013B, "Artist"), (0x010F, "Make"), (0x0110, "Model"))
                       if exif.get(tag)}
                comment = exif.get_ifd(0x8769).get(0x9286)
                if comment:
                    out["UserComment"] = _user_comment(comment)[:_MAX_TEXT]
                return out
    except Exception:  # noqa: BLE001 - broken metadata is simply no metadata
        return {}


# --------------------------------------------------------------------------- detection

def _from_png_text(chunks: dict[str, str]) -> list[Declaration]:
    found: list[Declaration] = []
    for key, text in chunks.items():
        low = key.lower()
        if low == "parameters" and _A1111_RE.search(text):
            tool = generator_named(text) or "a Stable Diffusion web UI (AUTOMATIC1111 / Forge style)"
            found.append(Declaration("png-text", 'PNG text "parameters"', _short(text),
                                     f"generation settings written by {tool}", 0.9))
        elif low in ("prompt", "workflow") and _comfy_graph(text):
            found.append(Declaration("png-text", f'PNG text "{key}"', _short(text),
                                     "a ComfyUI generation graph", 0.9))
        elif low in ("invokeai_metadata", "invokeai_graph", "sd-metadata", "dream"):
            found.append(Declaration("png-text", f'PNG text "{key}"', _short(text),
                                     "generation settings written by InvokeAI", 0.9))
        elif low == "comment" and _novelai_comment(text):
            found.append(Declaration("png-text", 'PNG text "Comment"', _short(text),
                                     "generation settings (NovelAI style)", 0.9))
        elif low in ("software", "source", "generator", "creator tool"):
            name = generator_named(text)
            if name:
                found.append(Declaration("png-text", f'PNG text "{key}"', _short(text),
                                         f"made with {name}", 0.8))
    return found


def _comfy_graph(text: str) -> bool:
    try:
        graph = json.loads(text)
    except ValueError:
        return False
    if isinstance(graph, dict) and isinstance(graph.get("nodes"), list):
        return True
    return isinstance(graph, dict) and any(isinstance(v, dict) and "class_type" in v for v in graph.values())


def _novelai_comment(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and "steps" in data and ("sampler" in data or "scale" in data)


def _from_xmp(packets: list[str]) -> list[Declaration]:
    found: list[Declaration] = []
    seen: set[str] = set()
    for packet in packets:
        for match in _DST_RE.finditer(packet):
            known = source_type_words(match.group(1))
            if known and known[0] not in seen:
                seen.add(known[0])
                found.append(Declaration("iptc-xmp", "XMP Iptc4xmpExt:DigitalSourceType", known[0], known[1]))
        for match in _CREATOR_TOOL_RE.finditer(packet):
            value = match.group(1) or match.group(2) or ""
            name = generator_named(value)
            if name and name not in seen:
                seen.add(name)
                found.append(Declaration("xmp", "XMP CreatorTool / Software", _short(value), f"made with {name}", 0.8))
    return found


def _from_exif(fields: dict[str, str]) -> list[Declaration]:
    found: list[Declaration] = []
    for name, value in fields.items():
        if name in ("UserComment", "ImageDescription") and _A1111_RE.search(value):
            tool = generator_named(value) or "a Stable Diffusion web UI (AUTOMATIC1111 / Forge style)"
            found.append(Declaration("exif", f"EXIF {name}", _short(value),
                                     f"generation settings written by {tool}", 0.9))
            continue
        generator = generator_named(value)
        if generator and name in ("Software", "Artist", "Make", "Model", "ImageDescription"):
            found.append(Declaration("exif", f"EXIF {name}", _short(value), f"made with {generator}", 0.8))
    return found


def find_declarations(data: bytes, mime: str | None) -> list[Declaration]:
    """Every metadata declaration of AI generation in the file, strongest first."""
    chunks = png_text(data) if mime == "image/png" else {}
    extra_xmp = [text for key, text in chunks.items() if key == "XML:com.adobe.xmp"]
    found = _from_xmp(xmp_packets(data, extra_xmp))
    found += _from_png_text({k: v for k, v in chunks.items() if k != "XML:com.adobe.xmp"})
    found += _from_exif(exif_fields(data))
    return sorted(found, key=lambda d: -d.strength)


# --------------------------------------------------------------------------- evidence

_LEADS = {
    "c2pa": "Content Credentials declare generative AI",
    "iptc-xmp": "The file's IPTC metadata declares it AI-made",
    "png-text": "The file's metadata shows AI generation",
    "exif": "The file's EXIF metadata shows AI generation",
    "xmp": "The file's XMP metadata shows AI generation",
}


def evidence(declarations: list[Declaration], stage: str) -> list[Evidence]:
    """One AI_DECLARED item per kind of source, so the report says which source said so."""
    by_source: dict[str, list[Declaration]] = {}
    for d in declarations:
        by_source.setdefault(d.source, []).append(d)
    out = []
    for source, items in by_source.items():
        lead = items[0]
        more = f" ({len(items) - 1} more declaration{'s' if len(items) > 2 else ''} agree.)" if len(items) > 1 else ""
        out.append(Evidence(
            stage=stage, kind=f"ai-{source}", supports=Level.AI_DECLARED,
            score=None if lead.strength >= 1.0 else lead.strength,
            # The field in words; as the file names it (an action code, an XMP property) it stays in details.
            summary=f"{_LEADS.get(source, 'The file declares AI generation')}: {lead.says} "
                    f"(found in {field_words(lead.field)}).{more}",
            details={"source": source, "declarations": [
                {"field": d.field, "value": d.value, "says": d.says, "strength": d.strength} for d in items[:10]]},
        ))
    return out
