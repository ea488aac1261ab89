"""The C2PA Soft Binding Resolution API (specification 2.4.0) over the manifest repository: the shapes and
status codes of the specification's OpenAPI description, so other C2PA tools can query Credence.

Queries go through ``repository`` (its rules stay there), and a query by reference through the checks service
(server/checks/service.py), so the worker's guarded fetcher is the only thing that fetches; this module only
reads the API's inputs and writes its outputs. Manifest identifiers are the active manifests' labels, as the
specification asks.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import models
from server.checks import service as checks
from server.checks.urls import BadUrl, normalise
from server.provenance import repository
from server.verdicts import Level
from server.vocabulary import Kind

if TYPE_CHECKING:
    from server.config import Settings
    from server.services import Services

SPEC_VERSION = "2.4.0"
API_PATH = "/c2pa/v1"  # where the API's paths are served (its "servers" base)
# PDQ is not on C2PA's soft-binding algorithm list: the repository's name for the binding, Meta's for the signal
# type (ThreatExchange, HMA), is this service's identifier for it (docs/repository.md).
PDQ_ALG = repository.PDQ_BINDING
DEFAULT_RESULTS, MAX_RESULTS = 10, 100
MAX_VALUE_CHARS = 2048  # longer GET values answer 414 (use POST)
_CONTENT, _IMAGE = 2, 1  # ISCC MainType CONTENT, SubType IMAGE
REFERENCE_RETRY_S = 2  # byReference's Retry-After when the fetch outlasts the wait (the spec has no "not yet")


class ResolutionError(Exception):
    """A request the specification answers with ``status`` (400, 404, 414, 415); 503 with ``retry_after``
    when a referenced asset is still being fetched (the specification's byReference has no answer for that)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass
class Reference:
    """A byReference request body, checked: the normalised URL, the most bytes the asset may have, its type."""

    url: str
    length: int
    media_type: str | None


@dataclass
class Store:
    """A manifest store to serve as ``application/c2pa``."""

    data: bytes
    label: str


def supported_algorithms(session: Session) -> dict[str, Any]:
    """ISCC and PDQ are computed for every stored picture; declared watermark values are found by exact lookup."""
    declared = session.scalars(select(models.ProvenanceBinding.alg).distinct().order_by(models.ProvenanceBinding.alg)
                               .limit(100)).all()
    return {"watermarks": [{"alg": alg} for alg in declared if alg not in (repository.ISCC_ALG, PDQ_ALG)],
            "fingerprints": [{"alg": repository.ISCC_ALG}, {"alg": PDQ_ALG}]}


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


def _score(distance: int, bits: int) -> int:
    """100 less the distance's share of the binding's bits."""
    return max(0, round(100 * (1 - distance / bits)))


def _bits(binding: str | None) -> int:
    """How many bits the binding that matched has: PDQ and a video's frame PDQs 256, the ISCC Image-Code 64."""
    return 256 if binding in (repository.PDQ_BINDING, repository.VPDQ_BINDING) else 64


def _match(found: repository.Recovery) -> dict[str, Any]:
    return {"manifestId": found.label, "similarityScore": _score(found.distance, _bits(found.binding))}


def _video_score(share: float, distance: int, settings: Settings) -> int | None:
    """A video's match, when the share of its frames that match reaches CREDENCE_VPDQ_MATCH_SHARE (the rule by which
    the pipeline lets a recovered original speak for a video: a signed photo shown for a moment is not this video's
    manifest): that share of the nearest pair's score. None below it."""
    if share < settings.vpdq_match_share:
        return None
    return round(share * _score(distance, 256))


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
    if alg == PDQ_ALG:
        pdq = raw.hex() if len(raw) == 32 else raw.decode("ascii", "replace").strip().lower()
        if len(pdq) != 64 or any(c not in "0123456789abcdef" for c in pdq):
            raise ResolutionError(400, "a pdq value is the base64 of the hash's 32 bytes or of its 64 hex digits")
        found = repository.find(session, pdq=[pdq], iscc=None, pdq_threshold=settings.pdq_threshold)
        return {"matches": [_match(found)] if found else []}
    if alg == repository.ISCC_ALG:
        code = image_code(raw)
        if code is None:
            raise ResolutionError(400, "value holds no ISCC Content-Code Image unit")
        found = repository.find(session, pdq=[], iscc=code, pdq_threshold=settings.pdq_threshold)
        return {"matches": [_match(found)] if found else []}
    texts = [value] + ([raw.decode("utf-8")] if raw.isascii() else [])
    found_all: dict[str, repository.Recovery] = {}
    for text in texts:
        for found in repository.find_by_binding(session, alg, text):
            found_all.setdefault(found.label, found)
    return {"matches": [_match(f) for f in list(found_all.values())[:max_results]]}  # exact: distance 0


def matches_by_content(session: Session, data: bytes, settings: Settings) -> dict[str, Any]:
    """An uploaded image or video fingerprinted by the one rule for uploads, looked up as a stripped copy is in the
    pipeline: an image by PDQ in 8 orientations, then ISCC; a video by its vPDQ frames (``_video_score``). The
    nearest original only: the repository answers one best match per content."""
    from worker.stages.fingerprint import FingerprintError, fingerprint  # pure functions, loaded when asked

    try:
        fp = fingerprint(data, settings)
    except FingerprintError as exc:
        raise ResolutionError(415, f"not an image or a video this service reads ({exc.reason})") from None
    if fp.kind == "video":
        frames = repository.find_frames(session, fp.frames, pdq_threshold=settings.pdq_threshold,
                                         frame_threshold=settings.vpdq_frame_threshold)
        score = _video_score(frames.share, frames.distance, settings) if frames is not None else None
        return {"matches": [] if score is None else [{"manifestId": frames.label, "similarityScore": score}]}
    pdq = fp.orientations if fp.pdq_usable else []
    found = repository.find(session, pdq=pdq, iscc=fp.iscc, pdq_threshold=settings.pdq_threshold)
    return {"matches": [_match(found)] if found else []}


def reference(body: Any) -> Reference:
    """The specification's ``referenceUrl`` (normalised by the one URL rule, so refused before anything is
    queued) and ``assetLength`` are required; ``assetType`` is optional. A ``region`` cannot be honoured (the
    specification says only soft bindings within it shall match, and this service hashes whole images), so it is
    refused rather than ignored."""
    if not isinstance(body, dict):
        raise ResolutionError(400, "the body must be a JSON object with referenceUrl and assetLength")
    url, length, media_type = body.get("referenceUrl"), body.get("assetLength"), body.get("assetType")
    if not isinstance(url, str) or not url:
        raise ResolutionError(400, "referenceUrl (a string) is required")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ResolutionError(400, "assetLength (a positive integer, in bytes) is required")
    if media_type is not None and (not isinstance(media_type, str) or not 0 < len(media_type) <= 100):
        raise ResolutionError(400, "assetType must be a media type such as image/jpeg")
    if body.get("region"):
        raise ResolutionError(400, "region is not supported: this service matches whole images only")
    try:
        normalised = normalise(url)
    except BadUrl as exc:
        raise ResolutionError(400, f"referenceUrl cannot be fetched: {exc}") from None
    return Reference(url=normalised, length=length,
                     media_type=media_type.split(";")[0].strip().lower() if media_type else None)


def matches_by_reference(svc: Services, ref: Reference, max_results: int, wait_s: float) -> dict[str, Any]:
    """The asset at ``ref.url`` checked as any URL is (server/checks/service.py): fetched by the worker's guarded
    fetcher, never by this process, and analysed by the pipeline, whose recovery rule looks a copy without
    credentials up in the repository. Its verdict is read here: a recovered original's manifest, or the asset's
    own manifest when the repository keeps it. A check that is not done within ``wait_s`` (capped by the
    settings) is a 503 with Retry-After: asking again joins the same check or reads its cached verdict."""
    [result] = checks.check_urls(svc, [ref.url])
    checks.wait(svc, [result], wait_s)
    if result["status"] != "done":
        raise ResolutionError(503, "the referenced asset is still being fetched and checked; ask again",
                              retry_after=REFERENCE_RETRY_S)
    verdict = json.loads(result["verdict"]) if isinstance(result["verdict"], str) else result["verdict"]
    evidence = [e for e in verdict.get("evidence") or [] if isinstance(e, dict)]
    if verdict.get("level") == Level.UNAVAILABLE.value:  # the fetcher's refusal or unreadable bytes, as worded
        reason = next((e.get("summary") for e in evidence if e.get("summary")), None) or "could not be checked"
        raise ResolutionError(400, f"referenceUrl: {reason}")
    with svc.db.session() as session:
        media = session.get(models.Media, verdict.get("sha256") or "")
        if media is not None:
            size = media.source_size or media.size
            if size > ref.length:
                raise ResolutionError(400, f"the asset has {size} bytes, more than assetLength ({ref.length})")
            if ref.media_type and media.mime != ref.media_type:
                raise ResolutionError(400, f"the asset is {media.mime}, not the assetType {ref.media_type}")
        own = session.scalars(select(models.ProvenanceManifest.label).where(
            models.ProvenanceManifest.sha256 == (verdict.get("sha256") or ""),
            models.ProvenanceManifest.state.in_(repository.SERVED_STATES))).first()
    if own is not None:
        return {"matches": [{"manifestId": own, "similarityScore": 100}]}
    matches = []
    for item in evidence:
        details = item.get("details") or {}
        if item.get("kind") != Kind.CREDENTIALS_RECOVERED or not isinstance(details.get("manifest"), str):
            continue
        bits = _bits(details.get("binding"))
        distance = details.get("distance") if isinstance(details.get("distance"), int) else bits
        frames = details.get("frames")
        if isinstance(frames, dict):  # a video: answered as byContent answers one
            share = frames.get("share") if isinstance(frames.get("share"), (int, float)) else 0.0
            score = _video_score(share, distance, svc.settings)
        else:
            score = _score(distance, bits)
        if score is not None:
            matches.append({"manifestId": details["manifest"], "similarityScore": score})
    return {"matches": matches[:max_results]}


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
