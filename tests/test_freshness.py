"""A verdict made with other detectors than the configured ones is not served: it is recomputed on request.

On the real Redis and on SQLite and PostgreSQL: a detection verdict is served from the cache and the
record while the models stay; once the manifest changes, both miss it (the API reports it unknown, so a
check recomputes it), while a verdict that never depended on detection still stands.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from server.checks import records
from server.app import create_app
from server.config import PIPELINE_VERSION
from server.migrate import upgrade
from server.verdicts import Evidence, Level, fuse
from tests.conftest import env_for, settings_from

REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


def _verdict(sha: str, level: Level, versions: dict[str, str]):
    item = Evidence(stage="test", kind="finding", summary=f"made for {sha[:6]}", supports=level)
    return fuse([item], sha256=sha, versions={"pipeline": PIPELINE_VERSION, **versions})


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_model_change_retires_detection_verdicts_only(database, data_dir, tmp_path, redis_url, request) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(REPO_MODELS, models_dir)
    overrides = {"models_dir": str(models_dir), "detect": "true", "redis_url": redis_url}
    if database == "postgresql":
        overrides["database_url"] = request.getfixturevalue("pg_url")
    settings = settings_from(env_for(data_dir, **overrides))
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    svc = app.extensions["credence"]
    client = app.test_client()
    stamp = svc.detectors_stamp()
    assert stamp not in ("off", "none", "misconfigured")

    detected, decisive = "a" * 64, "b" * 64
    made = {detected: _verdict(detected, Level.LIKELY_SYNTHETIC, {"detect": "ran", "detectors": stamp}),
            decisive: _verdict(decisive, Level.KNOWN_FAKE, {"detect": "skipped"})}
    with svc.db.session() as session:
        for sha, verdict in made.items():
            records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
            records.record_verdict(session, verdict)
    for verdict in made.values():
        svc.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))

    def served() -> dict[str, str]:
        results = client.post("/api/v1/lookup", json={"sha256": [detected, decisive]}).get_json()["results"]
        return {r["sha256"]: r["verdict"]["level"] if r["verdict"] else None for r in results}

    assert served() == {detected: "likely-synthetic", decisive: "known-fake"}
    svc.cache.client.flushdb()  # the record alone answers the same
    assert served() == {detected: "likely-synthetic", decisive: "known-fake"}

    # New weights for the baseline: a different threshold is enough to make its verdicts another model's.
    manifest = json.loads((models_dir / "manifest.json").read_text())
    manifest["detectors"][0]["calibration"]["threshold"] = 0.99
    (models_dir / "manifest.json").write_text(json.dumps(manifest))
    assert svc.detectors_stamp() != stamp
    assert served() == {detected: None, decisive: "known-fake"}
    with svc.db.session() as session:
        assert records.current_verdict(session, detected, svc.detectors_stamp()) is None
        assert records.current_verdict(session, detected, stamp) is not None  # kept in the history
        assert records.current_verdict(session, decisive, svc.detectors_stamp()).level == "known-fake"
