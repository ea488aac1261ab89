"""The provenance stage on files signed for real: a test CA, c2pa-python's Builder and Reader.

Every case goes through ``worker.pipeline.runner.analyze`` (the whole ruleset, no Celery or database),
so the level asserted is the one a reader would see.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import select
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import c2pa
import pytest

from server.config import Settings
from server.media_store import MediaStore
from server.verdicts import Level, Verdict
from tests.c2pa_kit import DOCUMENT_SIGNING, SigningCA, capture_manifest, make_ca, sign
from tests.helpers import SHARED_TRUST, shared_trust, MediaServer, make_jpeg, make_png
from tests.tsa import TimeStampAuthority
from worker.pipeline.runner import analyze
from worker.stages import c2pa_read
from worker.trust import reading_context

AI_INTENT = (c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)


class Kit:
    """Everything signed once for the module: signing is the slow part."""

    def __init__(self, ca: SigningCA, folder: Path) -> None:
        self.ca = ca
        self.folder = folder
        self.root_file = folder / "test-root.pem"
        self.root_file.write_bytes(ca.root_pem)
        # A time-stamp authority of its own CA, as public TSAs are; its root joins the C2PA TSA list
        # in a file of our own when a test trusts it.
        self.tsa = TimeStampAuthority(make_ca("Credence Test TSA"))
        self.tsa_list = folder / "tsa-list-plus-test.pem"
        self.tsa_list.write_bytes((SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem").read_bytes().rstrip() + b"\n"
                                  + self.tsa.root_pem)
        self.camera = ca.leaf("Test Camera 7", "Acme Photo")
        self.editor = ca.leaf("Desk Editor", "Daily Planet", ed25519_key=True)
        self.photo = make_jpeg(320, 240, seed=1)
        self.capture, _ = sign(self.photo, self.camera)
        self.capture_ed, _ = sign(self.photo, self.editor)
        self.ai, _ = sign(make_jpeg(320, 240, seed=2), self.camera,
                          {"title": "generated.jpg", "claim_generator_info": [{"name": "ImageGen", "version": "3"}]},
                          intent=AI_INTENT)
        edit = {"title": "edited.jpg", "claim_generator_info": [{"name": "PhotoDesk", "version": "9"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "PhotoDesk", "version": "9"}}]}}]}
        self.edited, _ = sign(make_jpeg(320, 240, seed=3), self.editor, edit,
                              intent=(c2pa.C2paBuilderIntent.EDIT,),
                              ingredients=(({"title": "generated.jpg", "relationship": "parentOf"}, "image/jpeg",
                                            self.ai),))
        self.stamped, _ = sign(self.photo, self.camera, tsa_url=self.tsa.url)
        self.stamped_at = self.tsa.stamped[-1]
        # A leaf that expires three seconds from now: signed while valid, read after it lapsed,
        # once with no time-stamp to prove when it was signed and once with one.
        self.expires_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=3)
        old = ca.leaf("Old Camera", "Acme Photo", not_after=self.expires_at)
        self.expiring, _ = sign(self.photo, old)
        self.expiring_stamped, _ = sign(self.photo, old, tsa_url=self.tsa.url)
        self.expiring_stamped_at = self.tsa.stamped[-1]
        # An authority whose clock runs 400 days ahead: a trusted stamp after the leaf's validity.
        with TimeStampAuthority(self.tsa.ca, self.tsa.leaf,
                                clock=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)) as ahead:
            self.stamped_late, _ = sign(self.photo, self.camera, tsa_url=ahead.url)

    def wait_for_expiry(self) -> None:
        wait = (self.expires_at - dt.datetime.now(dt.timezone.utc)).total_seconds() + 1.2
        if wait > 0:
            time.sleep(wait)

    def settings(self, *, user_root: bool = False, tsa_root: bool = False, **overrides: object) -> Settings:
        tsa_list = self.tsa_list if tsa_root else SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"
        values: dict[str, object] = {
            "data_dir": self.folder / "data",
            "trust_anchors_path": str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
            "trust_tsa_anchors_path": str(tsa_list),
            "trust_user_anchors_path": str(self.root_file) if user_root else "",
        }
        values.update(overrides)
        return Settings(**values)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    shared_trust()
    made = Kit(make_ca(), tmp_path_factory.mktemp("provenance"))
    yield made
    made.tsa.close()


def c2pa_item(verdict: Verdict) -> dict:
    items = [e for e in verdict.evidence if e.stage == "c2pa" and e.kind.startswith("c2pa-")]
    assert len(items) == 1, [e.kind for e in verdict.evidence]
    return items[0].model_dump(mode="json")


def assert_no_stage_error(verdict: Verdict) -> None:
    assert not [e for e in verdict.evidence if e.kind == "stage-error"], verdict.evidence


def test_plain_capture_is_signed_untrusted_with_its_details(kit: Kit) -> None:
    settings = kit.settings()
    verdict = analyze(kit.capture, settings).verdict
    assert verdict.level == Level.SIGNED_UNTRUSTED
    assert verdict.summary.startswith("Signed by Acme Photo (Test Camera 7), not on your trust list")
    item = c2pa_item(verdict)
    details = item["details"]
    assert item["kind"] == "c2pa-untrusted" and details["state"] == "Valid"
    assert details["signer"]["organisation"] == "Acme Photo" and details["signer"]["common_name"] == "Test Camera 7"
    assert details["signer"]["issuer"] == "Credence Test Intermediate"
    assert details["signer"]["algorithm"] == "Es256"
    assert details["timestamped"] is False and details["signing_time"] is None
    assert details["claim_generator"] == "Credence Test Camera 1.0"
    assert details["actions"][0]["action"] == "c2pa.created"
    assert details["actions"][0]["software_agent"] == "Credence Test Camera 1.0"
    assert details["actions"][0]["digital_source_type"].endswith("/digitalCapture")
    assert details["trust"] == {"loaded": True, "anchors": ["C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem"],
                                "user_anchors": [], "content_signer_ekus": [
                                    "1.3.6.1.4.1.311.76.59.1.9", "1.3.6.1.4.1.62558.2.1", "1.3.6.1.5.5.7.3.36",
                                    "1.3.6.1.5.5.7.3.4"]}
    # The signing certificate as we read it ourselves: its purposes are on record.
    assert details["signer"]["certificate"]["ekus"] == ["1.3.6.1.5.5.7.3.4"]
    assert details["signer"]["certificate"]["eku_names"] == ["emailProtection"]
    assert details["signer"]["certificate"]["ca"] is False and details["signer"]["certificate"]["chain"] == 2
    assert details["content_signer"] is True
    assert [f["code"] for f in details["failures"]] == ["signingCredential.untrusted"]
    # The thumbnail is kept in the media store; the verdict holds its hash only and stays small.
    thumb = details["thumbnail"]
    stored = MediaStore(settings.media_path).get(thumb["sha256"])
    assert stored is not None and stored[:3] == b"\xff\xd8\xff"
    assert len(verdict.model_dump_json()) < 8000
    assert verdict.versions["c2pa"] == "1" and "c2pa" in verdict.timings


def test_verified_once_the_root_is_an_anchor_es256_and_ed25519(kit: Kit) -> None:
    for data, who in ((kit.capture, "Acme Photo (Test Camera 7)"), (kit.capture_ed, "Daily Planet (Desk Editor)")):
        verdict = analyze(data, kit.settings(user_root=True)).verdict
        assert verdict.level == Level.VERIFIED, verdict.summary
        assert f"signed by {who}" in verdict.summary
        assert c2pa_item(verdict)["details"]["state"] == "Trusted"
    assert c2pa_item(analyze(kit.capture_ed, kit.settings()).verdict)["details"]["signer"]["algorithm"] == "Ed25519"


def test_ai_intent_is_ai_declared(kit: Kit) -> None:
    verdict = analyze(kit.ai, kit.settings(user_root=True)).verdict
    assert verdict.level == Level.AI_DECLARED
    ai = [e for e in verdict.evidence if e.kind == "ai-c2pa"][0]
    assert ai.details["declarations"][0]["value"] == "trainedAlgorithmicMedia"
    assert "the active manifest" in ai.details["declarations"][0]["field"]
    # The credentials themselves still validate; the desk sees both.
    assert c2pa_item(verdict)["kind"] == "c2pa-trusted"


def test_edit_of_an_ai_image_is_ai_declared_through_its_ingredient(kit: Kit) -> None:
    verdict = analyze(kit.edited, kit.settings(user_root=True)).verdict
    assert verdict.level == Level.AI_DECLARED
    # The summary says where in words; the field as c2pa_read names it stays in the details.
    assert ("found in the digital source type of the “created” step, in the credentials of ingredient "
            "'generated.jpg', the file this one was made from" in verdict.summary), verdict.summary
    assert "parentOf" not in verdict.summary and "c2pa." not in verdict.summary
    [ai] = [e for e in verdict.evidence if e.kind == "ai-c2pa"]
    assert "ingredient 'generated.jpg', parentOf" in ai.details["declarations"][0]["field"]
    details = c2pa_item(verdict)["details"]
    # The active manifest alone says nothing about AI: only the parent does.
    assert all("digital_source_type" not in a for a in details["actions"])
    assert details["manifests"] == 2
    [parent] = details["ingredients"]
    assert parent["title"] == "generated.jpg" and parent["relationship"] == "parentOf"
    assert parent["validation"] in ("valid", "untrusted") and parent["manifest"]
    assert "sha256" in parent["thumbnail"]
    assert details["signer"]["algorithm"] == "Ed25519"


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def test_one_pixel_byte_flipped_is_tampered(kit: Kit) -> None:
    scan = kit.capture.rfind(b"\xff\xda") + 400   # inside the main image's entropy-coded data
    while kit.capture[scan] in (0x00, 0xFE, 0xFF) or kit.capture[scan - 1] == 0xFF:
        scan += 1
    verdict = analyze(_flip(kit.capture, scan), kit.settings(user_root=True)).verdict
    assert verdict.level == Level.TAMPERED
    assert "the pixels were changed after signing" in verdict.summary
    assert [f["code"] for f in c2pa_item(verdict)["details"]["failures"]] == ["assertion.dataHash.mismatch"]
    assert_no_stage_error(verdict)


def test_manifest_byte_flipped_is_tampered(kit: Kit) -> None:
    settings = kit.settings(user_root=True)
    cases = {
        kit.capture.find(b"digitalCapture") + 3: "an assertion such as the edit history) was changed after signing",
        kit.capture.find(b"capture.jpg") + 1: "the signature no longer matches",
        kit.capture.find(b"c2pa.signature") + 120: "",   # inside the COSE signature: broken either way
    }
    for at, words in cases.items():
        assert at > 0
        verdict = analyze(_flip(kit.capture, at), settings).verdict
        assert verdict.level == Level.TAMPERED, (at, verdict.summary)
        assert verdict.summary.startswith("Content Credentials broken")
        assert words in verdict.summary
        assert_no_stage_error(verdict)


def test_truncated_files_are_tampered_or_unavailable_never_a_crash(kit: Kit) -> None:
    settings = kit.settings(user_root=True)
    whole = len(kit.capture)
    verdict = analyze(kit.capture[:int(whole * 0.97)], settings).verdict
    assert verdict.level == Level.TAMPERED and "cut short" in verdict.summary
    for fraction in (0.02, 0.1, 0.3, 0.5, 0.8):
        verdict = analyze(kit.capture[:int(whole * fraction)], settings).verdict
        assert verdict.level in (Level.TAMPERED, Level.UNAVAILABLE), (fraction, verdict.summary)
        assert_no_stage_error(verdict)


def test_expired_leaf_without_timestamp_is_explained_apart_from_tampering(kit: Kit) -> None:
    kit.wait_for_expiry()
    verdict = analyze(kit.expiring, kit.settings(user_root=True, tsa_root=True)).verdict
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-expired"
    assert verdict.level == Level.SIGNED_UNTRUSTED
    assert "had expired" in verdict.summary and "no trusted time-stamp" in verdict.summary
    assert "not a sign of tampering" in verdict.summary
    assert item["details"]["timestamped"] is False and item["details"]["timestamp"] is None
    assert "signingCredential.expired" in [f["code"] for f in item["details"]["failures"]]
    # Expiry and a pixel change together are tampering: the content speaks louder.
    scan = kit.expiring.rfind(b"\xff\xda") + 500
    while kit.expiring[scan] in (0x00, 0xFE, 0xFF) or kit.expiring[scan - 1] == 0xFF:
        scan += 1
    assert analyze(_flip(kit.expiring, scan), kit.settings(user_root=True)).verdict.level == Level.TAMPERED


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_the_test_tsa_answers_as_rfc_3161_says(kit: Kit, tmp_path: Path) -> None:
    """OpenSSL, not c2pa, checks our authority's answers, so the tests below rest on a standard TSA."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command on this machine")
    (tmp_path / "data.bin").write_bytes(kit.photo)
    (tmp_path / "ca.pem").write_bytes(kit.tsa.root_pem)
    (tmp_path / "untrusted.pem").write_bytes(kit.tsa.ca.inter_pem)
    subprocess.run(["openssl", "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "q.tsq"],
                   cwd=tmp_path, check=True, capture_output=True)
    request = urllib.request.Request(kit.tsa.url, data=(tmp_path / "q.tsq").read_bytes(),
                                     headers={"Content-Type": "application/timestamp-query"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"] == "application/timestamp-reply"
        (tmp_path / "r.tsr").write_bytes(answer.read())
    verify = subprocess.run(["openssl", "ts", "-verify", "-queryfile", "q.tsq", "-in", "r.tsr", "-CAfile", "ca.pem",
                             "-untrusted", "untrusted.pem"], cwd=tmp_path, capture_output=True, text=True)
    assert verify.returncode == 0 and "Verification: OK" in verify.stdout, verify.stdout + verify.stderr
    # A request for other data does not verify against this token.
    (tmp_path / "other.bin").write_bytes(b"other")
    subprocess.run(["openssl", "ts", "-query", "-data", "other.bin", "-sha256", "-out", "o.tsq"],
                   cwd=tmp_path, check=True, capture_output=True)
    assert subprocess.run(["openssl", "ts", "-verify", "-queryfile", "o.tsq", "-in", "r.tsr", "-CAfile", "ca.pem"],
                          cwd=tmp_path, capture_output=True).returncode != 0


def test_time_stamped_signature_says_when_it_was_signed(kit: Kit) -> None:
    hits = kit.tsa.hits
    verdict = analyze(kit.stamped, kit.settings(user_root=True, tsa_root=True)).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary
    details = c2pa_item(verdict)["details"]
    assert details["timestamped"] is True
    assert details["timestamp"] == {"time": kit.stamped_at.isoformat(), "authority": "Credence Test TSA",
                                    "trusted": True}
    assert details["signing_time"] == kit.stamped_at.isoformat()
    assert f"Signed {_iso(kit.stamped_at)}, time-stamped by Credence Test TSA (a trusted time-stamp authority)" \
        in verdict.summary
    # The same stamp from an authority that is not on the list is shown, but no time is relied on.
    plain = analyze(kit.stamped, kit.settings(user_root=True)).verdict
    assert plain.level == Level.VERIFIED   # the certificate is still valid today
    details = c2pa_item(plain)["details"]
    assert details["timestamp"]["trusted"] is False and details["signing_time"] is None
    assert "an authority not on your time-stamp trust list, so that time is not relied on" in plain.summary
    assert kit.tsa.hits == hits   # reading never calls the authority


def test_expired_leaf_with_a_trusted_time_stamp_still_verifies(kit: Kit) -> None:
    kit.wait_for_expiry()
    verdict = analyze(kit.expiring_stamped, kit.settings(user_root=True, tsa_root=True)).verdict
    item = c2pa_item(verdict)
    assert verdict.level == Level.VERIFIED and item["kind"] == "c2pa-trusted", verdict.summary
    assert item["details"]["failures"] == [] and item["details"]["timestamp"]["trusted"] is True
    assert "the signing certificate has since expired" in verdict.summary
    assert "the trusted time-stamp shows the file was signed while it was valid" in verdict.summary
    assert _iso(kit.expiring_stamped_at) in verdict.summary
    # A trusted stamp rescues the certificate's dates, not its issuer: unanchored, it is signed-untrusted.
    unanchored = analyze(kit.expiring_stamped, kit.settings(tsa_root=True)).verdict
    assert unanchored.level == Level.SIGNED_UNTRUSTED and c2pa_item(unanchored)["kind"] == "c2pa-untrusted"
    assert "signed while it was valid" in unanchored.summary


def test_expired_leaf_with_an_untrusted_time_stamp_is_expired_not_tampered(kit: Kit) -> None:
    kit.wait_for_expiry()
    verdict = analyze(kit.expiring_stamped, kit.settings(user_root=True)).verdict
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-expired" and verdict.level == Level.SIGNED_UNTRUSTED, verdict.summary
    assert "had expired" in verdict.summary and "not a sign of tampering" in verdict.summary
    assert "its time-stamp from Credence Test TSA is not from an authority on your time-stamp trust list" \
        in verdict.summary
    assert set(f["code"] for f in item["details"]["failures"]) == {"signingCredential.expired",
                                                                  "signingCredential.untrusted"}


def test_trusted_time_stamp_outside_the_certificate_validity(kit: Kit) -> None:
    verdict = analyze(kit.stamped_late, kit.settings(user_root=True, tsa_root=True)).verdict
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-expired" and verdict.level == Level.SIGNED_UNTRUSTED, verdict.summary
    assert "a trusted time-stamp from Credence Test TSA shows the file was signed on" in verdict.summary
    assert "after the signing certificate had expired" in verdict.summary
    assert "the content itself matches its signature" in verdict.summary


def test_a_time_stamp_authority_certificate_is_not_a_content_signer(kit: Kit) -> None:
    """c2pa-python 0.38.1 (c2pa-rs 0.91.3) checks time-stamps and signers against one anchor pool and lets a
    leaf whose EKU is timeStamping sign content whatever trust_config lists; our own signer check refuses it."""
    signed, _ = sign(kit.photo, kit.tsa.leaf)
    settings = kit.settings(tsa_root=True, trust_ekus="1.3.6.1.5.5.7.3.4,1.3.6.1.5.5.7.3.36")
    # The library alone still calls it trusted: the gap this test is about.
    with c2pa.Reader("image/jpeg", io.BytesIO(signed), context=reading_context(settings)[0]) as reader:
        assert reader.get_validation_state() == "Trusted"
    verdict = analyze(signed, settings).verdict
    assert verdict.level == Level.TAMPERED, verdict.summary
    assert verdict.summary.startswith("Content Credentials broken: certificate purpose not allowed: signed with a "
                                      "certificate not meant for signing content (time-stamping only). Signed by "
                                      "Credence Test (Credence Test TSA)")
    item = c2pa_item(verdict)
    assert item["kind"] == "c2pa-invalid" and item["details"]["state"] == "Trusted"
    assert item["details"]["signer"]["certificate"]["eku_names"] == ["timeStamping"]
    assert item["details"]["content_signer"] is False
    assert item["details"]["failures"][-1]["code"] == "signingCredential.invalid"
    assert item["details"]["failures"][-1]["by"] == "credence"
    # With the default EKU settings (which list timeStamping for the library's TSA checks) too.
    assert analyze(signed, kit.settings(tsa_root=True)).verdict.level == Level.TAMPERED
    # Not on any list, it is still refused rather than shown as merely untrusted.
    assert analyze(signed, kit.settings()).verdict.level == Level.TAMPERED
    assert_no_stage_error(verdict)


def test_eku_settings_decide_which_signing_certificates_count(kit: Kit) -> None:
    doc = kit.ca.leaf("Doc Signer", "Wire Service", eku=[DOCUMENT_SIGNING])
    signed, _ = sign(kit.photo, doc)
    assert analyze(signed, kit.settings(user_root=True)).verdict.level == Level.VERIFIED   # default EKUs allow it
    strict = kit.settings(user_root=True, trust_ekus="1.3.6.1.5.5.7.3.4")
    verdict = analyze(signed, strict).verdict
    assert verdict.level == Level.TAMPERED
    assert verdict.summary.startswith("Content Credentials broken: certificate purpose not allowed: the signing "
                                      "certificate's purpose (documentSigning) is not one your settings allow for "
                                      "signing content.")
    assert "pixels" not in verdict.summary


@pytest.mark.parametrize("mime", ["image/png", "image/webp"])
def test_other_formats_are_read(kit: Kit, mime: str) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(make_png(64, 48, seed=5))).save(buf, mime.split("/")[1].upper())
    signed, _ = sign(buf.getvalue(), kit.camera, capture_manifest("capture"), mime=mime)
    verdict = analyze(signed, kit.settings(user_root=True)).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary


def test_remote_manifest_is_never_fetched_by_the_library(kit: Kit) -> None:
    server = MediaServer()
    try:
        url = server.add("/manifests/capture.c2pa", b"", "application/c2pa")
        remote_only, store = sign(kit.photo, kit.camera, remote_url=url, embed=False)
        server.add("/manifests/capture.c2pa", store, "application/c2pa")
        both, _ = sign(kit.photo, kit.camera, remote_url=url)

        verdict = analyze(remote_only, kit.settings()).verdict
        item = c2pa_item(verdict)
        assert item["kind"] == "c2pa-remote-manifest" and item["details"]["remote_url"] == url
        assert verdict.level == Level.UNAVAILABLE and "the remote manifest was not fetched" in verdict.summary
        assert analyze(both, kit.settings()).verdict.level == Level.SIGNED_UNTRUSTED   # the embedded copy is read
        assert server.total_hits() == 0

        # The same server is reachable: the library's own setting fetches from it at once.
        open_ctx = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": True}})
        with c2pa.Reader("image/jpeg", io.BytesIO(remote_only), context=open_ctx) as reader:
            assert reader.get_validation_state() == "Valid"
        assert server.total_hits() == 1

        # Enabled by config, the fetch goes through the guarded fetcher: refused on loopback...
        refused = analyze(remote_only, kit.settings(remote_manifest_fetch=True)).verdict
        assert "could not be fetched (refused: 127.0.0.1 is a loopback address)" in refused.summary
        assert server.total_hits() == 1
        # ...and allowed only where the guard allows it.
        fetched = analyze(remote_only, kit.settings(remote_manifest_fetch=True, fetch_allow_networks="127.0.0.1/32")).verdict
        assert fetched.level == Level.SIGNED_UNTRUSTED
        assert c2pa_item(fetched)["details"]["remote_url"] == url
        assert server.total_hits() == 2
    finally:
        server.close()


def test_a_remote_manifest_address_is_read_as_written(kit: Kit) -> None:
    """The XMP holds the address XML-escaped: what is shown (and fetched) is the address, "&" not "&amp;"."""
    url = "https://manifests.example/store.c2pa?id=7&sig=abc"
    remote_only, _ = sign(kit.photo, kit.camera, remote_url=url, embed=False)
    item = c2pa_item(analyze(remote_only, kit.settings()).verdict)
    assert item["kind"] == "c2pa-remote-manifest" and item["details"]["remote_url"] == url


def test_bad_input_gives_evidence_never_a_crash(kit: Kit) -> None:
    settings = kit.settings()
    jumbf_junk = b"\xff\xeb\x00\x30JP\x02\x11\x00\x00\x00\x01\x00\x00\x00\x20jumb\x00\x00\x00\x18jumdc2pa" + b"\0" * 12
    cases = [
        b"\xff\xd8\xff\xe0" + os.urandom(4000) + b"c2pa" + os.urandom(4000),   # garbage that says c2pa
        make_jpeg()[:2] + jumbf_junk + make_jpeg()[2:],                       # a malformed manifest store
        kit.capture[:300] + os.urandom(20000) + kit.capture[20300:],          # manifest overwritten
        kit.capture + b"c2pa" * 2_000_000,                                     # 8 MB of trailing junk
        b"c2pa" * 100,                                                         # not media at all
    ]
    for data in cases:
        started = time.monotonic()
        verdict = analyze(data, settings).verdict
        assert time.monotonic() - started < 10
        assert_no_stage_error(verdict)
        assert verdict.level in (Level.TAMPERED, Level.UNAVAILABLE, Level.NO_EVIDENCE, Level.SIGNED_UNTRUSTED)


def test_clean_images_stay_clean(kit: Kit) -> None:
    for data in (make_jpeg(300, 300), make_png(300, 300)):
        verdict = analyze(data, kit.settings()).verdict
        assert verdict.level == Level.NO_EVIDENCE
        assert [e.kind for e in verdict.evidence if e.stage == "c2pa"] == ["c2pa-absent"]
        assert not [e for e in verdict.evidence if e.supports is not None]


def test_no_trust_list_loaded_says_so(kit: Kit, tmp_path: Path) -> None:
    verdict = analyze(kit.capture, Settings(data_dir=tmp_path)).verdict
    assert verdict.level == Level.SIGNED_UNTRUSTED
    assert "no trust list is loaded" in verdict.summary
    with pytest.raises(FileNotFoundError):
        reading_context(Settings(data_dir=tmp_path, trust_user_anchors_path=str(tmp_path / "missing.pem")))


def test_one_reading_context_per_process_rebuilt_after_fork(kit: Kit) -> None:
    settings = kit.settings()
    first, _ = reading_context(settings)
    assert reading_context(settings)[0] is first
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a prefork worker process
        code = b"0"
        try:
            child, _ = reading_context(settings)
            result = c2pa_read.read_c2pa(kit.capture, "image/jpeg", child, want_thumbnails=False)
            if child is not first and result.state == "Valid":
                code = b"1"
        finally:
            os.write(write_fd, code)
            os._exit(0)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 30)
    answer = os.read(read_fd, 1) if ready else b""
    os.close(read_fd)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert answer == b"1"
    # A trust file that changes on disk (credence trust update) gives a fresh context.
    os.utime(kit.root_file, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    with_root = kit.settings(user_root=True)
    again, _ = reading_context(with_root)
    os.utime(kit.root_file, ns=(time.time_ns(), time.time_ns() + 9_000_000_000))
    assert reading_context(with_root)[0] is not again


def test_cli_check_prints_the_provenance(kit: Kit, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from server.cli import main

    path = tmp_path / "capture.jpg"
    path.write_bytes(kit.capture)
    env = {"CREDENCE_DATA_DIR": str(tmp_path / "data"), "CREDENCE_TRUST_USER_ANCHORS_PATH": str(kit.root_file)}
    result = CliRunner().invoke(main, ["check", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["level"] == "verified"
