"""Migrations upgrade from empty, round-trip, and agree with the models, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from server.migrate import downgrade, upgrade
from server.models import Base

TABLES = {"media", "media_urls", "verdicts", "checks", "api_keys", "audit_log", "banks", "bank_entries",
          "opinions", "feed_events", "instance_identity", "peers", "users", "desk_checks",
          "provenance_manifests", "provenance_bindings",
          "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("pg_url")


def test_upgrade_downgrade_round_trip(database_url: str) -> None:
    engine = create_engine(database_url)
    upgrade(database_url)
    assert set(inspect(engine).get_table_names()) == TABLES
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    downgrade(database_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert set(inspect(engine).get_table_names()) == TABLES
    engine.dispose()
