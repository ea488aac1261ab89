"""PostgreSQL connections from the pool: pinged only after sitting idle, and a dead one replaced unseen."""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from server import db as db_module
from server.db import Database
from tests.conftest import PG_ADMIN


def test_a_connection_used_moments_ago_is_not_pinged_and_a_dead_idle_one_is_replaced(pg_url, monkeypatch) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.3)
    database = Database(pg_url)
    pings: list[int] = []
    real_ping = database.engine.dialect.do_ping
    monkeypatch.setattr(database.engine.dialect, "do_ping", lambda conn: (pings.append(1), real_ping(conn))[1])
    try:
        with database.session() as session:
            first = session.scalar(text("SELECT pg_backend_pid()"))
        for _ in range(5):  # back to back, as a task's sessions are
            with database.session() as session:
                assert session.scalar(text("SELECT pg_backend_pid()")) == first
        assert pings == []
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # the server drops the idle connection
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        time.sleep(0.5)
        with database.session() as session:  # pinged, found dead, replaced: the session never sees it
            second = session.scalar(text("SELECT pg_backend_pid()"))
        assert pings == [1] and second != first
    finally:
        database.engine.dispose()


def test_a_reading_session_runs_outside_a_transaction_and_leaves_none_behind(pg_url) -> None:
    """Database.reading(): no BEGIN/COMMIT round trips around a read. In a transaction now() stays the
    transaction's start; outside one, each statement is its own."""
    database = Database(pg_url)
    same_instant = text("SELECT now() = statement_timestamp()")
    try:
        for _ in range(2):  # the second time on the connection the first returned to the pool
            with database.reading() as session:
                session.execute(text("SELECT pg_sleep(0.05)"))
                assert session.scalar(same_instant) is True
            with database.session() as session:  # a normal session still gets its transaction
                session.execute(text("SELECT pg_sleep(0.05)"))
                assert session.scalar(same_instant) is False
    finally:
        database.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_statement_commits_its_write_without_a_transaction_around_it(backend: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    """Database.one_statement(): a single write, seen by another connection as soon as the block ends; with
    PostgreSQL no BEGIN/COMMIT round trips (each statement its own transaction)."""
    postgres = backend == "postgresql"
    url = request.getfixturevalue("pg_url") if postgres else f"sqlite:///{tmp_path / 'one.db'}"
    database = Database(url)
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE counter (n integer)"))
            session.execute(text("INSERT INTO counter VALUES (1)"))
        with database.one_statement() as session:
            assert session.scalar(text("UPDATE counter SET n = n + 1 RETURNING n")) == 2
            if postgres:
                assert session.scalar(text("SELECT now() = statement_timestamp()")) is True
        if postgres:
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as other:
                assert other.execute("SELECT n FROM counter").fetchone() == (2,)
        else:
            with closing(sqlite3.connect(tmp_path / "one.db")) as other:
                assert other.execute("SELECT n FROM counter").fetchone() == (2,)
    finally:
        database.engine.dispose()


def test_a_redoable_write_commits_without_waiting_for_the_disk_and_others_wait(pg_url) -> None:
    """Database.session(redoable=True) / one_statement(redoable=True): PostgreSQL's synchronous_commit is off for
    their commits (a lost one is redone by the sweeper), on for every other session, and on again for a redoable
    block that calls durable(). Their writes are committed all the same."""
    database = Database(pg_url)
    setting = text("SHOW synchronous_commit")
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE redo (n integer)"))
            assert session.scalar(setting) == "on"
        for _ in range(2):  # the second time on the pooled connections the first returned
            with database.session(redoable=True) as session:
                assert session.scalar(setting) == "off"
                session.execute(text("INSERT INTO redo VALUES (1)"))
            with database.one_statement(redoable=True) as session:
                assert session.scalar(setting) == "off"
                session.execute(text("INSERT INTO redo VALUES (2)"))
            with database.session(redoable=True) as session:
                database.durable(session)
                assert session.scalar(setting) == "on"
                session.execute(text("INSERT INTO redo VALUES (3)"))
            with database.session() as session, database.one_statement() as single:
                assert session.scalar(setting) == "on" and single.scalar(setting) == "on"
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as other:
            assert sorted(n for (n,) in other.execute("SELECT n FROM redo")) == [1, 1, 2, 2, 3, 3]
    finally:
        database.engine.dispose()
        db_module.engine_for(pg_url, commits_wait=False).dispose()
