"""Issue 14: verdicts exactly as strong as their evidence, on files signed for real with c2pa-python.

Trusted capture outranks (and skips) detection; a detector earns likely-synthetic only with a validation
record; Microsoft's C2PA signing EKU is a content signer; and each way credentials fail has its own words:
an expired certificate, a purpose not allowed, a data-hash exclusion that misses the manifest (a writer's
structural defect) and a real pixel change.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import c2pa
import pytest
from cryptography.x509 import ObjectIdentifier

from server.detection import manifest as mf
from server.config import Settings
from server.verdicts import Level, Verdict, fuse
from tests.c2pa_kit import SigningCA, claim_and_signature, make_ca, sign
from tests.helpers import ROOT, make_jpeg
from worker.detection import gate as detection
from worker.detection.detectors.runtime import Result
from worker.pipeline.runner import analyze
from worker.stages import c2pa_read
from worker.stages.c2pa_signer import MICROSOFT_C2PA_SIGNING

MODELS = ROOT / "models"
AI_INTENT = (c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
PIXELS_CHANGED = "the pixels were changed"
STRUCTURE = ("the file's structure does not match its credentials (often a defect of the software that wrote "
             "them); the pixels may be unchanged")


class Files:
    """One CA whose root is the operator's anchor, and files signed once for the module."""

    def __init__(self, folder: Path) -> None:
        self.ca: SigningCA = make_ca("Verdict Evidence")
        self.folder = folder
        self.root_file = folder / "root.pem"
        self.root_file.write_bytes(self.ca.root_pem)
        self.photo = make_jpeg(320, 240, seed=21)
        self.camera = self.ca.leaf("Camera 3", "Acme Photo")
        self.capture, self.capture_store = sign(self.photo, self.camera)

    def settings(self, *, trusted: bool = True, **overrides: object) -> Settings:
        values: dict[str, object] = {"data_dir": self.folder / "data", "models_dir": str(MODELS),
                                     "trust_user_anchors_path": str(self.root_file) if trusted else ""}
        values.update(overrides)
        return Settings(**values)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("verdict-evidence"))


def c2pa_item(verdict: Verdict) -> dict:
    [item] = [e for e in verdict.evidence if e.stage == "c2pa" and e.kind.startswith("c2pa-")]
    return item.model_dump(mode="json")


def validated(threshold: float = 0.7) -> mf.Entry:
    record = {"method": "leave-source-out", "roc_auc": 0.9, "threshold": threshold, "fpr_at_threshold": 0.006,
              "reals": 500, "real_sources": ["a", "b", "c"], "held_out_sources": ["a", "b", "c", "d"],
              "date": "2026-12-01"}
    return mf.Entry(name="good", architecture="credence-baseline", file="f", sha256="b" * 64, licence="l",
                    calibration={"threshold": threshold, "max_fpr": 0.01}, validation=record)


# ---------------------------------------------------------------- fusion: credentials before detectors


def test_trusted_capture_skips_detection_and_stays_verified_over_any_score(files: Files) -> None:
    verdict = analyze(files.capture, files.settings()).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary
    [skip] = [e for e in verdict.evidence if e.stage == "detect"]
    assert skip.kind == "detection-skipped" and skip.details["reason"] == "trusted-capture"
    assert skip.summary.startswith("Detection was skipped: trusted Content Credentials signed by Acme Photo record "
                                   "this image as captured by a camera or recorder (original digital capture), "
                                   "unchanged since signing")
    assert skip.details["digital_source_type"] == "digitalCapture"  # the code stays in the details
    assert verdict.versions["detect"] == "skipped" and "detectors" not in verdict.versions  # never pending
    # Even a detector that meets the bar and scores it high cannot outrank trusted credentials.
    high = detection.evidence_for(Result("good", "image", score=0.99), validated(), None, 1)
    assert high.supports == Level.LIKELY_SYNTHETIC
    assert fuse([*verdict.evidence, high], sha256=None, versions={}).level == Level.VERIFIED


def test_an_untrusted_capture_is_not_skipped_and_a_validated_score_outranks_it(files: Files) -> None:
    verdict = analyze(files.capture, files.settings(trusted=False)).verdict
    assert verdict.level == Level.SIGNED_UNTRUSTED
    assert verdict.versions["detect"] == "pending"  # an untrusted signer's word does not skip detection
    good = detection.evidence_for(Result("good", "image", score=0.95), validated(), None, 1)
    assert fuse([*verdict.evidence, good], sha256=None, versions={}).level == Level.LIKELY_SYNTHETIC
    baseline = {e.name: e for e in mf.read_manifest(MODELS)}["baseline"]  # the committed one: no record
    weak = detection.evidence_for(Result("baseline", "image", score=0.95), baseline, None, 1)
    assert weak.details["band"] == "experimental"
    assert fuse([*verdict.evidence, weak], sha256=None, versions={}).level == Level.SIGNED_UNTRUSTED


def test_a_trusted_edit_is_not_a_capture_and_still_goes_to_detection(files: Files) -> None:
    edit = {"title": "edited.jpg", "claim_generator_info": [{"name": "PhotoDesk", "version": "9"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType":
                 "http://cv.iptc.org/newscodes/digitalsourcetype/digitalArt"}]}}]}
    data, _ = sign(files.photo, files.camera, edit)
    verdict = analyze(data, files.settings()).verdict
    assert verdict.level == Level.VERIFIED and verdict.versions["detect"] == "pending"


# ---------------------------------------------------------------- certificate purposes


def test_microsofts_c2pa_signing_eku_is_a_content_signer_and_its_ai_declaration_shows(files: Files) -> None:
    leaf = files.ca.leaf("Designer", "Microsoft Corporation", eku=[ObjectIdentifier(MICROSOFT_C2PA_SIGNING)])
    data, _ = sign(make_jpeg(320, 240, seed=22), leaf,
                   {"title": "designer.jpg", "claim_generator_info": [{"name": "Designer", "version": "1"}]},
                   intent=AI_INTENT)
    verdict = analyze(data, files.settings()).verdict
    assert verdict.level == Level.AI_DECLARED, verdict.summary
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-trusted" and item["details"]["content_signer"] is True
    assert item["details"]["signer"]["certificate"]["eku_names"] == ["Microsoft C2PA signing"]
    assert MICROSOFT_C2PA_SIGNING in item["details"]["trust"]["content_signer_ekus"]
    # Without the OID in the settings, it is a credentials problem in exactly those words.
    strict = analyze(data, files.settings(trust_ekus="1.3.6.1.5.5.7.3.4,1.3.6.1.5.5.7.3.36")).verdict
    assert strict.level == Level.TAMPERED
    assert strict.summary.startswith("Content Credentials broken: certificate purpose not allowed: the signing "
                                     "certificate's purpose (Microsoft C2PA signing) is not one your settings allow")
    assert "pixels" not in strict.summary and "changed" not in strict.summary
    assert c2pa_item(strict)["details"]["category"] == "certificate-purpose"


# ---------------------------------------------------------------- each failure has its own words


def test_a_real_pixel_change_says_the_pixels_changed(files: Files) -> None:
    scan = files.capture.rfind(b"\xff\xda") + 400
    while files.capture[scan] in (0x00, 0xFE, 0xFF) or files.capture[scan - 1] == 0xFF:
        scan += 1
    changed = bytearray(files.capture)
    changed[scan] ^= 0x01
    verdict = analyze(bytes(changed), files.settings()).verdict
    assert verdict.level == Level.TAMPERED
    assert "Content Credentials broken: the pixels were changed after signing" in verdict.summary
    item = c2pa_item(verdict)
    assert item["details"]["category"] == "content-changed" and "binding" not in item["details"]


def test_a_data_hash_exclusion_that_misses_the_manifest_is_a_structural_defect(files: Files) -> None:
    span = c2pa_read.jpeg_manifest_span(files.capture)
    assert span is not None
    # An application segment inserted before the manifest: the pixels are the same bytes, but the
    # manifest now sits 64 bytes after where its data-hash exclusion says it is.
    segment = b"\xff\xef\x00\x42" + b"x" * 0x40
    shifted = files.capture[:span[0]] + segment + files.capture[span[0]:]
    verdict = analyze(shifted, files.settings()).verdict
    assert verdict.level == Level.TAMPERED
    assert verdict.summary.startswith(f"Content Credentials broken: {STRUCTURE}.")
    assert PIXELS_CHANGED not in verdict.summary
    details = c2pa_item(verdict)["details"]
    assert details["category"] == "structural-defect"
    assert details["binding"]["manifest_at"] == [span[0] + 68, span[1] + 68]
    assert [e[0] for e in details["binding"]["exclusions"]] == [span[0]]
    assert {f["code"] for f in details["failures"]} == {"assertion.dataHash.mismatch"}


def test_an_expired_certificate_with_a_broken_signature_is_not_called_harmless(files: Files) -> None:
    expires = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=2)
    old = files.ca.leaf("Old Camera", "Acme Photo", not_after=expires)
    data, store = sign(files.photo, old)
    _, cose = claim_and_signature(store)
    broken = bytearray(cose)
    broken[-1] ^= 0x01   # the last byte of the signature value
    bad = data.replace(cose, bytes(broken))
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds() + 1.2))
    plain = analyze(data, files.settings()).verdict
    assert plain.level == Level.SIGNED_UNTRUSTED and "not a sign of tampering" in plain.summary
    assert c2pa_item(plain)["details"]["category"] == "certificate-expired"
    verdict = analyze(bad, files.settings()).verdict
    codes = {f["code"] for f in c2pa_item(verdict)["details"]["failures"]}
    assert {"claimSignature.mismatch", "signingCredential.expired"} <= codes
    assert verdict.level == Level.TAMPERED
    assert "not a sign of tampering" not in verdict.summary
    assert "the signature no longer matches" in verdict.summary
    assert c2pa_item(verdict)["details"]["category"] == "signature-invalid"


def test_covers_and_the_jpeg_walk_on_hand_made_input() -> None:
    assert c2pa_read.covers([(10, 5), (15, 5)], (10, 20)) and not c2pa_read.covers([(10, 5)], (10, 20))
    assert not c2pa_read.covers([(12, 10)], (10, 20)) and c2pa_read.covers([(0, 100)], (10, 20))
    assert c2pa_read.jpeg_manifest_span(b"not a jpeg") is None
    assert c2pa_read.jpeg_manifest_span(b"\xff\xd8\xff\xeb\xff\xff") is None  # a length past the end
    app11 = b"\xff\xeb\x00\x06JP\x00\x01"
    assert c2pa_read.jpeg_manifest_span(b"\xff\xd8" + app11 + b"\xff\xda\x00\x02") == (2, 10)
