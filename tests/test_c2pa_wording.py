"""The one table from C2PA validation status codes to plain words and a category for the reader
(server/wording.py, shared by the worker's summaries, the desk and the PDF).

The code lists below are written out from the C2PA 2.x specification's standard status codes as
c2pa-rs defines them (sdk/src/validation_results.rs, ``validation_codes``), not read from the table.
"""
from __future__ import annotations

import re

import pytest

from server import wording as ex

SUCCESS = [
    "claimSignature.validated", "claimSignature.insideValidity", "signingCredential.trusted",
    "signingCredential.ocsp.notRevoked", "timeStamp.validated", "timeStamp.trusted", "assertion.hashedURI.match",
    "assertion.dataHash.match", "assertion.bmffHash.match", "assertion.boxesHash.match",
    "assertion.collectionHash.match", "assertion.accessible", "ingredient.manifest.validated",
    "ingredient.claimSignature.validated",
]
INFORMATIONAL = [
    "signingCredential.ocsp.skipped", "signingCredential.ocsp.inaccessible", "timeStamp.mismatch",
    "timeStamp.malformed", "timeStamp.outsideValidity", "timeStamp.untrusted", "manifest.unknownProvenance",
    "manifest.unreferenced", "algorithm.deprecated", "timeOfSigning.insideValidity", "ingredient.unknownProvenance",
    "assertion.dataHash.additionalExclusionsPresent",
]
FAILURE = [
    "claim.malformed", "claim.missing", "claim.multiple", "claim.hardBindings.missing",
    "assertion.multipleHardBindings", "claim.required.missing", "claim.cbor.invalid", "ingredient.hashedURI.mismatch",
    "claimSignature.missing", "claimSignature.mismatch", "manifest.inaccessible", "manifest.multipleParents",
    "manifest.update.invalid", "manifest.update.wrongParents", "signingCredential.untrusted",
    "signingCredential.invalid", "signingCredential.ocsp.revoked", "signingCredential.expired",
    "assertion.hashedURI.mismatch", "assertion.missing", "assertion.undeclared", "assertion.inaccessible",
    "assertion.notRedacted", "assertion.selfRedacted", "assertion.required.missing", "assertion.json.invalid",
    "assertion.cbor.invalid", "assertion.action.ingredientMismatch", "assertion.action.redacted",
    "assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
    "assertion.boxesHash.unknownBox", "assertion.cloud-data.hardBinding", "assertion.cloud-data.actions",
    "algorithm.unsupported", "general.error", "claimSignature.outsideValidity", "manifest.timestamp.invalid",
    "manifest.timestamp.wrongParents", "manifest.compressed.invalid", "signingCredential.ocsp.unknown",
    "assertion.outsideManifest", "assertion.action.malformed", "assertion.action.redactionMismatch",
    "assertion.dataHash.malformed", "assertion.dataHash.redacted", "assertion.bmffHash.malformed",
    "assertion.boxesHash.malformed", "assertion.cloud-data.malformed", "assertion.collectionHash.mismatch",
    "assertion.collectionHash.incorrectFileCount", "assertion.collectionHash.invalidURI",
    "assertion.collectionHash.malformed", "assertion.ingredient.malformed", "assertion.metadata.disallowed",
    "ingredient.manifest.missing", "ingredient.manifest.mismatch", "ingredient.claimSignature.missing",
    "ingredient.claimSignature.mismatch", "hashedURI.missing", "hashedURI.mismatch", "assertion.timestamp.malformed",
]
CATEGORIES = {"content-changed", "credentials-changed", "signature-invalid", "certificate-expired",
              "certificate-purpose", "certificate-revoked", "untrusted-signer", "structural-defect", "time-stamp",
              "ingredient", "not-checked", "passed", "note"}

# The codes a reader acts on, with their words and category written out.
KEY = {
    ("assertion.dataHash.mismatch", "image/jpeg"):
        ("the pixels were changed after signing (or the file was cut short)", "content-changed"),
    ("assertion.bmffHash.mismatch", "video/mp4"): ("the video or its sound was changed after signing", "content-changed"),
    ("assertion.dataHash.mismatch", "audio/mpeg"):
        ("the sound was changed after signing (or the file was cut short)", "content-changed"),
    ("claimSignature.mismatch", None):
        ("the credentials were altered after they were signed: the signature no longer matches", "signature-invalid"),
    ("signingCredential.expired", None):
        ("the signing certificate was outside its validity period (expired), and no trusted time-stamp shows the "
         "file was signed while it was valid", "certificate-expired"),
    ("signingCredential.untrusted", None):
        ("the signer's certificate does not chain to an anchor on your trust list", "untrusted-signer"),
    ("signingCredential.ocsp.revoked", None): ("the signing certificate was revoked by its issuer", "certificate-revoked"),
    ("assertion.hashedURI.mismatch", None):
        ("part of the credentials (an assertion such as the edit history) was changed after signing",
         "credentials-changed"),
    ("claim.hardBindings.missing", None):
        ("the credentials are not bound to this file's content", "structural-defect"),
    ("ingredient.manifest.mismatch", None): ("an ingredient's credentials were changed after signing", "ingredient"),
}


def test_the_table_holds_every_code_of_the_specification_with_its_kind() -> None:
    for kind, codes in (("success", SUCCESS), ("informational", INFORMATIONAL), ("failure", FAILURE)):
        for code in codes:
            assert code in ex.CODES, code
            assert ex.CODES[code].kind == kind, code


@pytest.mark.parametrize("code", FAILURE)
def test_every_failure_code_has_its_own_words_and_a_category(code: str) -> None:
    words = ex.explain(code, "LIBRARY FALLBACK", "image/jpeg")
    assert words and words != "LIBRARY FALLBACK" and "{what}" not in words
    assert ex.category(code) in CATEGORIES - {"passed", "note"}


def test_no_failure_but_a_content_mismatch_says_the_content_changed() -> None:
    changed = {c for c in FAILURE if ex.category(c) == "content-changed"}
    assert changed == {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch", "assertion.boxesHash.mismatch",
                       "assertion.collectionHash.mismatch", "assertion.collectionHash.incorrectFileCount"}
    for code in FAILURE:
        if code not in changed:
            assert "pixels" not in ex.explain(code, "", "image/jpeg"), code


def test_purpose_and_certificate_codes_never_speak_of_pixels() -> None:
    assert ex.category("signingCredential.invalid") == "certificate-purpose"
    assert ex.explain("signingCredential.invalid").startswith("certificate purpose not allowed")
    for code in ("signingCredential.invalid", "signingCredential.expired", "signingCredential.untrusted"):
        assert "changed" not in ex.explain(code, "", "image/jpeg")


@pytest.mark.parametrize(("code", "mime"), sorted(KEY, key=str))
def test_key_codes_have_exactly_these_words(code: str, mime: str | None) -> None:
    words, category = KEY[(code, mime)]
    assert ex.explain(code, "", mime) == words
    assert ex.category(code) == category


def test_success_and_informational_codes_are_never_failures() -> None:
    for code in SUCCESS:
        assert ex.category(code) == "passed", code
    for code in INFORMATIONAL:
        assert ex.category(code) in {"note", "time-stamp"}, code


def test_an_unknown_code_falls_back_to_the_librarys_words() -> None:
    assert ex.explain("vendor.newThing", "the library says so") == "the library says so"
    assert ex.explain("vendor.newThing") == "validation failed (vendor.newThing)"
    assert ex.category("vendor.newThing") == "not-checked"


# ---------------------------------------------------------------------------- the rest of the vocabulary

ACTIONS = {
    "c2pa.created": "Created",
    "c2pa.opened": "Opened an existing file to work on",
    "c2pa.edited": "Edited",
    "c2pa.color_adjustments": "Adjusted colour or tone",
    "c2pa.cropped": "Cropped",
    "c2pa.resized": "Resized",
    "c2pa.converted": "Converted to another format",
    "c2pa.placed": "Placed another file into it",
    "c2pa.published": "Published",
    "c2pa.transcoded": "Re-encoded",
    "c2pa.orientation": "Rotated or flipped",
    "c2pa.unknown": "Changed in a way the software did not specify",
    # Not in the specification: named by its own last part, never shown raw.
    "com.example.removeBackground": "Remove background",
    "": "An unnamed action",
}
SOURCES = {
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia":
        "made by generative AI (trained algorithmic media)",
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia":
        "a composite that includes generative-AI elements",
    "https://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture":
        "captured by a camera or recorder (original digital capture)",
    "digitalcapture": "captured by a camera or recorder (original digital capture)",
    "http://cv.iptc.org/newscodes/digitalsourcetype/screenCapture": "a screenshot or screen recording",
    "http://c2pa.org/digitalsourcetype/empty": "an empty canvas",
    "http://cv.iptc.org/newscodes/digitalsourcetype/someNewTerm": "source type “some new term”",
    None: "source type not given",
}
RELATIONSHIPS = {
    "parentOf": "the file this one was made from",
    "componentOf": "a part placed into this file",
    "inputTo": "an input to the software that made this file",
    "siblingOf": "an ingredient (sibling of)",
    None: "an ingredient",
}
CONTAINERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/QuickTime",
    "matroska,webm": "WebM/Matroska",
    "webm": "WebM",
    "avi": "AVI",
    "mpegts": "MPEG transport stream",
    "nut,other": "NUT",
    "": "unknown container",
}
CODECS = {"h264": "H.264 (AVC)", "hevc": "H.265 (HEVC)", "vp9": "VP9", "av1": "AV1", "weird": "WEIRD",
          "unknown": "unknown codec", None: "unknown codec"}
FIELDS = {
    "c2pa.created digitalSourceType in ingredient 'image.webp', parentOf":
        "the digital source type of the “created” step, in the credentials of ingredient 'image.webp', "
        "the file this one was made from",
    "c2pa.created digitalSourceType in the active manifest":
        "the digital source type of the “created” step, in this file's own credentials",
    "c2pa.edited by Adobe Firefly 3 in the active manifest":
        "the software of the “edited” step (Adobe Firefly 3), in this file's own credentials",
    "c2pa.placed description in manifest urn:c2pa:1234":
        "the description of the “placed another file into it” step, in another manifest in the file",
    "claim generator in the active manifest":
        "the name of the software that wrote the credentials, in this file's own credentials",
    "XMP Iptc4xmpExt:DigitalSourceType": "the IPTC digital source type (XMP)",
    'PNG text "parameters"': 'PNG text "parameters"',
}
RAW = re.compile(r"c2pa\.|digitalSourceType|parentOf|componentOf|inputTo|cv\.iptc\.org|\b[a-z]+[A-Z]\w*\.[a-z]")


@pytest.mark.parametrize(("table", "words"), [
    (ACTIONS, ex.action_words), (SOURCES, ex.source_type_words), (RELATIONSHIPS, ex.relationship_words),
    (CONTAINERS, ex.container_words), (CODECS, ex.codec_words), (FIELDS, ex.field_words),
], ids=["actions", "source types", "relationships", "containers", "codecs", "declaration fields"])
def test_each_vocabulary_has_exactly_these_words(table: dict, words) -> None:
    for code, expected in table.items():
        assert words(code) == expected, code
        assert not RAW.search(words(code)), code


def test_every_known_code_reads_as_words() -> None:
    for table, words in ((ex.ACTIONS, ex.action_words), (ex.SOURCE_TYPES, ex.source_type_words),
                         (ex.RELATIONSHIPS, ex.relationship_words)):
        for code in table:
            assert not RAW.search(words(code)), code
    for code in ex.CODES:
        assert code not in ex.validation_words(code, "image/jpeg"), code


def test_validation_words_never_show_the_code() -> None:
    assert ex.validation_words("signingCredential.untrusted") == (
        "the signer's certificate does not chain to an anchor on your trust list")
    assert ex.validation_words("vendor.newThing") == "a check the verifier names “vendor new thing” failed"
    assert ex.validation_words("vendor.newThing", None, "the library says so") == "the library says so"


def test_validation_states_say_what_valid_means() -> None:
    assert ex.state_words("Trusted") == "intact, and the signer is on your trust list"
    assert ex.state_words("Valid") == "intact, but the signer is not on your trust list"
    assert ex.state_words("Invalid") == "the credentials or the content no longer match their signature"
    assert ex.state_words("Trusted", refused=True) == (
        "intact for the library, but the signing certificate may not sign content (see below)")
    assert ex.state_words("Trusted", unchecked=True).startswith("intact for the library, but the signing certificate "
                                                                 "could not be read")
    assert ex.state_words("Invalid", refused=True) == "the credentials or the content no longer match their signature"
    assert ex.ingredient_state_words("untrusted") == "credentials intact, signer not on your trust list"
    # An untrusted signer is something not confirmed, never a failed check.
    assert ex.category("signingCredential.untrusted") in ex.UNCONFIRMED
    assert ex.category("assertion.dataHash.mismatch") not in ex.UNCONFIRMED


def test_a_code_reported_for_two_manifests_is_listed_once() -> None:
    """c2pa-rs names an untrusted signer once per manifest it signed (the file's and its parent's): one entry."""
    from worker.stages import c2pa_explain
    from worker.stages.c2pa_read import C2paResult, Status

    file_url = "self#jumbf=/c2pa/urn:c2pa:aaaa/c2pa.signature"
    parent_url = "self#jumbf=/c2pa/urn:c2pa:bbbb/c2pa.signature"
    result = C2paResult(status="present", state="Valid", mime="image/jpeg", failures=[
        Status("signingCredential.untrusted", file_url, "signing certificate untrusted"),
        Status("signingCredential.untrusted", parent_url, "signing certificate untrusted")])
    [item] = c2pa_explain.evidence(result, trust={"loaded": True})
    assert item.details["failures"] == [{
        "code": "signingCredential.untrusted", "category": "untrusted-signer", "urls": [file_url, parent_url],
        "words": "the signer's certificate does not chain to an anchor on your trust list"}]
    assert item.summary == ("Signed by an unknown signer, not on your trust list. "
                            "The content is unchanged since signing.")
