"""Media type from the bytes themselves: headers from strangers are never trusted."""
from __future__ import annotations

# (offset, magic, mime); checked in order, first match wins.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"BM", "image/bmp"),
)
_FTYP_BRANDS: dict[bytes, str] = {
    b"avif": "image/avif", b"avis": "image/avif",
    b"heic": "image/heic", b"heix": "image/heic", b"hevc": "image/heic", b"heim": "image/heic",
    b"heis": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
    b"isom": "video/mp4", b"iso2": "video/mp4", b"mp41": "video/mp4", b"mp42": "video/mp4",
    b"avc1": "video/mp4", b"dash": "video/mp4", b"M4V ": "video/mp4", b"qt  ": "video/quicktime",
    b"iso4": "video/mp4", b"iso5": "video/mp4", b"iso6": "video/mp4", b"mp71": "video/mp4",
}

IMAGE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff", "image/bmp",
    "image/avif", "image/heic", "image/heif",
})
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm"})
# Types we cannot analyse as pixels but whose Content Credentials c2pa-python reads.
PROVENANCE_ONLY_TYPES = frozenset({"image/svg+xml", "audio/mpeg", "audio/wav"})


def sniff(head: bytes) -> str | None:
    """Return the MIME type the leading bytes prove, or None when they prove nothing we know."""
    for offset, magic, mime in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM names its doc type early in the header
        return "video/webm" if b"webm" in head[:64] else None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return "audio/mpeg"  # an ID3 tag, or an MPEG audio frame sync with a layer set
    if _is_svg(head):
        return "image/svg+xml"
    return None


def _is_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg"):
        return True
    # An XML prolog (and maybe comments or a doctype) before the root: the root must be <svg.
    return text.startswith(b"<?xml") and b"<svg" in text and b"<html" not in text


def describe_unknown(head: bytes) -> str:
    """Plain words for what a refused body looked like, for the verdict's reason."""
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<body" in text:
        return "an HTML page, not media"
    if text.startswith((b"{", b"[")):
        return "JSON data, not media"
    if not head:
        return "an empty body"
    return "content of an unknown type"
