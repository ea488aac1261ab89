"""Our own check of the signing certificate (worker.stages.c2pa_signer) and what the verdict makes of it.

c2pa-python 0.38.1 lets a time-stamping (or OCSP) certificate sign content and calls it Trusted;
these tests hold the signer to the C2PA profile ourselves. Files are signed for real with the test
CA; certificates the library's Builder refuses to sign with (no EKU, a CA certificate) are written
into a signed file by ``c2pa_kit.resign``, which signs the same claim again in place. The parsers
read hostile bytes, so the second half feeds them broken, oversized and nested input.
"""
from __future__ import annotations

import io
import os
import random
import struct
import time
from datetime import datetime, timezone
from pathlib import Path

import c2pa
import cbor2
from cbor2 import CBORTag
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID

from server.config import Settings
from server.verdicts import Level, Verdict
from tests.c2pa_kit import (DOCUMENT_SIGNING, TIME_STAMPING, Leaf, SigningCA, capture_manifest,
                            claim_and_signature, make_ca, resign, sign)
from tests.helpers import make_jpeg
from worker.pipeline.runner import analyze
from worker.stages import c2pa_explain, c2pa_read, c2pa_signer
from worker.stages.c2pa_signer import SignerCertificate, SignerReadError, cbor_loads, judge, x5chain
from worker.trust import reading_context

CLAIM_SIGNING = "1.3.6.1.4.1.62558.2.1"
EMAIL = ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string
DEFAULT_ALLOWED = c2pa_signer.content_signing_ekus(
    str(Settings.model_fields["trust_ekus"].default).split(","))


class Signed:
    """One CA, its root as the operator's anchor, and files signed once for the module."""

    def __init__(self, folder: Path) -> None:
        self.ca: SigningCA = make_ca("Signer Check")
        self.folder = folder
        self.root_file = folder / "root.pem"
        self.root_file.write_bytes(self.ca.root_pem)
        self.photo = make_jpeg(320, 240, seed=11)
        self.camera = self.ca.leaf("Camera 9", "Acme Photo")
        self.base, self.store = sign(self.photo, self.camera)

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {"data_dir": self.folder / "data", "trust_user_anchors_path": str(self.root_file)}
        values.update(overrides)
        return Settings(**values)

    def resigned(self, leaf: Leaf) -> bytes:
        return resign(self.base, self.store, leaf)

    def state(self, data: bytes) -> tuple[str | None, list[str]]:
        """What the library alone says of ``data``: its state and failure codes."""
        result = c2pa_read.read_c2pa(data, "image/jpeg", reading_context(self.settings())[0], want_thumbnails=False)
        return result.state, [f.code for f in result.failures]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return Signed(tmp_path_factory.mktemp("signer"))


def c2pa_item(verdict: Verdict) -> dict:
    [item] = [e for e in verdict.evidence if e.stage == "c2pa" and e.kind.startswith("c2pa-")]
    return item.model_dump(mode="json")


def no_stage_error(verdict: Verdict) -> bool:
    return not [e for e in verdict.evidence if e.kind == "stage-error"]


# --------------------------------------------------------------------------- through the whole ruleset

@pytest.mark.parametrize("ed25519_key", [False, True], ids=["es256", "ed25519"])
def test_a_normal_signer_is_still_verified_with_its_ekus_on_record(signed: Signed, ed25519_key: bool) -> None:
    leaf = signed.ca.leaf("Desk", "Daily Planet", ed25519_key=ed25519_key)
    data, _ = sign(signed.photo, leaf)
    verdict = analyze(data, signed.settings()).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary
    details = c2pa_item(verdict)["details"]
    assert details["signer"]["algorithm"] == ("Ed25519" if ed25519_key else "Es256")
    cert = details["signer"]["certificate"]
    assert cert["ekus"] == [EMAIL] and cert["eku_names"] == ["emailProtection"]
    assert cert["ca"] is False and cert["key_cert_sign"] is False and cert["chain"] == 2
    assert len(cert["sha256"]) == 64 and details["content_signer"] is True
    assert details["trust"]["content_signer_ekus"] == sorted(DEFAULT_ALLOWED)


@pytest.mark.parametrize("eku", [DOCUMENT_SIGNING, ObjectIdentifier(CLAIM_SIGNING)],
                         ids=["documentSigning", "c2pa-claim-signing"])
def test_the_other_content_ekus_are_verified(signed: Signed, eku: object) -> None:
    data, _ = sign(signed.photo, signed.ca.leaf("Wire", "Wire Service", eku=[eku]))
    assert analyze(data, signed.settings()).verdict.level == Level.VERIFIED


def test_resigning_in_place_makes_a_valid_signature(signed: Signed) -> None:
    """The helper the next tests rest on: a new key and certificate, and the library still says Trusted,
    so what they show is about the certificate, not a broken signature."""
    for ed in (False, True):
        again = signed.resigned(signed.ca.leaf("Other Camera", "Acme Photo", ed25519_key=ed))
        assert len(again) == len(signed.base) and again != signed.base
        assert signed.state(again) == ("Trusted", [])
        assert analyze(again, signed.settings()).verdict.level == Level.VERIFIED


@pytest.mark.parametrize("ed25519_key", [False, True], ids=["es256", "ed25519"])
def test_a_time_stamping_only_leaf_is_refused(signed: Signed, ed25519_key: bool) -> None:
    leaf = signed.ca.leaf("Stamp Unit", "Some TSA", ed25519_key=ed25519_key, eku=[TIME_STAMPING])
    data = signed.resigned(leaf)
    assert signed.state(data) == ("Trusted", [])          # the library's gap
    verdict = analyze(data, signed.settings()).verdict
    assert verdict.level == Level.TAMPERED, verdict.summary
    assert "signed with a certificate not meant for signing content (time-stamping only)" in verdict.summary
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-invalid" and item["details"]["content_signer"] is False
    assert item["details"]["signer"]["certificate"]["ekus"] == [c2pa_signer.TIME_STAMPING]


def test_an_ocsp_signing_only_leaf_is_refused(signed: Signed) -> None:
    data = signed.resigned(signed.ca.leaf("Responder", "Some CA", eku=[ExtendedKeyUsageOID.OCSP_SIGNING]))
    assert signed.state(data) == ("Trusted", [])
    verdict = analyze(data, signed.settings()).verdict
    assert verdict.level == Level.TAMPERED
    assert "not meant for signing content (signing certificate status (OCSP) responses only)" in verdict.summary


def test_timestamping_in_trust_ekus_never_makes_a_content_signer(signed: Signed) -> None:
    """Even an operator list of TSA purposes only lets no certificate sign content."""
    data = signed.resigned(signed.ca.leaf("Stamp Unit", "Some TSA", eku=[TIME_STAMPING]))
    verdict = analyze(data, signed.settings(trust_ekus="1.3.6.1.5.5.7.3.8,1.3.6.1.5.5.7.3.9")).verdict
    assert verdict.level == Level.TAMPERED
    assert c2pa_item(verdict)["details"]["trust"]["content_signer_ekus"] == []


def test_a_leaf_without_any_eku(signed: Signed) -> None:
    """The library already refuses it (signingCredential.invalid); our check agrees and records why."""
    data = signed.resigned(signed.ca.leaf("Bare", "Acme Photo", eku=[]))
    state, codes = signed.state(data)
    assert state == "Invalid" and "signingCredential.invalid" in codes
    verdict = analyze(data, signed.settings()).verdict
    assert verdict.level == Level.TAMPERED and no_stage_error(verdict)
    details = c2pa_item(verdict)["details"]
    assert details["signer"]["certificate"]["ekus"] == []
    result = c2pa_read.read_c2pa(data, "image/jpeg", reading_context(signed.settings())[0], want_thumbnails=False)
    assert result.active is not None and result.active.signer.certificate is not None
    problem = judge(result.active.signer.certificate, DEFAULT_ALLOWED)
    assert problem is not None and problem.reason == "no-purpose"


def test_a_ca_certificate_used_as_the_signer(signed: Signed) -> None:
    data = signed.resigned(signed.ca.leaf("Rogue CA", "Acme Photo", ca=True))
    state, codes = signed.state(data)
    assert state == "Invalid" and "signingCredential.invalid" in codes    # the library refuses it too
    verdict = analyze(data, signed.settings()).verdict
    assert verdict.level == Level.TAMPERED and no_stage_error(verdict)
    cert = c2pa_item(verdict)["details"]["signer"]["certificate"]
    assert cert["ca"] is True and cert["key_cert_sign"] is True and cert["ekus"] == [EMAIL]


def test_an_unanchored_time_stamping_leaf_is_refused_not_merely_untrusted(signed: Signed, tmp_path: Path) -> None:
    data = signed.resigned(signed.ca.leaf("Stamp Unit", "Some TSA", eku=[TIME_STAMPING]))
    verdict = analyze(data, Settings(data_dir=tmp_path)).verdict
    assert c2pa_item(verdict)["details"]["state"] == "Valid"
    assert verdict.level == Level.TAMPERED


def test_an_ingredient_signed_by_a_time_stamping_leaf_is_shown_invalid(signed: Signed) -> None:
    parent = signed.resigned(signed.ca.leaf("Stamp Unit", "Some TSA", eku=[TIME_STAMPING]))
    child, _ = sign(make_jpeg(320, 240, seed=12), signed.camera, capture_manifest("edit.jpg"),
                    ingredients=(({"title": "parent.jpg", "relationship": "parentOf"}, "image/jpeg", parent),))
    verdict = analyze(child, signed.settings()).verdict
    details = c2pa_item(verdict)["details"]
    assert verdict.level == Level.VERIFIED   # the active manifest's signer is fine
    [node] = details["ingredients"]
    assert node["validation"] == "invalid"
    assert node["failures"][-1] == {"code": "signingCredential.invalid", "by": "credence",
                                    "category": "certificate-purpose",
                                    "words": "certificate purpose not allowed: signed with a certificate not meant "
                                             "for signing content (time-stamping only)"}


# --------------------------------------------------------------------------- the rules themselves

def _cert(**kw: object) -> SignerCertificate:
    return SignerCertificate(sha256="0" * 64, **kw)  # type: ignore[arg-type]


def test_judge_follows_the_content_signer_profile() -> None:
    assert judge(_cert(ekus=[EMAIL]), DEFAULT_ALLOWED) is None
    assert judge(_cert(ekus=["1.3.6.1.5.5.7.3.36"]), DEFAULT_ALLOWED) is None
    assert judge(_cert(ekus=[CLAIM_SIGNING]), DEFAULT_ALLOWED) is None
    assert judge(_cert(ekus=[TIME_STAMPING.dotted_string], eku_names=["timeStamping"]),
                 DEFAULT_ALLOWED).reason == "purpose"  # type: ignore[union-attr]
    assert judge(_cert(ekus=[]), DEFAULT_ALLOWED).reason == "no-purpose"  # type: ignore[union-attr]
    assert judge(_cert(ekus=[EMAIL], ca=True), DEFAULT_ALLOWED).reason == "ca"  # type: ignore[union-attr]
    assert judge(_cert(ekus=[EMAIL], key_cert_sign=True), DEFAULT_ALLOWED).reason == "ca"  # type: ignore[union-attr]
    # Only the operator's list counts: without emailProtection on it, an S/MIME certificate is refused.
    assert judge(_cert(ekus=[EMAIL]), frozenset({CLAIM_SIGNING})) is not None
    # TSA and OCSP purposes never make a content signer, whatever the configuration lists.
    assert c2pa_signer.content_signing_ekus(["1.3.6.1.5.5.7.3.8", " 1.3.6.1.5.5.7.3.9 ", EMAIL, ""]) == {EMAIL}
    # The default: the C2PA specification's three content-signer EKUs and Microsoft's C2PA signing OID.
    assert DEFAULT_ALLOWED == {EMAIL, "1.3.6.1.5.5.7.3.36", CLAIM_SIGNING, "1.3.6.1.4.1.311.76.59.1.9"}
    assert judge(_cert(ekus=["1.3.6.1.4.1.311.76.59.1.9"]), DEFAULT_ALLOWED) is None
    refused = judge(_cert(ekus=["1.3.6.1.5.5.7.3.2"]), DEFAULT_ALLOWED)  # clientAuth only
    assert refused is not None and refused.words == ("certificate purpose not allowed: the signing certificate's "
                                                     "purpose (clientAuth) is not one your settings allow for "
                                                     "signing content")


def test_an_unreadable_certificate_is_never_shown_as_verified(signed: Signed) -> None:
    result = c2pa_read.read_c2pa(signed.base, "image/jpeg", reading_context(signed.settings())[0],
                                 want_thumbnails=False)
    assert result.state == "Trusted" and result.active is not None
    [item] = c2pa_explain.evidence(result)
    assert item.kind == "c2pa-trusted"
    result.active.signer.certificate = None
    result.active.signer.certificate_error = "the manifest store could not be read (test)"
    [item] = c2pa_explain.evidence(result)
    assert item.kind == "c2pa-signer-unchecked" and item.supports == Level.SIGNED_UNTRUSTED
    assert "could not be read to check it is meant for signing content" in item.summary
    assert item.details["content_signer"] is None


# --------------------------------------------------------------------------- hostile bytes

@pytest.mark.parametrize("hex_, value", [
    ("00", 0), ("17", 23), ("1818", 24), ("1a000f4240", 1000000), ("20", -1), ("3903e7", -1000),
    ("4401020304", b"\x01\x02\x03\x04"), ("6449455446", "IETF"), ("83018202039f0405ff", [1, [2, 3], [4, 5]]),
    ("a201020304", {1: 2, 3: 4}), ("5f42010243030405ff", b"\x01\x02\x03\x04\x05"), ("f93e00", 1.5),
    ("f4", False), ("f5", True), ("f6", None), ("c11a514b67b0", datetime(2013, 3, 21, 20, 4, tzinfo=timezone.utc)),
    ("d903e81a514b67b0", CBORTag(1000, 1363896240)),
])
def test_cbor_decodes_the_rfc_8949_examples(hex_: str, value: object) -> None:
    assert cbor_loads(bytes.fromhex(hex_)) == value


@pytest.mark.parametrize("data", [
    b"", b"\x18", b"\x44\x01", b"\x5b" + b"\xff" * 8, b"\x9b" + b"\xff" * 8, b"\xbb" + b"\x7f" * 8,
    b"\x81" * 5000 + b"\x00", b"\x9f" * 5000, b"\x00\x00", b"\xff", b"\x1c",
    b"\x62\xff\xfe", b"\x5f\x61\x61\xff",
    b"\xd8\x12" * 3000 + b"\x00",
])
def test_cbor_refuses_bad_input_with_its_own_error(data: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(SignerReadError):
        cbor_loads(data)
    assert time.monotonic() - started < 2


def _cose(protected: dict, unprotected: dict, tagged: bool = True) -> bytes:
    body = [cbor2.dumps(protected) if protected else b"", unprotected, None, b"\x00" * 64]
    return cbor2.dumps(CBORTag(18, body) if tagged else body)


def test_x5chain_is_found_where_c2pa_rs_looks() -> None:
    assert x5chain(_cose({1: -7, 33: [b"leaf", b"ca"]}, {})) == [b"leaf", b"ca"]
    assert x5chain(_cose({1: -7, "x5chain": b"leaf"}, {})) == [b"leaf"]
    assert x5chain(_cose({1: -7}, {"x5chain": [b"old"]}, tagged=False)) == [b"old"]
    assert x5chain(_cose({33: [1, b"leaf"]}, {})) == [b"leaf"]             # non-bytes entries skipped
    for bad in (_cose({1: -7}, {}), _cose({33: [b"a"]}, {"x5chain": b"b"}), _cose({33: b"a", "x5chain": b"b"}, {}),
                _cose({33: []}, {}), _cose({33: "text"}, {}), cbor2.dumps(CBORTag(17, [b"", {}, None, b""])),
                cbor2.dumps([b"", {}, None]), _cose({1: -7}, {33: [b"leaf"]})):
        with pytest.raises(SignerReadError):
            x5chain(bad)


def test_signature_boxes_of_a_real_store(signed: Signed) -> None:
    found = c2pa_signer.signer_certificates(signed.store)
    [(label, cert)] = found.items()
    assert label.startswith("urn:c2pa:") and isinstance(cert, SignerCertificate) and cert.ekus == [EMAIL]


def test_mangled_stores_give_errors_never_exceptions(signed: Signed) -> None:
    store = signed.store
    rng = random.Random(7)
    sig = store.find(b"c2pa.signature")
    cases = [store[:n] for n in (0, 7, 8, 40, len(store) // 2, len(store) - 1)]
    cases += [b"\x00\x00\x00\x01jumb" + b"\xff" * 8 + store[16:], b"\x00\x00\x00\x00jumb" + store[8:],
              b"\x00\x00\x00\x05jumb" + store[8:], struct.pack(">I", len(store) + 9) + store[4:]]
    for _ in range(300):
        out = bytearray(store)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(out)) if rng.random() < 0.5 else sig + rng.randrange(0, 600)
            out[min(at, len(out) - 1)] = rng.randrange(256)
        cases.append(bytes(out))
    started = time.monotonic()
    for data in cases:
        try:
            found = c2pa_signer.signer_certificates(data)
        except SignerReadError:
            continue
        assert all(isinstance(v, (SignerCertificate, SignerReadError)) for v in found.values())
    assert time.monotonic() - started < 20


def _replace_signature(signed: Signed, cose: bytes) -> bytes:
    """The signed file with its COSE_Sign1 replaced by ``cose`` padded with zeros to the same size."""
    _, old = claim_and_signature(signed.store)
    assert len(cose) <= len(old)
    return signed.base.replace(old, cose + b"\x00" * (len(old) - len(cose)))


def test_hostile_signatures_in_a_file_never_crash_the_pipeline(signed: Signed) -> None:
    huge = b"\xd2\x84\x5b" + b"\x7f" * 8                                       # a bstr of 9 EB
    deep = b"\xd2\x84\x58\x10" + b"\x81" * 16 + b"\xa0" + b"\x81" * 3000 + b"\x00"
    bomb = b"\xd2\x84\x40\xa1\x18\x21\x9a\x00\xff\xff\xff" + b"\x40" * 2000   # x5chain of 16M certs
    bad_cert = _cose({1: -7, 33: [b"\x30\x82\xff\xff" + os.urandom(300)]}, {})
    for cose in (huge, deep, bomb, bad_cert, b"", os.urandom(512)):
        data = _replace_signature(signed, cose)
        started = time.monotonic()
        verdict = analyze(data, signed.settings()).verdict
        assert time.monotonic() - started < 10
        assert no_stage_error(verdict), verdict.evidence
        assert verdict.level in (Level.TAMPERED, Level.UNAVAILABLE, Level.SIGNED_UNTRUSTED), verdict.summary


def test_a_store_with_a_hostile_signature_box_reads_as_an_error(signed: Signed) -> None:
    _, old = claim_and_signature(signed.store)
    for cose in (b"\xd2\x84\x5b" + b"\x7f" * 8, b"\x81" * 4000, _cose({1: -7, 33: [b"\x30\x03\x02\x01\x01"]}, {})):
        store = signed.store.replace(old, cose + b"\x00" * (len(old) - len(cose)))
        [(_, value)] = c2pa_signer.signer_certificates(store).items()
        assert isinstance(value, SignerReadError), value


def test_the_library_hands_over_the_store_it_read(signed: Signed) -> None:
    """resource_to_stream on the manifest's own URI is what c2pa_read relies on: the very store bytes (every
    format: test_c2pa_formats only gets c2pa-trusted evidence when the certificate was read from it)."""
    with c2pa.Reader("image/jpeg", io.BytesIO(signed.base),
                     context=reading_context(signed.settings())[0]) as reader:
        label = reader.get_active_manifest()["label"]
        buf = io.BytesIO()
        reader.resource_to_stream(f"self#jumbf=/c2pa/{label}", buf)
    assert buf.getvalue() == signed.store


def _box(kind: bytes, payload: bytes, extended: bool = False) -> bytes:
    if extended:   # LBox 1: the size in an 8-byte XLBox
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _superbox(label: bytes, *content: bytes, extended: bool = False) -> bytes:
    jumd = _box(b"jumd", b"\x00" * 16 + b"\x03" + label + b"\x00")
    return _box(b"jumb", jumd + b"".join(content), extended)


def _store(cose: bytes, manifest: bytes = b"urn:c2pa:hand-made", extra: bytes = b"") -> bytes:
    signature = _superbox(b"c2pa.signature", _box(b"cbor", cose), extended=True)
    return _superbox(b"c2pa", _superbox(manifest, _superbox(b"c2pa.assertions"), extra, signature))


def test_a_hand_made_store_is_walked_like_a_written_one(signed: Signed) -> None:
    leaf_der = signed.camera.cert.public_bytes(Encoding.DER)
    store = _store(_cose({1: -7, 33: [leaf_der]}, {"pad": b"\x00" * 10}), extra=_box(b"free", b"\x00" * 5))
    [(label, cert)] = c2pa_signer.signer_certificates(store).items()
    assert label == "urn:c2pa:hand-made" and isinstance(cert, SignerCertificate) and cert.chain == 1
    # An oversized signature box is reported, not read.
    big = _store(b"\x40" * (c2pa_signer._MAX_COSE_BYTES + 1))
    [(_, value)] = c2pa_signer.signer_certificates(big).items()
    assert isinstance(value, SignerReadError)


def test_a_store_of_countless_tiny_boxes_is_refused_quickly() -> None:
    tiny = _box(b"free", b"") * 300_000
    for store in (_superbox(b"c2pa", _superbox(b"urn:c2pa:x", tiny)), _superbox(b"c2pa", tiny),
                  _superbox(b"c2pa", *[_superbox(b"urn:c2pa:%d" % i, _superbox(b"c2pa.signature", tiny[:8000]))
                                       for i in range(200)])):
        started = time.monotonic()
        with pytest.raises(SignerReadError):
            c2pa_signer.signature_boxes(store)
        assert time.monotonic() - started < 2
    # Parts other than the signature are never opened: many of them cost one header each.
    many = _superbox(b"c2pa", *[_superbox(b"urn:c2pa:%d" % i, _superbox(b"part", tiny[:80000])) for i in range(50)])
    started = time.monotonic()
    assert c2pa_signer.signature_boxes(many) == {}
    assert time.monotonic() - started < 1
    # A label that never ends, and a description box too short to hold its toggles.
    for store in (_box(b"jumb", _box(b"jumd", b"\x00" * 16 + b"\x03c2pa")), _box(b"jumb", _box(b"jumd", b"\x00" * 8))):
        with pytest.raises(SignerReadError):
            c2pa_signer.signature_boxes(store)


def test_a_certificate_other_than_the_one_the_library_checked_is_not_used(signed: Signed,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """c2pa_read cross-checks the serial number with the library's own signature_info."""
    real = c2pa_signer.signer_certificates

    def swapped(store: bytes) -> dict:
        return {label: SignerCertificate(sha256=cert.sha256, serial="1", ekus=cert.ekus)
                for label, cert in real(store).items() if isinstance(cert, SignerCertificate)}

    monkeypatch.setattr(c2pa_signer, "signer_certificates", swapped)
    result = c2pa_read.read_c2pa(signed.base, "image/jpeg", reading_context(signed.settings())[0],
                                 want_thumbnails=False)
    assert result.state == "Trusted" and result.active is not None and result.active.signer.certificate is None
    assert result.active.signer.certificate_error == "the certificate in the store is not the one the library checked"
    [item] = c2pa_explain.evidence(result)
    assert item.kind == "c2pa-signer-unchecked" and item.supports == Level.SIGNED_UNTRUSTED
