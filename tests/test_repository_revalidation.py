"""Imported manifest stores re-validated against this instance's trust lists (worker/stages/manifest_check.py,
worker/provenance_jobs.py, server/provenance/repository.py ``record_revalidation``; docs/repository.md).

Real c2pa-python signing (tests/test_recovery.py's fixtures): alpha reads signed files and exports them, beta imports
the file and re-validates each store as its worker task would. What is expected follows from how the fixtures were
signed: the camera leaf chains to a root beta trusts (or not), the photo's manifest carries its own thumbnail and
declares a watermark, and the bytes changed below are inside a signed assertion.
"""
from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from server.config import Settings
from server.migrate import upgrade
from server.db import Database
from server.services import Services
from server.verdicts import Level
from tests.test_recovery import Repository, Signed, check, signed, stored, stripped_copy  # noqa: F401 (fixture)
from tests.test_repository_sharing import cli, instance
from worker import provenance_jobs
from worker.stages import hashes, manifest_check, soft_binding
from worker.stages.budget import MAX_BOX_DEPTH, Limits, OverBudget, check_structure
from worker.trust import reading_context


def export_from_alpha(signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      *originals: bytes) -> tuple[str, list[dict]]:
    alpha, a = instance(signed, tmp_path / "alpha")
    for data in originals:
        check(data, alpha, a)
    out = tmp_path / "manifests.jsonl"
    assert cli(monkeypatch, tmp_path / "alpha", "export", "-o", str(out)).exit_code == 0
    header, *records = out.read_text(encoding="utf-8").splitlines()
    return header, [json.loads(r) for r in records]


def import_into(folder: Path, settings: Settings, header: str, records: list[dict], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Import on beta through the CLI, then run each queued re-validation as the worker would: sha256 -> outcome."""
    out = tmp_path / "to-import.jsonl"
    out.write_text("\n".join([header, *(json.dumps(r) for r in records)]) + "\n", encoding="utf-8")
    done = cli(monkeypatch, folder, "import", str(out))
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"created": len(records), "unchanged": 0, "revalidating": len(records)}
    messages = [json.loads(p.read_text()) for p in (folder / "broker").glob("*.msg")]
    assert sorted(m["headers"]["task"] for m in messages) == ["credence.revalidate_manifest"] * len(records)
    ids = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    rows = {r.id: r.sha256 for r in stored(Database(settings.sqlalchemy_url))}
    ctx = Services(settings)
    return {rows[i]: provenance_jobs.revalidate_manifest(ctx, i) for i in ids}


def beta(signed: Signed, tmp_path: Path, *, trusted: bool) -> tuple[Settings, Repository]:
    folder = tmp_path / "beta"
    if trusted:
        return instance(signed, folder)
    settings = Settings(max_pixels=50_000_000, detect=False, data_dir=folder,
                        **{k: v for k, v in signed.trust().items() if k != "trust_user_anchors_path"})
    upgrade(settings.sqlalchemy_url)
    return settings, Repository(Database(settings.sqlalchemy_url))


def recovered(verdict):
    return next(e for e in verdict.evidence if e.kind == "credentials-recovered")


def test_a_store_that_validates_here_lets_a_stripped_copy_recover(signed: Signed, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    header, records = export_from_alpha(signed, tmp_path, monkeypatch, signed.photo, signed.ai)
    settings, b = beta(signed, tmp_path, trusted=True)
    outcomes = import_into(tmp_path / "beta", settings, header, records, tmp_path, monkeypatch)
    assert sorted(outcomes.values()) == ["counts", "counts"]
    rows = {r.sha256: r for r in stored(b.db)}
    photo = rows[records[0]["sha256"] if records[0]["store"] == base64.b64encode(signed.store).decode()
                 else records[1]["sha256"]]
    assert photo.state == "trusted" and photo.origin.startswith("import by ")
    # Its own thumbnail gives the PDQ and the ISCC; the watermark is declared in the signed manifest.
    assert photo.revalidation["counts"]
    assert set(photo.revalidation["bindings"]) == {"pdq", "io.iscc.v0", "com.example.watermark"}
    assert photo.signer["organisation"] == "Acme Photo"

    copy = check(stripped_copy(signed.photo), settings, b)
    assert copy.level == Level.RECOVERED, copy.summary
    found = recovered(copy)
    assert found.supports == Level.RECOVERED and found.details["origin"].startswith("import by ")
    assert "validated here against your trust lists" in found.summary
    ai = check(stripped_copy(signed.ai), settings, b)
    assert ai.level == Level.AI_DECLARED and "recovered from a matching original" in ai.summary
    # Still another instance's record: never exported again as this instance's own.
    again = tmp_path / "again.jsonl"
    assert cli(monkeypatch, tmp_path / "beta", "export", "-o", str(again)).exit_code == 0
    assert json.loads(again.read_text(encoding="utf-8").splitlines()[0])["manifests"] == 0


def test_an_altered_store_or_a_pdq_its_thumbnail_does_not_match_stays_informational(
        signed: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    header, [record] = export_from_alpha(signed, tmp_path, monkeypatch, signed.photo)
    store = bytearray(signed.store)
    at = store.index(b"c2pa.created") + 5  # inside the signed actions assertion
    store[at] ^= 0x01
    altered = {**record, "store": base64.b64encode(bytes(store)).decode()}
    # The photo's own valid store, claimed for another picture: the exported PDQ is of that picture.
    other_pdq, _ = hashes.pdq(Image.open(io.BytesIO(signed.unrelated)))
    claimed = {**record, "sha256": "a" * 64, "pdq": other_pdq, "pdq_dihedral": None, "iscc": None}
    settings, b = beta(signed, tmp_path, trusted=True)
    outcomes = import_into(tmp_path / "beta", settings, header, [altered, claimed], tmp_path, monkeypatch)
    # The second store is valid and its declared watermark is bound; the PDQ it was exported with is not.
    assert outcomes == {record["sha256"]: "informational", "a" * 64: "counts"}
    rows = {r.sha256: r for r in stored(b.db)}
    assert rows[record["sha256"]].revalidation["counts"] is False
    assert "does not validate here" in rows[record["sha256"]].revalidation["reason"]
    # The signature holds, but only the watermark it declares is bound, not the PDQ the file claims.
    assert rows["a" * 64].revalidation["bindings"] == ["com.example.watermark"]

    copy = check(stripped_copy(signed.photo), settings, b)
    assert copy.level == Level.NO_EVIDENCE and recovered(copy).supports is None
    assert "could not be re-validated here" in recovered(copy).summary
    other = check(stripped_copy(signed.unrelated), settings, b)
    assert other.level == Level.NO_EVIDENCE and recovered(other).supports is None
    assert recovered(other).details["original_sha256"] == "a" * 64
    assert "does not bind the PDQ fingerprint that matched" in recovered(other).summary


def test_an_iscc_counts_when_the_signed_thumbnail_reproduces_it(signed: Signed, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The AI-declared image's manifest declares no soft binding: only its thumbnail can bind an exported ISCC."""
    header, [record] = export_from_alpha(signed, tmp_path, monkeypatch, signed.ai)
    other_iscc = soft_binding.iscc_image_code(Image.open(io.BytesIO(signed.unrelated)))
    only_iscc = {**record, "pdq": None, "pdq_quality": None, "pdq_dihedral": None}
    elsewhere = {**only_iscc, "sha256": "b" * 64, "iscc": other_iscc}
    settings, b = beta(signed, tmp_path, trusted=True)
    outcomes = import_into(tmp_path / "beta", settings, header, [only_iscc, elsewhere], tmp_path, monkeypatch)
    assert outcomes == {record["sha256"]: "counts", "b" * 64: "informational"}
    rows = {r.sha256: r for r in stored(b.db)}
    assert rows[record["sha256"]].revalidation["bindings"] == ["io.iscc.v0"]
    assert "no soft binding of the record is proven" in rows["b" * 64].revalidation["reason"]

    copy = check(stripped_copy(signed.ai), settings, b)  # found by its ISCC alone: the record has no PDQ
    assert recovered(copy).details["binding"] == "io.iscc.v0"
    assert copy.level == Level.AI_DECLARED and "recovered from a matching original" in copy.summary


def test_a_signer_not_trusted_here_only_informs_as_an_own_record_would(signed: Signed, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    header, records = export_from_alpha(signed, tmp_path, monkeypatch, signed.photo)
    settings, b = beta(signed, tmp_path, trusted=False)
    assert list(import_into(tmp_path / "beta", settings, header, records, tmp_path, monkeypatch).values()) == [
        "counts"]
    [row] = stored(b.db)
    assert (row.state, row.revalidation["state"]) == ("valid", "valid")  # alpha's file said trusted
    copy = check(stripped_copy(signed.photo), settings, b)
    found = recovered(copy)
    assert copy.level == Level.NO_EVIDENCE and found.supports is None
    assert "not on your trust list" in found.summary and found.details["state"] == "valid"
    # Nothing is pending any more; after a trust list change every imported record is queued again.
    assert json.loads(cli(monkeypatch, tmp_path / "beta", "revalidate").output) == {"revalidating": 0}
    assert json.loads(cli(monkeypatch, tmp_path / "beta", "revalidate", "--all").output) == {"revalidating": 1}


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def many_boxes(count: int) -> bytes:
    """A superbox of ``count`` empty superboxes: 8 bytes each, so 4,097 of them fit in 33 KB."""
    return box(b"jumb", b"".join(box(b"jumb") for _ in range(count)))


def deep_boxes(depth: int) -> bytes:
    data = box(b"jumb")
    for _ in range(depth):
        data = box(b"jumb", data)
    return data


@pytest.mark.parametrize("store", [b"not a manifest store", b"\x00\x00\x00\x08jumb", "truncated", "many", "deep"])
def test_hostile_or_broken_stores_are_refused_with_a_reason(signed: Signed, tmp_path: Path, store) -> None:
    settings, _ = beta(signed, tmp_path, trusted=True)
    data = {"truncated": signed.store[:len(signed.store) // 3], "many": many_boxes(Limits().max_boxes),
            "deep": deep_boxes(MAX_BOX_DEPTH)}.get(store, store)
    context, files = reading_context(settings)
    outcome = manifest_check.revalidate(data, {"label": "urn:c2pa:x", "pdq": None, "iscc": None}, context,
                                        trust=files.describe(), pdq_threshold=settings.pdq_threshold,
                                        max_pixels=settings.max_pixels, limits=Limits(), put_thumbnail=lambda b: "")
    assert (outcome.state, outcome.bindings) == (None, [])
    assert outcome.reason and outcome.reason.startswith("the manifest store could not be read here")
    if store in ("many", "deep"):  # refused by the walk before c2pa reads a byte
        assert ("more than 4,096 boxes" if store == "many" else "more than 16 deep") in outcome.reason


@pytest.mark.parametrize("count, refused", [(Limits().max_boxes - 1, False), (Limits().max_boxes, True)])
def test_the_box_budget_counts_a_stores_boxes_at_every_level(count: int, refused: bool) -> None:
    """The outer superbox counts too: 4,095 inside it are 4,096 boxes, the budget; one more is over it."""
    data = many_boxes(count)
    if refused:
        with pytest.raises(OverBudget, match="4,096 boxes"):
            check_structure(data, Limits())
    else:
        check_structure(data, Limits())


def test_the_record_must_name_the_stores_active_manifest(signed: Signed, tmp_path: Path) -> None:
    settings, _ = beta(signed, tmp_path, trusted=True)
    context, files = reading_context(settings)
    outcome = manifest_check.revalidate(signed.store, {"label": "urn:c2pa:another", "pdq": None, "iscc": None},
                                        context, trust=files.describe(), pdq_threshold=settings.pdq_threshold,
                                        max_pixels=settings.max_pixels, limits=Limits(), put_thumbnail=lambda b: "")
    assert outcome.reason == "the store's active manifest is not the one the record names"
