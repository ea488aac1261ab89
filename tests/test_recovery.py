"""The manifest repository and credential recovery (server/provenance/repository.py, docs/repository.md).

Real c2pa-python signing with a test CA; the end-to-end test runs real PostgreSQL, Redis and a worker process.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from pathlib import Path

import c2pa
import pytest
from PIL import Image
from sqlalchemy import select

from server import models
from server.config import Settings
from server.db import Database
from server.media_store import MediaStore
from server.migrate import upgrade
from server.provenance import repository
from server.verdicts import Level, Verdict, fuse
from tests.c2pa_kit import CAPTURE, make_ca, sign
from tests.helpers import SHARED_TRUST, shared_trust, MediaServer, WorkerProcess, wait_done
from tests.images import jpeg_bytes, photo
from tests.test_integration import make_stack
from worker.pipeline.item import Item
from worker.pipeline.rules import RULES
from worker.pipeline.runner import run_rules
from worker.stages import hashes, soft_binding

AI_INTENT = (c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
WATERMARK = {"label": "c2pa.soft-binding",
             "data": {"alg": "com.example.watermark", "blocks": [{"scope": {}, "value": "wm-000042"}]}}


def manifest(*extra: dict) -> dict:
    return {"claim_generator_info": [{"name": "Test Camera", "version": "1"}], "title": "photo.jpg",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": CAPTURE}]}}, *extra]}


def stripped_copy(data: bytes) -> bytes:
    """What a platform makes of an upload: metadata gone, half the size, re-encoded at q70."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return jpeg_bytes(image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR), 70)


def tampered(signed: bytes) -> bytes:
    """The signed file with its pixels changed after signing (a byte of the scan data flipped)."""
    at = len(signed) - 200
    return signed[:at] + bytes([signed[at] ^ 0x55]) + signed[at + 1:]


def trusted_ca(folder: Path, name: str):
    """A test CA whose root (written to ``folder``) the tests trust beside the shelf's lists, which must be there."""
    shared_trust()
    ca = make_ca(name)
    root = folder / "root.pem"
    root.write_bytes(ca.root_pem)
    return ca, root


class Signed:
    """Everything signed once for the module: a trusted camera photo (declaring a watermark), an AI-declared
    image, and a photo whose file is tampered with after signing."""

    def __init__(self, folder: Path) -> None:
        ca, self.root = trusted_ca(folder, "Recovery Test")
        camera = ca.leaf("Test Camera 7", "Acme Photo")
        self.photo, self.store = sign(jpeg_bytes(photo(1)), camera, manifest(WATERMARK))
        self.ai, _ = sign(jpeg_bytes(photo(2)), camera, {"title": "generated.jpg", "claim_generator_info": [
            {"name": "ImageGen", "version": "3"}]}, intent=AI_INTENT)
        self.broken = tampered(sign(jpeg_bytes(photo(3)), camera, manifest())[0])
        self.unrelated = jpeg_bytes(photo(5))

    def trust(self) -> dict[str, str]:
        return {"trust_anchors_path": str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
                "trust_tsa_anchors_path": str(SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"),
                "trust_user_anchors_path": str(self.root)}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    return Signed(tmp_path_factory.mktemp("recovery"))


class Repository:
    """What the rules need of a bank matcher here: a database, and no bank hits."""

    generation = (0, 0)

    def __init__(self, db: Database) -> None:
        self.db = db

    def match(self, *args: object, **kwargs: object) -> list:
        return []

    def match_video(self, *args: object, **kwargs: object) -> list:
        return []


@pytest.fixture
def local(signed: Signed, tmp_path: Path) -> tuple[Settings, Repository]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    settings = Settings(max_pixels=50_000_000, detect=False, data_dir=tmp_path / "data", **signed.trust())
    return settings, Repository(Database(url))


def check(data: bytes, settings: Settings, matcher: Repository) -> Verdict:
    """Analyse and, as worker/settle.py does for a final verdict, record into the repository."""
    item = run_rules(Item(data=data, settings=settings, matcher=matcher), RULES)
    verdict = fuse(item.evidence, sha256=item.sha256, versions=item.versions)
    with matcher.db.session() as session:
        repository.record_from_verdict(session, item.sha256, verdict.evidence, MediaStore(settings.media_path).get)
    return verdict


def stored(db: Database) -> list[models.ProvenanceManifest]:
    with db.session() as session:
        return list(session.scalars(select(models.ProvenanceManifest)).all())


# --------------------------------------------------------------------------- the stage

def test_the_store_is_kept_as_embedded_and_its_declared_soft_bindings_are_read(signed: Signed) -> None:
    store = soft_binding.manifest_store(signed.photo, "image/jpeg")
    assert store == signed.store  # the JUMBF the Builder wrote, joined back from its APP11 segments
    with c2pa.Reader("image/jpeg", io.BytesIO(signed.photo)) as reader:
        label = json.loads(reader.json())["active_manifest"]
    assert soft_binding.declared_bindings(store, label) == [{"alg": "com.example.watermark", "value": "wm-000042"}]
    assert soft_binding.manifest_store(soft_binding.manifest_store(signed.photo, "image/jpeg") or b"", "image/png") is None
    assert soft_binding.manifest_store(signed.photo, "image/jpeg", limit=1000) is None  # bounded


def test_the_iscc_image_code_survives_a_stripped_copy_and_tells_photos_apart(signed: Signed) -> None:
    code = soft_binding.iscc_image_code(photo(1))
    assert code.startswith("ISCC:EE")  # Content-Code, Image subtype, 64 bits
    copy = Image.open(io.BytesIO(stripped_copy(signed.photo)))
    near = repository.iscc_digest(soft_binding.iscc_image_code(copy))
    far = repository.iscc_digest(soft_binding.iscc_image_code(photo(5)))
    same = repository.iscc_digest(code)
    assert bin(int(same, 16) ^ int(near, 16)).count("1") <= repository.ISCC_THRESHOLD
    assert bin(int(same, 16) ^ int(far, 16)).count("1") > repository.ISCC_THRESHOLD


# --------------------------------------------------------------------------- the repository, in process

def test_a_valid_manifest_is_kept_and_a_stripped_copy_recovers_it(signed: Signed, local) -> None:
    settings, matcher = local
    assert check(signed.photo, settings, matcher).level == Level.VERIFIED
    [row] = stored(matcher.db)
    assert (row.state, row.signer["organisation"], row.signer["common_name"]) == ("trusted", "Acme Photo",
                                                                                  "Test Camera 7")
    assert row.store == signed.store and row.iscc and row.pdq and len(row.pdq_dihedral.split(",")) == 8
    assert row.thumbnail_sha256 and MediaStore(settings.media_path).get(row.thumbnail_sha256)
    with matcher.db.session() as session:
        by_watermark = repository.find_by_binding(session, "com.example.watermark", "wm-000042")
    assert [r.sha256 for r in by_watermark] == [row.sha256]

    copy = check(stripped_copy(signed.photo), settings, matcher)
    assert copy.level == Level.RECOVERED and copy.label == "Credentials found for a matching original"
    found = next(e for e in copy.evidence if e.kind == "credentials-recovered")
    assert found.details["original_sha256"] == row.sha256 and found.details["binding"] == "pdq"
    assert found.details["signer"]["organisation"] == "Acme Photo"
    assert found.details["thumbnail"]["sha256"] == row.thumbnail_sha256
    assert 0 <= found.details["distance"] <= settings.pdq_threshold
    assert "crops and edits may still match" in found.summary
    assert len(stored(matcher.db)) == 1  # a copy without credentials is never kept


def test_an_ai_declaring_original_makes_its_copy_ai_declared(signed: Signed, local) -> None:
    settings, matcher = local
    assert check(signed.ai, settings, matcher).level == Level.AI_DECLARED
    copy = check(stripped_copy(signed.ai), settings, matcher)
    assert copy.level == Level.AI_DECLARED
    assert "recovered from a matching original" in copy.summary


def test_unrelated_and_tampered_recover_nothing_and_tampered_is_never_kept(signed: Signed, local) -> None:
    settings, matcher = local
    check(signed.photo, settings, matcher)
    assert check(signed.broken, settings, matcher).level == Level.TAMPERED
    assert [r.sha256 for r in stored(matcher.db)] == [hashlib.sha256(signed.photo).hexdigest()]
    for data in (signed.unrelated, stripped_copy(signed.broken)):
        verdict = check(data, settings, matcher)
        assert verdict.level == Level.NO_EVIDENCE
        assert not [e for e in verdict.evidence if e.kind == "credentials-recovered"]


@pytest.mark.parametrize(("kind", "supports"), [("c2pa-invalid", Level.TAMPERED),
                                               ("c2pa-expired", Level.SIGNED_UNTRUSTED)])
def test_credentials_that_stop_validating_leave_the_repository(signed: Signed, local, kind: str,
                                                               supports: Level) -> None:
    settings, matcher = local
    verdict = check(signed.photo, settings, matcher)
    assert len(stored(matcher.db)) == 1
    broken = [e.model_copy(update={"kind": kind, "supports": supports}) if e.kind == "c2pa-trusted" else e
              for e in verdict.evidence]
    with matcher.db.session() as session:
        repository.record_from_verdict(session, verdict.sha256, broken, lambda sha: None)
    assert stored(matcher.db) == []
    assert check(stripped_copy(signed.photo), settings, matcher).level == Level.NO_EVIDENCE


# --------------------------------------------------------------------------- end to end

def upload(client, data: bytes, name: str) -> str:
    response = client.post("/api/v1/checks/upload", data={"file": (io.BytesIO(data), name)})
    assert response.status_code in (200, 202), response.get_json()
    return response.get_json()["results"][0]["check_id"]


def verdicts_of(client, files: dict[str, bytes]) -> dict[str, dict]:
    ids = {name: upload(client, data, f"{name}.jpg") for name, data in files.items()}
    done = wait_done(client, list(ids.values()), timeout=120)
    return {name: done[check_id]["verdict"] for name, check_id in ids.items()}


@pytest.mark.integration
def test_end_to_end_stripped_copies_recover_their_originals_credentials(signed: Signed, data_dir, pg_url, redis_url,
                                                                        tmp_path) -> None:
    env, app, client = make_stack(data_dir, pg_url, redis_url, **signed.trust())
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        originals = verdicts_of(client, {"photo": signed.photo, "ai": signed.ai, "broken": signed.broken})
        copies = verdicts_of(client, {"photo": stripped_copy(signed.photo), "ai": stripped_copy(signed.ai),
                                      "broken": stripped_copy(signed.broken), "unrelated": signed.unrelated})
    finally:
        worker.stop()
    assert {k: v["level"] for k, v in originals.items()} == {"photo": "verified", "ai": "ai-declared",
                                                             "broken": "tampered"}
    assert {k: v["level"] for k, v in copies.items()} == {"photo": "recovered", "ai": "ai-declared",
                                                          "broken": "no-evidence", "unrelated": "no-evidence"}
    found = next(e for e in copies["photo"]["evidence"] if e["kind"] == "credentials-recovered")
    assert found["details"]["original_sha256"] == originals["photo"]["sha256"]
    assert found["details"]["signer"]["organisation"] == "Acme Photo"
    assert found["details"]["thumbnail"]["sha256"]
    assert "recovered from a matching original" in copies["ai"]["summary"]
    for name in ("broken", "unrelated"):
        assert not [e for e in copies[name]["evidence"] if e["kind"] == "credentials-recovered"]
    db = app.extensions["credence"].db
    rows = {r.sha256: r for r in stored(db)}
    assert set(rows) == {originals["photo"]["sha256"], originals["ai"]["sha256"]}  # never the tampered one
    assert rows[originals["photo"]["sha256"]].store == signed.store
    # Another C2PA tool asks the Soft Binding Resolution API about the same stripped copy.
    body = conforms(client.post("/c2pa/v1/matches/byContent", data=stripped_copy(signed.photo),
                                content_type="image/jpeg"), "c2pa.softBindingQueryResult")
    label = rows[originals["photo"]["sha256"]].label
    assert [m["manifestId"] for m in body["matches"]] == [label]
    assert client.get(f"/c2pa/v1/manifests/{label}").data == signed.store
    broken_copy = conforms(client.post("/c2pa/v1/matches/byContent", data=stripped_copy(signed.broken),
                                       content_type="image/jpeg"), "c2pa.softBindingQueryResult")
    assert broken_copy == {"matches": []}
    assert conforms(client.get("/c2pa/v1/services/supportedAlgorithms"),
                    "c2pa.softBindingAlgList")["watermarks"] == [{"alg": "com.example.watermark"}]


def test_manifests_recorded_after_a_lookup_are_found_by_the_next_one(signed: Signed, local) -> None:
    settings, matcher = local
    assert check(signed.unrelated, settings, matcher).level == Level.NO_EVIDENCE  # the process's copy is built
    check(signed.photo, settings, matcher)
    assert check(stripped_copy(signed.photo), settings, matcher).level == Level.RECOVERED
    check(signed.ai, settings, matcher)  # the copy is refreshed from what changed, not rebuilt
    assert check(stripped_copy(signed.ai), settings, matcher).level == Level.AI_DECLARED


def test_the_iscc_image_code_recovers_when_pdq_does_not(signed: Signed, local) -> None:
    settings, matcher = local
    check(signed.photo, settings, matcher)
    strict = settings.model_copy(update={"pdq_threshold": 0})  # the copy's PDQ is a few bits away
    copy = check(stripped_copy(signed.photo), strict, matcher)
    found = next(e for e in copy.evidence if e.kind == "credentials-recovered")
    assert (copy.level, found.details["binding"]) == (Level.RECOVERED, "io.iscc.v0")
    assert "ISCC image code" in found.summary


# --------------------------------------------------------------------------- the Soft Binding Resolution API

# The response schemas of the C2PA Soft Binding Resolution API 2.4.0 (components/schemas of its OpenAPI
# description, c2pa-org/specs-core softbinding-resolution-api.openapi.json), as published.
SPEC_SCHEMAS = {
    "c2pa.softBindingAlgList": {"properties": {
        "watermarks": {"type": "array", "items": {"type": "object", "properties": {"alg": {"type": "string"}},
                                                  "required": ["alg"]}},
        "fingerprints": {"type": "array", "items": {"type": "object", "properties": {"alg": {"type": "string"}},
                                                    "required": ["alg"]}}}},
    "c2pa.softBindingQueryResult": {"type": "object", "properties": {"matches": {"type": "array", "items": {
        "type": "object", "required": ["manifestId"], "properties": {
            "manifestId": {"type": "string"}, "endpoint": {"type": "string"},
            "similarityScore": {"type": "integer", "minimum": 0, "maximum": 100}}}}}},
    "c2pa.serviceStatus": {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "timestamp": {"type": "string", "format": "date-time"}}},
    "c2pa.serviceCapabilities": {"type": "object", "required": ["c2paSpecificationVersion", "supportedCapabilities"],
                                 "properties": {
        "c2paSpecificationVersion": {"type": "string", "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"},
        "supportedCapabilities": {"type": "array", "items": {"type": "string"}}}},
    "c2pa.wellKnownDiscovery": {"type": "object", "required": ["apiEndpoint", "c2paSpecificationVersion"],
                                "properties": {
        "apiEndpoint": {"type": "string", "format": "uri"},
        "c2paSpecificationVersion": {"type": "string", "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"},
        "capabilitiesEndpoint": {"type": "string", "format": "uri"},
        "statusEndpoint": {"type": "string", "format": "uri"}}},
}


def conforms(response, schema: str) -> dict:
    import jsonschema

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    jsonschema.validate(body, SPEC_SCHEMAS[schema], format_checker=jsonschema.FormatChecker())
    return body


@pytest.fixture
def resolver(signed: Signed, local):
    """The API on the same repository the rules fill."""
    from server.app import create_app

    settings, matcher = local
    app_settings = settings.model_copy(update={"database_url": matcher.db.url})
    app = create_app(app_settings)
    check(signed.photo, settings, matcher)
    check(signed.ai, settings, matcher)
    return app.test_client(), settings, matcher


def test_the_resolution_api_describes_itself_per_the_specification(resolver) -> None:
    client, _, _ = resolver
    found = conforms(client.get("/c2pa/v1/services/supportedAlgorithms"), "c2pa.softBindingAlgList")
    assert found == {"watermarks": [{"alg": "com.example.watermark"}],
                     "fingerprints": [{"alg": "io.iscc.v0"}, {"alg": "pdq"}]}
    caps = conforms(client.get("/c2pa/v1/services/capabilities"), "c2pa.serviceCapabilities")
    assert caps == {"c2paSpecificationVersion": "2.4.0", "supportedCapabilities": ["queryByContent"]}
    assert conforms(client.get("/c2pa/v1/services/status"), "c2pa.serviceStatus")["status"] == "ok"
    discovery = conforms(client.get("/.well-known/c2pa-soft-binding-resolution"), "c2pa.wellKnownDiscovery")
    assert discovery["apiEndpoint"] == "http://localhost/c2pa/v1"


def test_a_stripped_copy_uploaded_finds_its_manifest_and_the_store_is_served(resolver, signed: Signed) -> None:
    client, _, matcher = resolver
    [label] = [r.label for r in stored(matcher.db) if r.store == signed.store]
    copy = stripped_copy(signed.photo)
    body = conforms(client.post("/c2pa/v1/matches/byContent", data=copy, content_type="image/jpeg"),
                    "c2pa.softBindingQueryResult")
    assert [m["manifestId"] for m in body["matches"]] == [label] and body["matches"][0]["similarityScore"] > 80
    unrelated = conforms(client.post("/c2pa/v1/matches/byContent", data=signed.unrelated, content_type="image/jpeg"),
                         "c2pa.softBindingQueryResult")
    assert unrelated == {"matches": []}
    assert client.post("/c2pa/v1/matches/byContent", data=b"%PDF-1.4", content_type="application/pdf").status_code == 415
    served = client.get(f"/c2pa/v1/manifests/{label}")
    assert (served.status_code, served.mimetype, served.data) == (200, "application/c2pa", signed.store)
    assert client.get("/c2pa/v1/manifests/urn:c2pa:no-such-manifest").status_code == 404


def test_lookups_by_binding_with_an_iscc_sequence_and_a_declared_watermark(resolver, signed: Signed) -> None:
    import iscc_core

    client, _, matcher = resolver
    [label] = [r.label for r in stored(matcher.db) if r.store == signed.store]
    # An ISCC-SEQ as IEP-0020 writes it: the 256-bit Content-Code Image of the stripped copy, after a Meta-Code.
    copy = Image.open(io.BytesIO(stripped_copy(signed.photo))).convert("L").resize((32, 32),
                                                                                   Image.Resampling.BICUBIC)
    image_unit = iscc_core.decode_base32(
        iscc_core.gen_image_code_v0(list(copy.tobytes()), bits=256)["iscc"].removeprefix("ISCC:"))
    meta_unit = iscc_core.decode_base32(iscc_core.gen_meta_code_v0("A title", bits=64)["iscc"].removeprefix("ISCC:"))
    value = base64.b64encode(meta_unit + image_unit).decode()
    body = conforms(client.get("/c2pa/v1/matches/byBinding", query_string={"alg": "io.iscc.v0", "value": value}),
                    "c2pa.softBindingQueryResult")
    assert [m["manifestId"] for m in body["matches"]] == [label]
    posted = conforms(client.post("/c2pa/v1/matches/byBinding", json={"alg": "io.iscc.v0", "value": value}),
                      "c2pa.softBindingQueryResult")
    assert posted == body
    watermark = base64.b64encode(b"wm-000042").decode()
    body = conforms(client.get("/c2pa/v1/matches/byBinding",
                               query_string={"alg": "com.example.watermark", "value": watermark}),
                    "c2pa.softBindingQueryResult")
    assert body == {"matches": [{"manifestId": label, "similarityScore": 100}]}
    # PDQ (this service's own alg name, Meta's): the stripped copy's hash, as its 32 bytes or its hex digits.
    copy_pdq, _ = hashes.pdq(Image.open(io.BytesIO(stripped_copy(signed.photo))))
    for raw in (bytes.fromhex(copy_pdq), copy_pdq.encode()):
        body = conforms(client.post("/c2pa/v1/matches/byBinding",
                                    json={"alg": "pdq", "value": base64.b64encode(raw).decode()}),
                        "c2pa.softBindingQueryResult")
        assert [m["manifestId"] for m in body["matches"]] == [label] and body["matches"][0]["similarityScore"] > 80
    far_pdq, _ = hashes.pdq(Image.open(io.BytesIO(signed.unrelated)))
    assert client.post("/c2pa/v1/matches/byBinding", json={"alg": "pdq", "value": base64.b64encode(
        bytes.fromhex(far_pdq)).decode()}).get_json() == {"matches": []}
    assert client.post("/c2pa/v1/matches/byBinding",
                       json={"alg": "pdq", "value": base64.b64encode(b"short").decode()}).status_code == 400
    bad = client.get("/c2pa/v1/matches/byBinding", query_string={"alg": "io.iscc.v0", "value": "not base64!"})
    assert bad.status_code == 400
    too_long = client.get("/c2pa/v1/matches/byBinding", query_string={"alg": "io.iscc.v0", "value": "A" * 3000})
    assert too_long.status_code == 414


def by_reference(client, url: str, deadline_s: float = 120, **extra: object):
    """POST byReference until the check is done: each call itself waits up to ``max_wait_s``; a 503 says ask again."""
    deadline = time.monotonic() + deadline_s
    while True:
        response = client.post("/c2pa/v1/matches/byReference",
                               json={"referenceUrl": url, "assetLength": 10_000_000, **extra})
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        assert int(response.headers["Retry-After"]) > 0


def test_references_are_refused_before_anything_is_queued(resolver) -> None:
    client, _, _ = resolver
    path = "/c2pa/v1/matches/byReference"
    bad = {"not json": client.post(path, data="{", content_type="application/json"),
           "no length": client.post(path, json={"referenceUrl": "https://example.com/a.jpg"}),
           "bad length": client.post(path, json={"referenceUrl": "https://example.com/a.jpg", "assetLength": "9"}),
           "scheme": client.post(path, json={"referenceUrl": "ftp://example.com/a.jpg", "assetLength": 9}),
           "region": client.post(path, json={"referenceUrl": "https://example.com/a.jpg", "assetLength": 9,
                                             "region": [{"type": "spatial"}]})}
    assert {name: r.status_code for name, r in bad.items()} == dict.fromkeys(bad, 400)
    assert "only http and https" in bad["scheme"].get_json()["error"]
    with client.application.extensions["credence"].db.session() as session:
        assert session.scalars(select(models.Check)).first() is None


@pytest.mark.integration
def test_a_stripped_copy_by_reference_is_fetched_by_the_worker_and_finds_its_original(
        signed: Signed, data_dir, pg_url, redis_url, media_server: MediaServer, tmp_path) -> None:
    env, app, client = make_stack(data_dir, pg_url, redis_url, **signed.trust())
    original = media_server.add("/original.jpg", signed.photo)
    copy = media_server.add("/copy.jpg", stripped_copy(signed.photo))
    unrelated = media_server.add("/unrelated.jpg", signed.unrelated)
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        own = conforms(by_reference(client, original, assetType="image/jpeg"), "c2pa.softBindingQueryResult")
        found = conforms(by_reference(client, copy), "c2pa.softBindingQueryResult")
        nothing = conforms(by_reference(client, unrelated), "c2pa.softBindingQueryResult")
        refused = by_reference(client, "http://10.0.0.1/x.jpg")
    finally:
        worker.stop()
    [row] = stored(app.extensions["credence"].db)
    assert row.store == signed.store and media_server.hits["/copy.jpg"] == 1  # fetched once, by the worker
    assert own == {"matches": [{"manifestId": row.label, "similarityScore": 100}]}  # the asset's own manifest
    assert [m["manifestId"] for m in found["matches"]] == [row.label] and found["matches"][0]["similarityScore"] > 80
    assert nothing == {"matches": []}
    assert refused.status_code == 400 and "private" in refused.get_json()["error"]
    # Answered from the finished check: the spec's limits on what was fetched are enforced on it.
    assert by_reference(client, copy, assetLength=10).status_code == 400
    assert by_reference(client, copy, assetType="video/mp4").status_code == 400


# --------------------------------------------------------------------------- the desk

def test_the_desk_report_shows_the_original_beside_the_stripped_copy(signed: Signed, data_dir: Path) -> None:
    from pypdf import PdfReader

    from tests.test_desk import login, make_app
    from tests.test_desk import upload as desk_upload

    app, svc = make_app(data_dir, **signed.trust())
    client = app.test_client()
    login(client, "rex")
    original = desk_upload(svc, client, signed.photo, "photo.jpg")
    sha = desk_upload(svc, client, stripped_copy(signed.photo), "copy.jpg")
    with svc.db.session() as session:
        thumb = session.scalars(select(models.ProvenanceManifest.thumbnail_sha256)
                                .where(models.ProvenanceManifest.sha256 == original)).one()
    html = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    panel = html[html.index('id="recovered"'):]
    panel = panel[:panel.index("</section>")]
    assert f"/desk/blob/{sha}" in panel and f"/desk/blob/{thumb}" in panel  # side by side
    assert "signed thumbnail" in panel and "Acme Photo" in panel
    assert "crops and edits may still match" in panel and "cannot say who made this copy" in panel
    assert "PDQ" in panel and "distance" in panel
    exported = client.get(f"/desk/media/{sha}/export.json").get_json()
    [found] = exported["recovered_credentials"]
    assert found["details"]["original_sha256"] == original and "original_thumb" not in found
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(client.get(f"/desk/media/{sha}/export.pdf").data)).pages)
    assert "Credentials recovered for a matching original" in " ".join(text.split())
    assert "cannot say who made this copy" in " ".join(text.split())
    anonymous = app.test_client().get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="recovered"' in anonymous and f"/desk/blob/{thumb}" not in anonymous  # images are for the newsroom
