"""Read and validate a file's C2PA manifest store into plain typed results.

c2pa-python does the cryptography; this module only asks it, with the caller's context, and
turns its JSON into small records (signer, actions, ingredient tree) that the explain stage
words and the verdict keeps. Nothing here decides a level.
"""
from __future__ import annotations

import html

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from worker.stages import c2pa_signer
from worker.stages.ai_metadata import Declaration, generator_named, says_ai_in_words, source_type_words
from worker.stages.budget import Limits, OverBudget, check_structure, jpeg_segments
from worker.stages.c2pa_signer import SignerCertificate

# A manifest store is a JUMBF superbox labelled "c2pa"; a remote one is named in XMP
# (dcterms:provenance).
_MARKERS = (b"c2pa", b"provenance")
_MAX_TEXT = 200
_MAX_ACTIONS = 24
_MAX_INGREDIENTS = 48
_MAX_DEPTH = 8
_MAX_THUMBNAIL_BYTES = 2 * 1024 * 1024
_MAX_THUMBNAILS = 16
_MAX_BLOB = 64 * 1024
_DST_SCAN = re.compile(r"digitalsourcetype/([A-Za-z]+)", re.I)

# Sniffed types handed to the reader by name: each is one c2pa-python accepts under exactly that
# name (tests/test_c2pa_formats.py checks it against the library's own list); others go unnamed.
_FORMATS = {
    "image/jpeg", "image/png", "image/webp", "image/avif", "image/heic", "image/heif", "image/gif",
    "image/tiff", "image/svg+xml", "video/mp4", "video/quicktime", "audio/mpeg", "audio/wav",
}
# A bare manifest store (JUMBF, no asset), as the repository keeps and exchanges them: the library validates its
# signatures, certificates and assertion hashes, but cannot check the hard binding without the asset.
MANIFEST_STORE = "application/c2pa"


@dataclass
class Status:
    code: str
    url: str = ""
    explanation: str = ""


@dataclass
class SignerInfo:
    organisation: str | None = None
    common_name: str | None = None
    issuer: str | None = None          # the CA that issued the signing certificate
    algorithm: str | None = None
    serial: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    signing_time: str | None = None    # only known from a time-stamp (trusted or not: see below)
    timestamped: bool = False
    timestamp_authority: str | None = None
    # True: the stamp's authority chains to an anchor; False: it does not, or the stamp is broken;
    # None: no stamp, or one the library did not trust-check (legacy v1 claims).
    timestamp_trusted: bool | None = None
    # The signing certificate as we read it from the store (c2pa_signer), or why it could not be read:
    # the library's verdict on it is not enough (a time-stamping certificate passes as a content signer).
    certificate: SignerCertificate | None = None
    certificate_error: str | None = None


@dataclass
class Action:
    action: str
    software_agent: str | None = None
    digital_source_type: str | None = None
    description: str | None = None
    when: str | None = None


@dataclass
class Ingredient:
    title: str | None
    relationship: str | None
    format: str | None
    manifest: str | None                      # label of its manifest in the store, if it has one
    validation: str                           # valid / invalid / untrusted / no credentials
    failures: list[str] = field(default_factory=list)
    thumbnail: str | None = None              # resource identifier; bytes in C2paResult.thumbnails
    ingredients: list["Ingredient"] = field(default_factory=list)


@dataclass
class Manifest:
    label: str
    title: str | None
    claim_generator: str | None
    signer: SignerInfo
    actions: list[Action]
    assertions: list[dict[str, Any]]          # raw, for declaration scans (never stored)
    ingredient_refs: list[dict[str, Any]]     # raw ingredient records
    thumbnail: str | None = None


@dataclass
class C2paResult:
    status: str   # absent, present, remote, damaged, unreadable, unsupported
    state: str | None = None                  # Trusted / Valid / Invalid
    failures: list[Status] = field(default_factory=list)
    active: Manifest | None = None
    manifests: dict[str, Manifest] = field(default_factory=dict)
    ingredients: list[Ingredient] = field(default_factory=list)
    remote_url: str | None = None
    embedded: bool = True
    error: str | None = None
    thumbnails: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # identifier -> (format, bytes)
    mime: str | None = None                   # what was read: the explanations name the content by it
    # Failure codes of the active manifest's own validation results (crJSON), which can hold more than
    # the store's summary list (e.g. claimSignature.mismatch beside signingCredential.expired).
    active_failures: list[str] = field(default_factory=list)
    # ... and its success codes (signingCredential.trusted among them), read the same way.
    active_successes: list[str] = field(default_factory=list)
    # Only read after an assertion.dataHash.mismatch: whether the data-hash exclusions cover where the
    # manifest store actually sits in the file (see data_binding).
    binding: DataBinding | None = None


@dataclass
class DataBinding:
    """Where a JPEG's manifest store sits and what its data hash leaves out, to tell a writer's
    structural defect (the exclusion misses the store) from a content change (it covers it)."""

    exclusions: list[tuple[int, int]]          # (start, length) of each range left out of the hash
    manifest_at: tuple[int, int] | None        # [start, end) of the APP11 segments holding the store
    covered: bool | None                       # None: could not tell


def might_carry_credentials(data: bytes) -> bool:
    """Whether bytes of a type we did not recognise could hold or name a manifest store."""
    return any(marker in data for marker in _MARKERS)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "\u2026"


def _agent(value: Any) -> str | None:
    if isinstance(value, dict):
        name = value.get("name")
        version = value.get("version")
        return _text(f"{name} {version}" if name and version else name)
    return _text(value)


def _generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return _agent(info[0])
    return _text(manifest.get("claim_generator"))


def _actions(assertions: list[dict[str, Any]]) -> list[Action]:
    found: list[Action] = []
    for assertion in assertions:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") or {}
        for act in data.get("actions") or []:
            if not isinstance(act, dict) or len(found) >= _MAX_ACTIONS:
                continue
            params = act.get("parameters") if isinstance(act.get("parameters"), dict) else {}
            found.append(Action(
                action=_text(act.get("action")) or "unknown",
                software_agent=_agent(act.get("softwareAgent")),
                digital_source_type=_text(act.get("digitalSourceType") or params.get("digitalSourceType")),
                description=_text(act.get("description") or params.get("description")),
                when=_text(act.get("when")),
            ))
    return found


def _dn(name: Any) -> str | None:
    if not isinstance(name, dict):
        return None
    cn, org = name.get("CN"), name.get("O")
    if cn and org and org not in cn:
        return _text(f"{cn} ({org})")
    return _text(cn or org)


def _signatures(crjson: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per manifest label: its crJSON signature record (certificate, time-stamp authority) and its
    own validation results. Only crJSON carries the issuer, the validity and the stamp's signer."""
    found: dict[str, dict[str, Any]] = {}
    for manifest in crjson.get("manifests") or []:
        if isinstance(manifest, dict):
            signature = manifest.get("signature") if isinstance(manifest.get("signature"), dict) else {}
            results = manifest.get("validationResults")
            found[str(manifest.get("label"))] = {**signature,
                                                 "results": results if isinstance(results, dict) else {}}
    return found


def _timestamp_trust(results: dict[str, Any]) -> bool | None:
    """Whether the library trusted the time-stamp: it logs `timeStamp.trusted` as a success, and an
    untrusted or broken stamp only as information (the signature then counts as unstamped)."""
    def codes(bucket: str) -> list[tuple[str, str]]:
        items = results.get(bucket) if isinstance(results.get(bucket), list) else []
        return [(str(i.get("code")), str(i.get("explanation", ""))) for i in items if isinstance(i, dict)]

    for code, words in codes("success"):
        if code == "timeStamp.trusted":
            # c2pa-rs does not trust-check the stamps of v1 claims yet logs them as "legacy ... trusted".
            return None if words.startswith("legacy") else True
    if any(code.startswith("timeStamp.") and code != "timeStamp.validated"
           for code, _ in codes("informational") + codes("failure")):
        return False
    return None


def _signer(manifest: dict[str, Any], signature: dict[str, Any]) -> SignerInfo:
    info = manifest.get("signature_info") or {}
    cert = signature.get("certificateInfo") if isinstance(signature.get("certificateInfo"), dict) else {}
    subject = cert.get("subject") if isinstance(cert.get("subject"), dict) else {}
    validity = cert.get("validity") if isinstance(cert.get("validity"), dict) else {}
    stamp = signature.get("timeStampInfo") if isinstance(signature.get("timeStampInfo"), dict) else {}
    stamp_cert = stamp.get("certificateInfo") if isinstance(stamp.get("certificateInfo"), dict) else {}
    time = info.get("time") or stamp.get("timestamp")
    return SignerInfo(
        organisation=_text(subject.get("O") or info.get("issuer")),  # c2pa's "issuer" is the subject's O
        common_name=_text(subject.get("CN") or info.get("common_name")),
        issuer=_dn(cert.get("issuer")),
        algorithm=_text(info.get("alg")),
        serial=_text(info.get("cert_serial_number")),
        not_before=_text(validity.get("notBefore")),
        not_after=_text(validity.get("notAfter")),
        signing_time=_text(time),
        timestamped=bool(time),
        timestamp_authority=_dn(stamp_cert.get("subject")) if time else None,
        timestamp_trusted=_timestamp_trust(signature.get("results") or {}) if time else None,
    )


def _manifest(label: str, raw: dict[str, Any], cert: dict[str, Any]) -> Manifest:
    assertions = [a for a in raw.get("assertions") or [] if isinstance(a, dict)]
    thumb = raw.get("thumbnail") if isinstance(raw.get("thumbnail"), dict) else {}
    return Manifest(
        label=label,
        title=_text(raw.get("title")),
        claim_generator=_generator(raw),
        signer=_signer(raw, cert),
        actions=_actions(assertions),
        assertions=assertions,
        ingredient_refs=[i for i in raw.get("ingredients") or [] if isinstance(i, dict)],
        thumbnail=thumb.get("identifier"),
    )


def _ingredient_state(raw: dict[str, Any]) -> tuple[str, list[str]]:
    results = raw.get("validation_results")
    statuses: list[dict[str, Any]] = []
    if isinstance(results, dict):
        statuses = ((results.get("activeManifest") or {}).get("failure")) or []
    elif isinstance(raw.get("validation_status"), list):
        statuses = raw["validation_status"]
    codes = [str(s.get("code")) for s in statuses if isinstance(s, dict) and s.get("code")]
    if not raw.get("active_manifest") and not raw.get("manifest_data"):
        return "no credentials", codes
    if any(c != "signingCredential.untrusted" and not c.startswith("signingCredential.ocsp") for c in codes):
        return "invalid", codes
    return ("untrusted" if codes else "valid"), codes


def _tree(refs: list[dict[str, Any]], manifests: dict[str, Manifest], depth: int, seen: set[str],
          budget: list[int]) -> list[Ingredient]:
    out: list[Ingredient] = []
    for raw in refs:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        label = raw.get("active_manifest")
        state, codes = _ingredient_state(raw)
        thumb = raw.get("thumbnail") if isinstance(raw.get("thumbnail"), dict) else {}
        node = Ingredient(
            title=_text(raw.get("title")), relationship=_text(raw.get("relationship")),
            format=_text(raw.get("format")), manifest=label if isinstance(label, str) else None,
            validation=state, failures=codes[:8], thumbnail=thumb.get("identifier"),
        )
        child = manifests.get(label) if isinstance(label, str) else None
        if child is not None and depth < _MAX_DEPTH and label not in seen:  # stores can be cyclic
            node.ingredients = _tree(child.ingredient_refs, manifests, depth + 1, seen | {label}, budget)
        out.append(node)
    return out


def _thumbnails(reader: Any, result: C2paResult) -> None:
    """Fetch the thumbnails the store holds. Their type is sniffed, not taken from the manifest (c2pa
    writes a GIF's or a WebP's thumbnail in that format), and anything but a raster image is dropped."""
    from server.media_types import IMAGE_TYPES, sniff

    wanted: list[str] = []
    if result.active is not None and result.active.thumbnail:
        wanted.append(result.active.thumbnail)
    stack = list(result.ingredients)
    while stack:
        node = stack.pop(0)
        if node.thumbnail:
            wanted.append(node.thumbnail)
        stack.extend(node.ingredients)
    for identifier in wanted[:_MAX_THUMBNAILS]:
        buf = io.BytesIO()
        try:
            if reader.resource_to_stream(identifier, buf) > _MAX_THUMBNAIL_BYTES:
                continue
        except Exception:  # noqa: BLE001 - a missing thumbnail never spoils the reading
            continue
        data = buf.getvalue()[:_MAX_THUMBNAIL_BYTES]
        fmt = sniff(data[:64])
        if fmt in IMAGE_TYPES:
            result.thumbnails[identifier] = (fmt, data)


def _signer_certificates(reader: Any, result: C2paResult) -> None:
    """Attach each manifest's signing certificate, read from the store the library hands back.

    ``resource_to_stream`` on a manifest's own JUMBF URI streams that manifest's store (with its
    ingredients' manifests) as JUMBF, whatever the container format was; see c2pa_signer for why
    we read the certificate ourselves. A store we cannot read leaves an error, never an exception."""
    if result.active is None:
        return
    buf = io.BytesIO()
    try:
        reader.resource_to_stream(f"self#jumbf=/c2pa/{result.active.label}", buf)
        found: dict[str, Any] = c2pa_signer.signer_certificates(buf.getvalue())
    except Exception as exc:  # noqa: BLE001 - a library error or a hostile store: judged as unreadable
        text = str(exc) if isinstance(exc, c2pa_signer.SignerReadError) else type(exc).__name__
        found = {}
        error = f"the manifest store could not be read ({_text(text)})"
    else:
        error = "the manifest's signature was not found in the store"
    for label, manifest in result.manifests.items():
        cert = found.get(label)
        if isinstance(cert, SignerCertificate) and manifest.signer.serial not in (None, cert.serial):
            # Not the certificate the library checked: never judge (or pass) a signer on the wrong one.
            manifest.signer.certificate_error = "the certificate in the store is not the one the library checked"
        elif isinstance(cert, SignerCertificate):
            manifest.signer.certificate = cert
        else:
            manifest.signer.certificate_error = _text(str(cert)) if cert is not None else error


def jpeg_manifest_span(data: bytes) -> tuple[int, int] | None:
    """[start, end) of the JPEG APP11 segments that carry JUMBF ("JP" common identifier), markers
    included; None when the bytes are not a JPEG or hold none. Reads segment headers up to the scan."""
    first = last = None
    for marker, start, end in jpeg_segments(data):
        if marker == 0xDA or end > len(data):  # the scan: no more headers; or a segment cut short
            break
        if marker == 0xEB and data[start + 4:start + 6] == b"JP":
            first = start if first is None else first
            last = end
    return (first, last) if first is not None and last is not None else None


def covers(exclusions: list[tuple[int, int]], span: tuple[int, int]) -> bool:
    """Whether the union of the (start, length) ranges holds every byte of [start, end)."""
    at = span[0]
    for start, length in sorted(exclusions):
        if start > at:
            break
        at = max(at, start + length)
        if at >= span[1]:
            return True
    return at >= span[1]


def data_binding(store: bytes, label: str, data: bytes, mime: str | None) -> DataBinding | None:
    """Compare the active manifest's data-hash exclusions with where its store sits (JPEG only)."""
    if mime != "image/jpeg":
        return None
    try:
        exclusions = c2pa_signer.data_hash_exclusions(store, label)
    except (c2pa_signer.SignerReadError, RecursionError, MemoryError, OverflowError, ValueError, TypeError):
        return None
    if exclusions is None:
        return None
    span = jpeg_manifest_span(data)
    return DataBinding(exclusions, span, covers(exclusions, span) if span else None)


def _data_binding(reader: Any, result: C2paResult, data: bytes) -> None:
    """After a data-hash mismatch: read the active store again and check where its exclusion points."""
    if result.active is None or "assertion.dataHash.mismatch" not in [f.code for f in result.failures]:
        return
    buf = io.BytesIO()
    try:
        reader.resource_to_stream(f"self#jumbf=/c2pa/{result.active.label}", buf)
    except Exception:  # noqa: BLE001 - without the store we cannot tell, and say nothing more
        return
    result.binding = data_binding(buf.getvalue(), result.active.label, data, result.mime)


def read_c2pa(data: bytes, mime: str | None, context: Any, *, manifest_data: bytes | None = None,
              want_thumbnails: bool = True, limits: Limits | None = None) -> C2paResult:
    """Validate the store in ``data`` (or the fetched ``manifest_data`` for it) with ``context``.

    Bytes over a structure budget (worker/stages/budget.py) are not handed to the library at all: its
    parsers cannot be interrupted once they run.
    """
    import c2pa

    try:
        check_structure(data, limits or Limits())
        if manifest_data is not None:
            check_structure(manifest_data, limits or Limits())
    except OverBudget as exc:
        return C2paResult(status="unreadable", error=f"not read: {exc.reason}")
    fmt = mime if mime in _FORMATS or mime == MANIFEST_STORE else None
    # The library walks a known container faster than Python scans the bytes; other types are
    # only handed to it when they could hold a manifest at all.
    if manifest_data is None and fmt is None and not might_carry_credentials(data):
        return C2paResult(status="absent")
    try:
        reader = c2pa.Reader(fmt, io.BytesIO(data), manifest_data, context=context)
    except c2pa.C2paError.ManifestNotFound:
        return C2paResult(status="absent")
    except c2pa.C2paError as exc:
        return _failed(exc)
    with reader:
        store = json.loads(reader.json())
        try:
            certs = _signatures(json.loads(reader.crjson()))
        except (c2pa.C2paError, ValueError):
            certs = {}
        active_label = str(store.get("active_manifest") or "")
        if active_label and not (certs.get(active_label) or {}).get("results"):
            # Without crJSON the store's own results still say how the active stamp fared.
            results = (store.get("validation_results") or {}).get("activeManifest")
            certs.setdefault(active_label, {})["results"] = results if isinstance(results, dict) else {}
        manifests = {label: _manifest(label, raw, certs.get(label, {}))
                     for label, raw in (store.get("manifests") or {}).items() if isinstance(raw, dict)}
        active = manifests.get(store.get("active_manifest") or "")
        result = C2paResult(
            status="present",
            state=store.get("validation_state"),
            failures=[Status(str(s.get("code")), str(s.get("url", "")), str(s.get("explanation", "")))
                      for s in store.get("validation_status") or [] if isinstance(s, dict)],
            active=active,
            manifests=manifests,
            embedded=bool(reader.is_embedded()),
            mime=mime,
        )
        _signer_certificates(reader, result)
        results = (certs.get(active_label) or {}).get("results") or {}
        own, passed = results.get("failure"), results.get("success")
        result.active_failures = [str(i.get("code")) for i in own if isinstance(i, dict)] if isinstance(own, list) else []
        result.active_successes = ([str(i.get("code")) for i in passed if isinstance(i, dict)]
                                   if isinstance(passed, list) else [])
        if manifest_data is None:
            _data_binding(reader, result, data)
        if active is not None:
            result.ingredients = _tree(active.ingredient_refs, manifests, 0, {active.label}, [_MAX_INGREDIENTS])
        if want_thumbnails:
            _thumbnails(reader, result)
    return result


def _failed(exc: Exception) -> C2paResult:
    text = str(exc)
    short = text if len(text) <= 300 else text[:297] + "..."
    if text.startswith("Remote:"):
        # "must fetch remote manifests from url <URL>": the file names where its store lives, as the XMP
        # holds it, XML-escaped ("&amp;" for "&").
        url = html.unescape(text.rsplit(" ", 1)[-1].strip().strip('"')) if "url" in text else None
        return C2paResult(status="remote", remote_url=url if url and "://" in url else None, embedded=False,
                          error=short)
    if text.startswith(("NotSupported", "UnsupportedType")):
        return C2paResult(status="unsupported", error=short)
    if text.startswith(("Other:", "Io:", "FileNotFound")) or "could not be parsed" in text:
        return C2paResult(status="unreadable", error=short)
    # Verify / Jumbf / Decoding / Manifest / Signature / Json: the store itself is broken.
    return C2paResult(status="damaged", error=short)


# --------------------------------------------------------------------------- AI declarations

def _where(result: C2paResult, label: str) -> str:
    if result.active is not None and label == result.active.label:
        return "the active manifest"
    stack = list(result.ingredients)
    while stack:
        node = stack.pop(0)
        if node.manifest == label:
            rel = f", {node.relationship}" if node.relationship else ""
            return f"ingredient '{node.title or 'untitled'}'{rel}"
        stack.extend(node.ingredients)
    return f"manifest {label}"


def ai_declarations(result: C2paResult) -> list[Declaration]:
    """AI declarations in ANY manifest of the store: an AI-made parent counts as much as the
    active manifest's own claim, since an edit of a generated image is still generated."""
    found: list[Declaration] = []
    seen: set[tuple[str, str]] = set()

    def add(label: str, field_: str, value: str, says: str, strength: float = 1.0) -> None:
        if (label, value) not in seen and len(found) < 16:
            seen.add((label, value))
            found.append(Declaration("c2pa", f"{field_} in {_where(result, label)}", value, says, strength))

    for label, manifest in result.manifests.items():
        for act in manifest.actions:
            known = source_type_words(act.digital_source_type or "")
            if known:
                add(label, f"{act.action} digitalSourceType", known[0], known[1])
            for text in (act.software_agent, act.description):
                if text and (name := generator_named(text)):
                    add(label, f"{act.action} by {text}", text, f"made with {name}", 0.8)
            if act.description and says_ai_in_words(act.description):
                add(label, f"{act.action} description", act.description, "an edit described as generative AI", 0.8)
        for assertion in manifest.assertions:
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                continue
            blob = json.dumps(assertion.get("data"), default=str)[:_MAX_BLOB]
            for match in _DST_SCAN.finditer(blob):
                known = source_type_words(match.group(1))
                if known:
                    add(label, f"{assertion.get('label')} DigitalSourceType", known[0], known[1])
        if manifest.claim_generator and (name := generator_named(manifest.claim_generator)):
            add(label, "claim generator", manifest.claim_generator, f"made with {name}", 0.8)
    return sorted(found, key=lambda d: -d.strength)
