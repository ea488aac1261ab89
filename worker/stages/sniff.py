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
}

IMAGE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff", "image/bmp",
    "image/avif", "image/heic", "image/heif",
})


def sniff(head: bytes) -> str | None:
    """Return the MIME type the leading bytes prove, or None when they prove nothing we know."""
    for offset, magic, mime in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    return None


def describe_unknown(head: bytes) -> str:
    """Plain words for what a refused body looked like, for the verdict's reason."""
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<body" in text:
        return "an HTML page, not media"
    if text.startswith((b"<?xml", b"<svg")) and b"<svg" in text:
        return "an SVG drawing (not supported yet)"
    if text.startswith((b"{", b"[")):
        return "JSON data, not media"
    if not head:
        return "an empty body"
    return "content of an unknown type"
