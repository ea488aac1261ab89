"""The manifest repository's retention (CREDENCE_REPOSITORY_RETENTION_DAYS, docs/repository.md "Retention"):
records nothing has touched for that long are forgotten, by the beat's task or `credence provenance expire`, on
real PostgreSQL and on the embedded SQLite default."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from server import models
from server.config import Settings
from server.db import Database
from server.migrate import upgrade
from server.provenance import repository
from server.queue import celery_config
from server.services import Services
from tests.helpers import credence
from worker import provenance_jobs

OLD_PDQ = "f" * 32 + "0" * 32
NEW_PDQ = "0f" * 32


def record(sha: str, pdq: str) -> dict:
    return {"sha256": sha, "label": f"urn:c2pa:{sha[:8]}", "state": "trusted", "signer": {"organisation": "Acme"},
            "pdq": pdq, "pdq_quality": 100, "bindings": [{"alg": "com.example.watermark", "value": sha[:12]}]}


def fill(db: Database, *, old_days: int) -> None:
    """Two records, one last touched ``old_days`` ago (as a row no check has read again since)."""
    with db.session() as session:
        for sha, pdq in (("a" * 64, OLD_PDQ), ("b" * 64, NEW_PDQ)):
            assert repository.store_record(session, record(sha, pdq), lambda data: "", origin="import by test")
        session.flush()
        session.execute(update(models.ProvenanceManifest).where(models.ProvenanceManifest.sha256 == "a" * 64)
                        .values(last_seen=models.utcnow() - timedelta(days=old_days)))


def left(db: Database) -> tuple[list[str], int]:
    with db.session() as session:
        shas = sorted(session.scalars(select(models.ProvenanceManifest.sha256)))
        bindings = session.scalar(select(func.count()).select_from(models.ProvenanceBinding))
    return shas, bindings


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_records_untouched_for_the_retention_are_forgotten_and_stop_recovering(backend: str, tmp_path: Path,
                                                                              pg_factory) -> None:
    url = pg_factory() if backend == "postgresql" else f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    db = Database(url)
    fill(db, old_days=31)
    with db.session() as session:  # found before, through the process's copy of the hashes
        assert repository.find(session, pdq=[OLD_PDQ], iscc=None, pdq_threshold=31).sha256 == "a" * 64
    with db.session() as session:
        assert repository.expire(session, 32) == 0  # 31 days old: within 32
    with db.session() as session:
        assert repository.expire(session, 30) == 1
    assert left(db) == (["b" * 64], 1)  # its declared binding went with it
    with db.session() as session:
        assert repository.find(session, pdq=[OLD_PDQ], iscc=None, pdq_threshold=31) is None
        assert repository.find(session, pdq=[NEW_PDQ], iscc=None, pdq_threshold=31).sha256 == "b" * 64
    with pytest.raises(ValueError), db.session() as session:
        repository.expire(session, 0)


def test_the_worker_task_and_the_cli_apply_the_setting_and_the_beat_runs_it_only_when_set(tmp_path: Path,
                                                                                        pg_url: str) -> None:
    upgrade(pg_url)
    db = Database(pg_url)
    fill(db, old_days=400)
    base = Settings(database_url=pg_url, data_dir=tmp_path / "data")
    assert "expire-manifests" not in celery_config(base)["beat_schedule"]
    assert provenance_jobs.expire_manifests(Services(base)) == 0  # no retention: nothing goes
    assert left(db)[0] == ["a" * 64, "b" * 64]
    kept = Settings(database_url=pg_url, data_dir=tmp_path / "data", repository_retention_days=365)
    schedule = celery_config(kept)["beat_schedule"]["expire-manifests"]
    assert schedule["task"] == "credence.expire_manifests"
    assert provenance_jobs.expire_manifests(Services(kept)) == 1
    assert left(db) == (["b" * 64], 1)

    env = {"CREDENCE_DATABASE_URL": pg_url, "CREDENCE_DATA_DIR": str(tmp_path / "data")}
    refused = credence(env, "provenance", "expire")
    assert refused.returncode != 0 and "CREDENCE_REPOSITORY_RETENTION_DAYS" in refused.stderr
    assert json.loads(credence(env, "provenance", "expire", "--days", "1").stdout) == {"expired": 0, "days": 1}
    with db.session() as session:
        session.execute(update(models.ProvenanceManifest).values(last_seen=models.utcnow() - timedelta(days=3)))
    done = credence({**env, "CREDENCE_REPOSITORY_RETENTION_DAYS": "2"}, "provenance", "expire")
    assert json.loads(done.stdout) == {"expired": 1, "days": 2}
    assert left(db) == ([], 0)
