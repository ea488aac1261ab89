"""The manifest repository between instances: export/import as files (server/provenance/repository.py,
server/cli/provenance.py; docs/repository.md). Real c2pa-python signing, as tests/test_recovery.py. An imported
record is another instance's reading: kept, found, reported with its origin, never evidence for a level."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from server import models
from server.cli import main as cli_main
from server.config import Settings
from server.db import Database
from server.media_store import MediaStore
from server.migrate import upgrade
from server.verdicts import Level
from tests.test_recovery import Repository, Signed, check, signed, stored, stripped_copy  # noqa: F401 (fixture)


def instance(signed: Signed, folder: Path) -> tuple[Settings, Repository]:
    settings = Settings(max_pixels=50_000_000, detect=False, data_dir=folder, **signed.trust())
    upgrade(settings.sqlalchemy_url)
    return settings, Repository(Database(settings.sqlalchemy_url))


def cli(monkeypatch: pytest.MonkeyPatch, folder: Path, *args: str):
    monkeypatch.setenv("CREDENCE_DATA_DIR", str(folder))
    monkeypatch.delenv("CREDENCE_DATABASE_URL", raising=False)
    return CliRunner().invoke(cli_main, ["provenance", *args])


def test_export_and_import_round_trip_recovers_on_the_other_instance(signed: Signed, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, a = instance(signed, tmp_path / "alpha")
    beta, b = instance(signed, tmp_path / "beta")
    assert check(signed.photo, alpha, a).level == Level.VERIFIED
    assert check(signed.ai, alpha, a).level == Level.AI_DECLARED
    assert check(signed.broken, alpha, a).level == Level.TAMPERED
    assert check(stripped_copy(signed.photo), beta, b).level == Level.NO_EVIDENCE  # beta never saw it

    out = tmp_path / "manifests.jsonl"
    exported = cli(monkeypatch, tmp_path / "alpha", "export", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"format": "credence-manifests/1", "manifests": 2}  # never the tampered one
    assert len(lines) == 3

    imported = cli(monkeypatch, tmp_path / "beta", "import", str(out))
    assert imported.exit_code == 0, imported.output
    # Both stores wait for a worker to re-validate them (tests/test_repository_revalidation.py); none ran here.
    assert json.loads(imported.output) == {"created": 2, "unchanged": 0, "revalidating": 2}
    again = cli(monkeypatch, tmp_path / "beta", "import", str(out))
    assert json.loads(again.output) == {"created": 0, "unchanged": 2, "revalidating": 2}

    originals = {r.sha256: r for r in stored(a.db)}
    copies = {r.sha256: r for r in stored(b.db)}
    assert set(copies) == set(originals)
    for sha, row in copies.items():
        was = originals[sha]
        assert (row.label, row.state, row.signer, row.store, row.pdq, row.iscc, row.pdq_dihedral) == (
            was.label, was.state, was.signer, was.store, was.pdq, was.iscc, was.pdq_dihedral)
        assert row.thumbnail_sha256 == was.thumbnail_sha256
        assert MediaStore(beta.media_path).get(row.thumbnail_sha256) == MediaStore(alpha.media_path).get(
            was.thumbnail_sha256)
    with b.db.session() as session:
        declared = session.scalars(select(models.ProvenanceBinding.value)).all()
        audit = session.scalars(select(models.AuditLog.action)).all()
    assert declared == ["wm-000042"] and audit.count("repository.import") == 2

    # Beta finds the originals, but what a file says about their trust and declarations is alpha's reading,
    # not beta's: the recovery is reported with where it came from and decides no level.
    assert all(row.origin and row.origin.startswith("import by ") for row in copies.values())
    for original in (signed.photo, signed.ai):
        copy = check(stripped_copy(original), beta, b)
        assert copy.level == Level.NO_EVIDENCE, copy.summary
        found = next(e for e in copy.evidence if e.kind == "credentials-recovered")
        assert found.supports is None and found.details["origin"].startswith("import by ")
        assert found.details["signer"]["organisation"] == "Acme Photo" and "has not checked" in found.summary
    # ...and beta does not pass alpha's reading on as its own.
    again = tmp_path / "again.jsonl"
    assert cli(monkeypatch, tmp_path / "beta", "export", "-o", str(again)).exit_code == 0
    assert json.loads(again.read_text(encoding="utf-8").splitlines()[0])["manifests"] == 0


def test_an_import_with_a_bad_line_imports_nothing(signed: Signed, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, a = instance(signed, tmp_path / "alpha")
    check(signed.photo, alpha, a)
    out = tmp_path / "manifests.jsonl"
    assert cli(monkeypatch, tmp_path / "alpha", "export", "-o", str(out)).exit_code == 0
    header, good = out.read_text(encoding="utf-8").splitlines()
    tampered = {**json.loads(good), "sha256": "f" * 64, "state": "tampered"}
    out.write_text("\n".join([header, good, json.dumps(tampered), "{not json"]) + "\n", encoding="utf-8")
    beta, b = instance(signed, tmp_path / "beta")
    refused = cli(monkeypatch, tmp_path / "beta", "import", str(out))
    assert refused.exit_code == 1
    assert "line 3: state must be one of trusted, valid" in refused.output and "line 4: not JSON" in refused.output
    assert stored(b.db) == []
    not_ours = tmp_path / "bank.jsonl"
    not_ours.write_text('{"label": "a bank line"}\n', encoding="utf-8")
    assert "not a manifest repository file" in cli(monkeypatch, tmp_path / "beta", "import", str(not_ours)).output
