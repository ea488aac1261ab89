"""Fixtures for real services. With CI=true a missing Redis or PostgreSQL fails the run."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from server.config import Settings
from tests.helpers import MediaServer

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_HOST = os.environ.get("CREDENCE_TEST_REDIS", "redis://127.0.0.1:6379")
PG_ADMIN = os.environ.get("CREDENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _missing(service: str, exc: Exception) -> None:
    message = f"{service} is not reachable ({exc}); .ci/run starts it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of the machine's real server, emptied before and after."""
    url = f"{REDIS_HOST}/{int(os.environ.get('CREDENCE_TEST_REDIS_DB', '11'))}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _missing("Redis", exc)
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def pg_factory() -> Iterator:
    """Makes fresh PostgreSQL databases on the machine's real server; drops them afterwards."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _missing("PostgreSQL", exc)
    names: list[str] = []
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)

    def make() -> str:
        name = f"credence_test_{uuid.uuid4().hex[:10]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return f"{base}/{name}"

    yield make
    from server.db import dispose_all

    dispose_all()
    for name in names:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def pg_url(pg_factory) -> str:
    """A fresh PostgreSQL database on the machine's real server, dropped afterwards."""
    return pg_factory()


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def env_for(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for a Credence process: test servers on loopback are the only exemption."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDENCE_")}
    env.update({
        "CREDENCE_DATA_DIR": str(data_dir),
        "CREDENCE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        "CREDENCE_FETCH_TIMEOUT_S": "10",
        # Detection is on by default (make run); tests that exercise it say so, the rest keep their speed.
        "CREDENCE_DETECT": "false",
    })
    env.update({f"CREDENCE_{k.upper()}": v for k, v in overrides.items()})
    return env


def settings_from(env: dict[str, str]) -> Settings:
    values = {k[len("CREDENCE_"):].lower(): v for k, v in env.items() if k.startswith("CREDENCE_")}
    return Settings(**values)
