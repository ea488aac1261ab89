"""The codes provenance speaks in, as a journalist would say them: one home for the worker's summaries, the
desk's pages and the PDF.

C2PA validation status codes (``CODES``: every code c2pa-rs can emit -> kind, a category for the reader,
plain words), C2PA actions, IPTC digital source types, ingredient relationships, and the container and codec
names FFmpeg (PyAV) reports. Every ``*_words`` function answers for any input: an unknown code is turned into
words from its own name rather than shown raw, because a reader must never meet a bare code; the raw code
stays in the evidence's details and behind the desk's details toggles.

Plain Python with no imports from the project, so the API process, the worker and the PDF can all load it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# --------------------------------------------------------------------------- validation status codes

# What a validation code means for the reader: a small set of categories the desk and tests rely on.
CONTENT_CHANGED = "content-changed"          # the signed content (pixels, sound, ...) no longer matches
CREDENTIALS_CHANGED = "credentials-changed"  # the credentials themselves were altered or are incomplete
SIGNATURE_INVALID = "signature-invalid"      # the signature does not verify
CERTIFICATE_EXPIRED = "certificate-expired"  # signed outside the certificate's validity
CERTIFICATE_PURPOSE = "certificate-purpose"  # the certificate is not allowed to sign content
CERTIFICATE_REVOKED = "certificate-revoked"
UNTRUSTED_SIGNER = "untrusted-signer"        # valid, but the signer does not chain to your trust list
STRUCTURAL_DEFECT = "structural-defect"      # malformed or self-contradictory, often the writer's bug
TIME_STAMP = "time-stamp"                    # about the signature's time-stamp only
INGREDIENT = "ingredient"                    # about an ingredient's credentials, not this file's
NOT_CHECKED = "not-checked"                  # something could not be checked at all
PASSED = "passed"                            # a success code: a check that passed
NOTE = "note"                                # informational: neither success nor failure

# Categories that say a check could not be confirmed, not that something failed: c2pa-rs reports
# signingCredential.untrusted with the validation state still "Valid" (intact, signer unknown to you).
UNCONFIRMED = frozenset({UNTRUSTED_SIGNER, NOT_CHECKED, NOTE, TIME_STAMP})


@dataclass(frozen=True)
class Code:
    kind: str        # success / informational / failure, as the C2PA specification files the code
    category: str
    words: str


S, I, F = "success", "informational", "failure"
# Every status code of the C2PA 2.x specification (Standard Status Codes) that c2pa-rs defines
# (sdk/src/validation_results.rs, validation_codes), plus the 1.x names the library still reads in
# older ingredients. Content hash mismatches have "{what}" filled in by the file's type.
CODES: dict[str, Code] = {
    # -- success
    "claimSignature.validated": Code(S, PASSED, "the signature over the credentials verifies"),
    "claimSignature.insideValidity": Code(S, PASSED, "the file was signed while the signing certificate was valid"),
    "signingCredential.trusted": Code(S, PASSED, "the signer's certificate chains to an anchor on your trust list"),
    "signingCredential.ocsp.notRevoked": Code(S, PASSED, "the signing certificate was not revoked"),
    "timeStamp.validated": Code(S, PASSED, "the time-stamp is well formed and matches the signature"),
    "timeStamp.trusted": Code(S, PASSED, "the time-stamp comes from an authority on your time-stamp trust list"),
    "assertion.hashedURI.match": Code(S, PASSED, "a part of the credentials is unchanged since signing"),
    "assertion.dataHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.bmffHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.boxesHash.match": Code(S, PASSED, "the content is unchanged since signing"),
    "assertion.collectionHash.match": Code(S, PASSED, "the files covered by the credentials are unchanged"),
    "assertion.accessible": Code(S, PASSED, "a part of the credentials stored elsewhere could be read"),
    "ingredient.manifest.validated": Code(S, PASSED, "an ingredient's credentials are unchanged"),
    "ingredient.claimSignature.validated": Code(S, PASSED, "an ingredient's signature is unchanged"),
    # -- informational
    "signingCredential.ocsp.skipped": Code(I, NOTE, "the signing certificate's revocation status was not checked online"),
    "signingCredential.ocsp.inaccessible":
        Code(I, NOTE, "the signing certificate's revocation status could not be fetched"),
    "timeStamp.mismatch": Code(I, TIME_STAMP, "the time-stamp does not match the signature"),
    "timeStamp.malformed": Code(I, TIME_STAMP, "the time-stamp is malformed"),
    "timeStamp.outsideValidity": Code(I, TIME_STAMP, "the time-stamp falls outside its authority's certificate validity"),
    "timeStamp.untrusted":
        Code(I, TIME_STAMP, "the time-stamp comes from an authority that is not on your time-stamp trust list"),
    "manifest.unknownProvenance": Code(I, NOTE, "the credentials are of a kind this verifier cannot interpret"),
    "manifest.unreferenced": Code(I, NOTE, "the store holds credentials that no ingredient refers to"),
    "algorithm.deprecated": Code(I, NOTE, "the credentials were signed or hashed with a deprecated algorithm"),
    "timeOfSigning.insideValidity": Code(I, NOTE, "the claimed signing time is inside the certificate's validity"),
    "ingredient.unknownProvenance": Code(I, NOTE, "an ingredient carries no credentials"),
    "assertion.dataHash.additionalExclusionsPresent":
        Code(I, NOTE, "the content hash leaves out more of the file than the credentials need"),
    # -- failure: the content
    "assertion.dataHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing (or the file was cut short)"),
    "assertion.bmffHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing"),
    "assertion.boxesHash.mismatch": Code(F, CONTENT_CHANGED, "{what} changed after signing"),
    "assertion.collectionHash.mismatch": Code(F, CONTENT_CHANGED, "files covered by the credentials were changed after signing"),
    "assertion.collectionHash.incorrectFileCount":
        Code(F, CONTENT_CHANGED, "a file covered by the credentials is missing from the collection"),
    # -- failure: the credentials themselves
    "assertion.hashedURI.mismatch":
        Code(F, CREDENTIALS_CHANGED, "part of the credentials (an assertion such as the edit history) was changed after signing"),
    "hashedURI.mismatch": Code(F, CREDENTIALS_CHANGED, "part of the credentials was changed after signing"),
    "hashedURI.missing": Code(F, CREDENTIALS_CHANGED, "part of the signed credentials is missing from the file"),
    "assertion.missing": Code(F, CREDENTIALS_CHANGED, "part of the signed credentials is missing from the file"),
    "assertion.undeclared": Code(F, CREDENTIALS_CHANGED, "the credentials contain a part that was never signed"),
    "assertion.notRedacted": Code(F, CREDENTIALS_CHANGED, "a part the credentials say was removed is still there"),
    "assertion.outsideManifest": Code(F, CREDENTIALS_CHANGED, "the credentials sign a part kept outside their own manifest"),
    "claimSignature.mismatch":
        Code(F, SIGNATURE_INVALID, "the credentials were altered after they were signed: the signature no longer matches"),
    "claimSignature.missing": Code(F, SIGNATURE_INVALID, "the credentials carry no signature"),
    "claimSignature.outsideValidity":
        Code(F, CERTIFICATE_EXPIRED, "the credentials were signed outside the signing certificate's validity period"),
    "algorithm.unsupported":
        Code(F, NOT_CHECKED, "the credentials were signed with an algorithm this verifier does not accept"),
    # -- failure: the signer's certificate
    "signingCredential.untrusted":
        Code(F, UNTRUSTED_SIGNER, "the signer's certificate does not chain to an anchor on your trust list"),
    "signingCredential.invalid":
        Code(F, CERTIFICATE_PURPOSE, "certificate purpose not allowed, or a malformed certificate: the signing "
                                   "certificate is not valid for signing content (a key usage your settings do not "
                                   "allow, or a certificate outside the C2PA profile)"),
    "signingCredential.revoked": Code(F, CERTIFICATE_REVOKED, "the signing certificate was revoked by its issuer"),
    "signingCredential.ocsp.revoked": Code(F, CERTIFICATE_REVOKED, "the signing certificate was revoked by its issuer"),
    "signingCredential.ocsp.unknown":
        Code(F, NOT_CHECKED, "the signing certificate's revocation status could not be confirmed"),
    # c2pa uses this code for any date outside the certificate's validity, not-yet-valid included.
    "signingCredential.expired":
        Code(F, CERTIFICATE_EXPIRED, "the signing certificate was outside its validity period (expired), and no "
                                   "trusted time-stamp shows the file was signed while it was valid"),
    # -- failure: structure (malformed or self-contradictory credentials, often the writing software's bug)
    "assertion.dataHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.dataHash.redacted": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing was removed"),
    "assertion.bmffHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.boxesHash.malformed": Code(F, STRUCTURAL_DEFECT, "the record of the content at signing is malformed"),
    "assertion.boxesHash.unknownBox":
        Code(F, STRUCTURAL_DEFECT, "the file's structure does not match the record of it made at signing"),
    "assertion.collectionHash.invalidURI": Code(F, STRUCTURAL_DEFECT, "the list of files covered by the credentials is malformed"),
    "assertion.collectionHash.malformed": Code(F, STRUCTURAL_DEFECT, "the list of files covered by the credentials is malformed"),
    "assertion.multipleHardBindings": Code(F, STRUCTURAL_DEFECT, "the credentials bind to the content in conflicting ways"),
    "assertion.inaccessible": Code(F, NOT_CHECKED, "part of the credentials could not be read"),
    "assertion.cbor.invalid": Code(F, STRUCTURAL_DEFECT, "part of the credentials is malformed"),
    "assertion.json.invalid": Code(F, STRUCTURAL_DEFECT, "part of the credentials is malformed"),
    "assertion.required.missing": Code(F, STRUCTURAL_DEFECT, "part of the credentials lacks a required field"),
    "assertion.action.ingredientMismatch": Code(F, STRUCTURAL_DEFECT, "the edit history names an ingredient that does not match"),
    "assertion.action.malformed": Code(F, STRUCTURAL_DEFECT, "the edit history is malformed"),
    "assertion.action.redacted": Code(F, CREDENTIALS_CHANGED, "the edit history was removed from the credentials"),
    "assertion.action.redactionMismatch": Code(F, STRUCTURAL_DEFECT, "the edit history names a removal that does not match"),
    "assertion.selfRedacted": Code(F, STRUCTURAL_DEFECT, "the credentials remove one of their own parts"),
    "assertion.cloud-data.hardBinding": Code(F, STRUCTURAL_DEFECT, "the content binding is stored outside the file, which is not allowed"),
    "assertion.cloud-data.actions": Code(F, STRUCTURAL_DEFECT, "an update refers to an edit history stored outside the file"),
    "assertion.cloud-data.malformed": Code(F, STRUCTURAL_DEFECT, "part of the credentials stored elsewhere is malformed"),
    "assertion.ingredient.malformed": Code(F, STRUCTURAL_DEFECT, "an ingredient record is malformed"),
    "assertion.metadata.disallowed": Code(F, STRUCTURAL_DEFECT, "the credentials' metadata holds a field the specification does not allow"),
    "assertion.timestamp.malformed": Code(F, STRUCTURAL_DEFECT, "a time-stamp record in the credentials is malformed"),
    "claim.missing": Code(F, STRUCTURAL_DEFECT, "the credentials have no claim to check"),
    "claim.multiple": Code(F, STRUCTURAL_DEFECT, "the credentials carry more than one claim"),
    "claim.malformed": Code(F, STRUCTURAL_DEFECT, "the credentials' claim is malformed"),
    "claim.cbor.invalid": Code(F, STRUCTURAL_DEFECT, "the credentials' claim is malformed"),
    "claim.required.missing": Code(F, STRUCTURAL_DEFECT, "the credentials' claim lacks a required field"),
    "claim.hardBindings.missing": Code(F, STRUCTURAL_DEFECT, "the credentials are not bound to this file's content"),
    "manifest.inaccessible": Code(F, NOT_CHECKED, "the credentials refer to a manifest that is not in the file"),
    "manifest.missing": Code(F, NOT_CHECKED, "the credentials refer to a manifest that is not in the file"),
    "manifest.multipleParents": Code(F, STRUCTURAL_DEFECT, "the credentials name more than one parent"),
    "manifest.update.invalid": Code(F, STRUCTURAL_DEFECT, "an update to the credentials is not valid"),
    "manifest.update.wrongParents": Code(F, STRUCTURAL_DEFECT, "an update to the credentials has the wrong parent"),
    "manifest.timestamp.invalid": Code(F, STRUCTURAL_DEFECT, "a time-stamp manifest holds parts it may not hold"),
    "manifest.timestamp.wrongParents": Code(F, STRUCTURAL_DEFECT, "a time-stamp manifest has the wrong parent"),
    "manifest.compressed.invalid": Code(F, STRUCTURAL_DEFECT, "the compressed credentials are not valid"),
    "general.error": Code(F, NOT_CHECKED, "the credentials could not be validated"),
    # -- failure: ingredients (what went into this file, not this file's own credentials)
    "ingredient.hashedURI.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.manifest.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.claimSignature.mismatch": Code(F, INGREDIENT, "an ingredient's credentials were changed after signing"),
    "ingredient.manifest.missing": Code(F, INGREDIENT, "an ingredient's credentials are missing"),
    "ingredient.claimSignature.missing": Code(F, INGREDIENT, "an ingredient's signature is missing"),
}
del S, I, F
# The words of every code that is not a content mismatch (kept for callers that read words only).
EXPLANATIONS: dict[str, str] = {code: c.words for code, c in CODES.items() if "{what}" not in c.words}
CONTENT_WHAT = (  # (MIME prefix, words); first match wins
    ("image/svg+xml", "the drawing (its SVG markup) was"),
    ("image/", "the pixels were"),
    ("audio/", "the sound was"),
    ("video/", "the video or its sound was"),
)


def explain(code: str, fallback: str = "", mime: str | None = None) -> str:
    """Plain words for one validation code; ``mime`` names what changed for a content mismatch."""
    known = CODES.get(code)
    if known is not None and "{what}" in known.words:
        what = next((words for prefix, words in CONTENT_WHAT if (mime or "").startswith(prefix)),
                    "the file's content was")
        return known.words.format(what=what)
    if known is not None:
        return known.words
    if code.startswith("signingCredential.ocsp"):
        return "the signing certificate's revocation status could not be confirmed"
    return fallback or f"validation failed ({code})"


def validation_words(code: str, mime: str | None = None, fallback: str = "") -> str:
    """Words for a validation code (``fallback``: the library's own explanation of an unknown one), never the
    code itself: an unknown code without an explanation is named by its parts."""
    words = explain(code, fallback, mime)
    return words if code not in words else f"a check the verifier names “{_split(code)}” failed"


def category(code: str) -> str:
    """What a code means for the reader (one of the categories above); unknown failures: not-checked."""
    known = CODES.get(code)
    return known.category if known is not None else NOT_CHECKED


# The validation state c2pa-rs gives a manifest store, and an ingredient's own validation as c2pa_read sums it.
STATES: dict[str, str] = {
    "Trusted": "intact, and the signer is on your trust list",
    "Valid": "intact, but the signer is not on your trust list",
    "Invalid": "the credentials or the content no longer match their signature",
}
# The library's Trusted or Valid when Credence's own check of the signing certificate (worker/stages/c2pa_signer.py)
# refused it, or could not read it.
STATE_REFUSED = "intact for the library, but the signing certificate may not sign content (see below)"
STATE_UNCHECKED = "intact for the library, but the signing certificate could not be read to confirm it may sign content"
INGREDIENT_STATES: dict[str, str] = {
    "valid": "credentials intact",
    "untrusted": "credentials intact, signer not on your trust list",
    "invalid": "credentials broken",
    "no credentials": "no credentials of its own",
}


def state_words(state: str | None, *, refused: bool = False, unchecked: bool = False) -> str:
    """A store's validation state (Trusted / Valid / Invalid) as the reader should take it; ``refused`` and
    ``unchecked``: our own check of the signing certificate overruled the library's Trusted or Valid."""
    if state in ("Trusted", "Valid") and (refused or unchecked):
        return STATE_REFUSED if refused else STATE_UNCHECKED
    return STATES.get(state or "", "not validated")


def ingredient_state_words(state: str | None) -> str:
    return INGREDIENT_STATES.get(state or "", "credentials not checked")


# --------------------------------------------------------------------------- actions

# The C2PA specification's actions (2.x, with the 1.x names still met in older files), as what was done.
ACTIONS: dict[str, str] = {
    "c2pa.created": "Created",
    "c2pa.opened": "Opened an existing file to work on",
    "c2pa.edited": "Edited",
    "c2pa.edited.metadata": "Edited the metadata",
    "c2pa.color_adjustments": "Adjusted colour or tone",
    "c2pa.cropped": "Cropped",
    "c2pa.resized": "Resized",
    "c2pa.converted": "Converted to another format",
    "c2pa.placed": "Placed another file into it",
    "c2pa.published": "Published",
    "c2pa.drawing": "Drew or erased with a brush",
    "c2pa.filtered": "Applied a filter or style",
    "c2pa.orientation": "Rotated or flipped",
    "c2pa.transcoded": "Re-encoded",
    "c2pa.repackaged": "Moved into another container without re-encoding",
    "c2pa.recompressed": "Recompressed",
    "c2pa.deleted": "Deleted part of the content",
    "c2pa.redacted": "Redacted part of the credentials",
    "c2pa.removed": "Removed an ingredient",
    "c2pa.enhanced": "Enhanced (for example noise reduction)",
    "c2pa.dubbed": "Dubbed (the sound track replaced)",
    "c2pa.translated": "Translated into another language",
    "c2pa.trimmed": "Trimmed (shortened)",
    "c2pa.changedSpeed": "Changed the playback speed",
    "c2pa.watermarked": "Watermarked",
    "c2pa.watermarked.bound": "Watermarked (a watermark tied to these credentials)",
    "c2pa.watermarked.unbound": "Watermarked",
    "c2pa.produced": "Produced",
    "c2pa.version_created": "Saved as a new version",
    "c2pa.unknown": "Changed in a way the software did not specify",
}


def action_words(code: str | None) -> str:
    """What a C2PA action says was done; a vendor's own action is named by its last part."""
    code = (code or "").strip()
    if code in ACTIONS:
        return ACTIONS[code]
    last = code.rsplit(".", 1)[-1] if code else ""
    return _split(last).capitalize() if last else "An unnamed action"


# --------------------------------------------------------------------------- digital source types

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_SOURCE_PREFIX = "http://c2pa.org/digitalsourcetype/"
# IPTC NewsCodes digital source types (cv.iptc.org/newscodes/digitalsourcetype/) and the C2PA's own two.
SOURCE_TYPES: dict[str, str] = {
    "digitalCapture": "captured by a camera or recorder (original digital capture)",
    "computationalCapture": "captured by a camera that processes what it records (computational capture)",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from a film positive (slide)",
    "print": "scanned from a print",
    "humanEdits": "a capture edited by a person",
    "minorHumanEdits": "a capture with minor edits by a person",
    "compositeCapture": "a composite of several captures",
    "algorithmicallyEnhanced": "a capture enhanced by software",
    "dataDrivenMedia": "made by software from data (data-driven media)",
    "digitalArt": "digital art made by a person",
    "digitalCreation": "digital art made by a person",
    "virtualRecording": "a recording of a virtual scene (e.g. a game)",
    "screenCapture": "a screenshot or screen recording",
    "composite": "a composite of several elements",
    "softwareImage": "made by software",
    "empty": "an empty canvas",
    "trainedAlgorithmicData": "data made by generative AI",
    # The AI terms, worded as ai_metadata declares them.
    "trainedAlgorithmicMedia": "made by generative AI (trained algorithmic media)",
    "compositeWithTrainedAlgorithmicMedia": "a composite that includes generative-AI elements",
    "algorithmicMedia": "made by an algorithm rather than captured (algorithmic media)",
    "compositeSynthetic": "a composite that includes synthetic elements",
}
AI_SOURCE_TERMS = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
                   "compositeSynthetic")
_TERM_RE = re.compile(r"digitalsourcetype/([A-Za-z]+)", re.I)


def source_type_term(value: str | None) -> str:
    """The bare term of a digital source type given as a URI or as the term itself."""
    text = (value or "").strip()
    match = _TERM_RE.search(text) if "/" in text else None
    term = match.group(1) if match else text.rsplit("/", 1)[-1]
    return next((known for known in SOURCE_TYPES if known.lower() == term.lower()), term)


def source_type_words(uri: str | None) -> str:
    """What a digital source type says about how the content was made."""
    term = source_type_term(uri)
    return SOURCE_TYPES.get(term) or (f"source type “{_split(term)}”" if term else "source type not given")


# --------------------------------------------------------------------------- ingredient relationships

RELATIONSHIPS: dict[str, str] = {
    "parentOf": "the file this one was made from",
    "componentOf": "a part placed into this file",
    "inputTo": "an input to the software that made this file",
}


def relationship_words(rel: str | None) -> str:
    return RELATIONSHIPS.get(rel or "", f"an ingredient ({_split(rel)})" if rel else "an ingredient")


# --------------------------------------------------------------------------- containers and codecs

# FFmpeg's demuxer names (what PyAV's container.format.name gives when reading), first match wins.
CONTAINERS: tuple[tuple[str, str], ...] = (
    ("mov,mp4,m4a,3gp,3g2,mj2", "MP4/QuickTime"),
    ("matroska,webm", "WebM/Matroska"),
    ("mp4", "MP4"), ("mov", "QuickTime (MOV)"), ("webm", "WebM"), ("matroska", "Matroska (MKV)"),
    ("avi", "AVI"), ("mpegts", "MPEG transport stream"), ("mpeg", "MPEG program stream"), ("flv", "Flash video (FLV)"),
    ("ogg", "Ogg"), ("asf", "Windows Media (ASF)"), ("gif", "GIF animation"), ("3gp", "3GP"),
    ("hls", "HLS stream"), ("dash", "MPEG-DASH stream"),
)
CODECS: dict[str, str] = {
    "h264": "H.264 (AVC)", "hevc": "H.265 (HEVC)", "h265": "H.265 (HEVC)", "vp8": "VP8", "vp9": "VP9",
    "av1": "AV1", "libdav1d": "AV1", "libaom-av1": "AV1", "mpeg4": "MPEG-4 Part 2", "mpeg2video": "MPEG-2",
    "mpeg1video": "MPEG-1", "mjpeg": "Motion JPEG", "prores": "Apple ProRes", "theora": "Theora",
    "h263": "H.263", "wmv1": "Windows Media Video 7", "wmv2": "Windows Media Video 8", "wmv3": "Windows Media Video 9",
    "msmpeg4v3": "Microsoft MPEG-4 v3", "gif": "GIF", "png": "PNG", "dnxhd": "Avid DNxHD", "ffv1": "FFV1",
    "aac": "AAC", "mp3": "MP3", "opus": "Opus", "vorbis": "Vorbis", "flac": "FLAC",
}


def container_words(name: str | None) -> str:
    """A container as people name it; an FFmpeg list of aliases becomes its first, upper-cased."""
    raw = (name or "").strip().lower()
    if not raw:
        return "unknown container"
    for known, words in CONTAINERS:
        if raw == known:
            return words
    aliases = raw.split(",")
    return next((words for alias in aliases for known, words in CONTAINERS if alias == known), aliases[0].upper())


def codec_words(name: str | None) -> str:
    raw = (name or "").strip().lower()
    return CODECS.get(raw) or (raw.upper() if raw and raw != "unknown" else "unknown codec")


# --------------------------------------------------------------------------- where a declaration was found

DECLARATION_SOURCES: dict[str, str] = {
    "c2pa": "Content Credentials",
    "iptc-xmp": "IPTC metadata (in XMP)",
    "png-text": "PNG text metadata",
    "exif": "EXIF metadata",
    "xmp": "XMP metadata",
    "watermark": "Invisible watermark",
}


def declaration_source_words(source: str | None) -> str:
    return DECLARATION_SOURCES.get(source or "", _split(source or "metadata"))


# --------------------------------------------------------------------------- the pipeline's own names

STAGES: dict[str, str] = {
    "fetch": "Fetching", "store": "Storage", "budget": "Limits", "sweep": "Clean-up", "media-type": "File type",
    "decode": "Decoding", "keyframes": "Keyframes", "c2pa": "Content Credentials", "ai-metadata": "AI metadata",
    "watermark": "Watermark", "hashes": "Hashes", "video-hashes": "Video hashes", "bank-match": "Known-fakes banks",
    "video-bank-match": "Known-fakes banks", "detect-gate": "Detection", "detect": "Detection",
}


def stage_words(stage: str | None) -> str:
    """The step that wrote a finding; a detector's own stage ("detect:name") is detection."""
    key = (stage or "").split(":", 1)[0]
    return STAGES.get(key, _split(key).capitalize() or "Analysis")


_ACTION_RE = re.compile(r"\b(c2pa(?:\.[A-Za-z_]+)+)")
_PLACE_RE = re.compile(r"^(?P<what>.*?) in (?P<where>the active manifest|ingredient '(?P<title>.*)'(?:, (?P<rel>\w+))?"
                       r"|manifest (?P<label>\S+))$", re.S)


def field_words(field: str | None) -> str:
    """Where in a file a declaration sits, in words: c2pa_read names Content Credentials fields as
    "<action> digitalSourceType in ingredient 'x.jpg', parentOf"; XMP ones by their property name."""
    text = (field or "").strip()
    match = _PLACE_RE.match(text)
    what, where = (match.group("what"), match) if match else (text, None)
    what = re.sub(r"\bXMP Iptc4xmpExt:DigitalSourceType\b", "the IPTC digital source type (XMP)", what)
    what = re.sub(r"^(\S+) digitalSourceType$",
                  lambda m: f"the digital source type of the “{action_words(m.group(1)).lower()}” step", what)
    what = re.sub(r"^(\S+) DigitalSourceType$", "the digital source type in its metadata", what)
    what = re.sub(r"^claim generator$", "the name of the software that wrote the credentials", what)
    what = re.sub(r"^(\S+) description$", lambda m: f"the description of the “{action_words(m.group(1)).lower()}” "
                  "step", what)
    what = re.sub(r"^(c2pa\.\S+) by (.+)$", lambda m: f"the software of the “{action_words(m.group(1)).lower()}” "
                  f"step ({m.group(2)})", what)
    what = _ACTION_RE.sub(lambda m: f"“{action_words(m.group(1)).lower()}”", what)
    what = re.sub(r"[dD]igitalSourceType", "digital source type", what)
    if where is None:
        return what
    if where.group("title") is not None:
        place = f"the credentials of ingredient '{where.group('title')}'"
        if where.group("rel"):
            place += f", {relationship_words(where.group('rel'))}"
    elif where.group("label"):
        place = "another manifest in the file"
    else:
        place = "this file's own credentials"
    return f"{what}, in {place}"


def _split(code: str | None) -> str:
    """"signingCredential.fooBar" -> "signing credential foo bar": a last resort that reads as words."""
    text = re.sub(r"[._\-/:]+", " ", code or "")
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return " ".join(text.lower().split())
