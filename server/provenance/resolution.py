"""The C2PA Soft Binding Resolution API (specification 2.4.0) over the manifest repository: the shapes and
status codes of the specification's OpenAPI description, so other C2PA tools can query Credence.

Queries go through ``repository`` (its rules stay there); this module only reads the API's inputs and writes
its outputs. Manifest identifiers are the active manifests' labels, as the specification asks.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import models
from server.provenance import repository

if TYPE_CHECKING:
    from server.config import Settings

SPEC_VERSION = "2.4.0"
API_PATH = "/c2pa/v1"  # where the API's paths are served (its "servers" base)
DEFAULT_RESULTS, MAX_RESULTS = 10, 100
MAX_VALUE_CHARS = 2048  # longer GET values answer 414 (use POST)
_CONTENT, _IMAGE = 2, 1  # ISCC MainType CONTENT, SubType IMAGE


class ResolutionError(Exception):
    """A request the specification answers with ``status`` (400, 404, 414, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Store:
    """A manifest store to serve as ``application/c2pa``."""

    data: bytes
    label: str


def supported_algorithms(session: Session) -> dict[str, Any]:
    """ISCC is computed for every stored manifest; declared watermark values are found by exact lookup."""
    declared = session.scalars(select(models.ProvenanceBinding.alg).distinct().order_by(models.ProvenanceBinding.alg)
                               .limit(100)).all()
    return {"watermarks": [{"alg": alg} for alg in declared if alg != repository.ISCC_ALG],
            "fingerprints": [{"alg": repository.ISCC_ALG}]}


def capabilities() -> dict[str, Any]:
    return {"c2paSpecificationVersion": SPEC_VERSION, "supportedCapabilities": ["queryByContent"]}


def well_known(base_url: str) -> dict[str, Any]:
    """RFC 8615 discovery: absolute URLs under ``base_url`` (the server's root URL)."""
    api = base_url.rstrip("/") + API_PATH
    return {"apiEndpoint": api, "c2paSpecificationVersion": SPEC_VERSION,
            "capabilitiesEndpoint": f"{api}/services/capabilities", "statusEndpoint": f"{api}/services/status"}


def results(max_results: str | int | None) -> int:
    if max_results in (None, ""):
        return DEFAULT_RESULTS
    try:
        count = int(max_results)
    except (TypeError, ValueError):
        raise ResolutionError(400, "maxResults must be an integer") from None
    if count < 1:
        raise ResolutionError(400, "maxResults must be at least 1")
    return min(count, MAX_RESULTS)


def image_code(raw: bytes) -> str | None:
    """The Content-Code Image unit of an ISCC-SEQ (IEP-0020: units of header and body, concatenated) or of one
    ISCC written as text, as the ``ISCC:`` code of its first 64 bits (what the repository compares)."""
    import iscc_core

    if raw[:5].upper() == b"ISCC:":
        try:
            raw = iscc_core.decode_base32(raw[5:].decode("ascii").strip())
        except (UnicodeDecodeError, ValueError, binascii.Error):
            return None
    for _ in range(16):  # an ISCC-SEQ holds a handful of units
        if not raw:
            return None
        try:
            maintype, subtype, version, length, tail = iscc_core.decode_header(raw)
            bits = iscc_core.decode_length(maintype, length)
        except (ValueError, IndexError, KeyError):
            return None
        body, raw = tail[:bits // 8], tail[bits // 8:]
        if maintype == _CONTENT and subtype == _IMAGE and version == 0 and len(body) >= 8:
            return "ISCC:" + iscc_core.encode_component(_CONTENT, _IMAGE, 0, 64, body[:8])
    return None


def _match(found: repository.Recovery, bits: int) -> dict[str, Any]:
    return {"manifestId": found.label, "similarityScore": max(0, round(100 * (1 - found.distance / bits)))}


def matches_by_binding(session: Session, alg: str, value: str, max_results: int,
                       settings: Settings) -> dict[str, Any]:
    """``io.iscc.v0``: the Content-Code Image unit, near within the repository's threshold; any alg a stored
    manifest declares: its value, exactly (as base64, or as the text the manifest holds)."""
    if not alg or not value:
        raise ResolutionError(400, "alg and value are required")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ResolutionError(400, "value is not base64") from None
    if alg == repository.ISCC_ALG:
        code = image_code(raw)
        if code is None:
            raise ResolutionError(400, "value holds no ISCC Content-Code Image unit")
        found = repository.find(session, pdq=[], iscc=code, pdq_threshold=settings.pdq_threshold)
        return {"matches": [_match(found, 64)] if found else []}
    texts = [value] + ([raw.decode("utf-8")] if raw.isascii() else [])
    found_all: dict[str, repository.Recovery] = {}
    for text in texts:
        for found in repository.find_by_binding(session, alg, text):
            found_all.setdefault(found.label, found)
    return {"matches": [_match(f, 1) for f in list(found_all.values())[:max_results]]}


def matches_by_content(session: Session, data: bytes, settings: Settings) -> dict[str, Any]:
    """An uploaded image fingerprinted by the one rule for uploads (PDQ in 8 orientations, ISCC), looked up as a
    stripped copy is in the pipeline. The nearest original only: the repository answers one best match per content."""
    from worker.stages.fingerprint import FingerprintError, fingerprint  # pure functions, loaded when asked

    try:
        fp = fingerprint(data, settings)
    except FingerprintError as exc:
        raise ResolutionError(415, f"not an image this service reads ({exc.reason})") from None
    if fp.kind != "image":
        raise ResolutionError(415, "not an image: send an image (image/*) as the request body")
    pdq = fp.orientations if fp.pdq_usable else []
    found = repository.find(session, pdq=pdq, iscc=fp.iscc, pdq_threshold=settings.pdq_threshold)
    if found is None:
        return {"matches": []}
    return {"matches": [_match(found, 256 if found.binding == repository.PDQ_BINDING else 64)]}


def manifest(session: Session, manifest_id: str) -> Store:
    """The stored store of a served manifest, by its label; only stores kept whole are served. The whole store
    is served even when only the active manifest is asked for (the specification allows either)."""
    if not manifest_id or len(manifest_id) > 512:
        raise ResolutionError(400, "invalid manifest identifier")
    row = session.scalars(select(models.ProvenanceManifest).where(
        models.ProvenanceManifest.label == manifest_id,
        models.ProvenanceManifest.state.in_(repository.SERVED_STATES),
        models.ProvenanceManifest.store.isnot(None)).limit(1)).first()
    if row is None or row.store is None:
        raise ResolutionError(404, "C2PA Manifest not found")
    return Store(data=row.store, label=row.label)
