"""The one table from C2PA validation status codes to plain words and a category for the reader.

The code lists below are written out from the C2PA 2.x specification's standard status codes as
c2pa-rs defines them (sdk/src/validation_results.rs, ``validation_codes``), not read from the table.
"""
from __future__ import annotations

import pytest

from worker.stages import c2pa_explain as ex

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
