"""PostgreSQL connections from the pool: pinged only after sitting idle, and a dead one replaced unseen."""
from __future__ import annotations

import time

import psycopg
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
