"""Engine and sessions for SQLite (embedded) and PostgreSQL (production) alike."""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Executable, Row, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

CHUNK_ROWS = 50_000
# A pooled PostgreSQL connection is pinged before use only after sitting idle this long. SQLAlchemy's
# pool_pre_ping pings at every checkout: a round trip per session, 7% of a worker's time on a fresh page
# (issue 17), for connections used milliseconds before.
PING_AFTER_IDLE_S = 1.0

_engines: dict[str, Engine] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL + busy timeout: the API and the worker processes write the same file. synchronous=NORMAL, SQLite's
    # advice for WAL: a commit no longer waits for the disk; a crash of any process loses nothing, a power
    # cut only the last commits (the checks they finished stay pending and the sweeper sends them again).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def engine_for(url: str) -> Engine:
    """One engine per URL per process (engines are not fork-safe; workers call this after fork)."""
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_size=5, max_overflow=10)
            _ping_when_idle(engine)
        _engines[url] = engine
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's custom pessimistic disconnect handling: a connection back from the pool after
    ``PING_AFTER_IDLE_S`` is pinged, and a dead one is replaced before the session sees it (the pool retries the
    checkout on ``DisconnectionError``). A server restart within the idle window fails that one statement."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # new, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"a pooled connection was dead: {error}") from error


def dispose_all() -> None:
    """Forget engines inherited across fork so each process opens its own connections."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


class Database:
    """Session factory bound to one URL; passed around instead of a global."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite's driver opens no transaction for reads: its reads keep the plain factory (switching its
        # isolation level back and forth at each checkout cost more than it saved).
        self._read_factory = self._factory if url.startswith("sqlite") else sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads, outside a transaction. With PostgreSQL a short read was three round trips
        (BEGIN, the query, COMMIT) and is now one; at READ COMMITTED each statement sees its own snapshot either
        way. SQLite's driver opens no transaction for reads anyway: there it is a plain session. Not for writes,
        nor for streamed reads (``yield_per``, ``stream_rows``): PostgreSQL opens a server-side cursor only inside
        a transaction (the manifest repository's lookup streams its first read, so it keeps ``session``)."""
        session = self._read_factory()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def one_statement(self) -> Iterator[Session]:
        """A session for one statement that writes (``UPDATE ... RETURNING`` and the like). With PostgreSQL it
        commits by itself: one round trip where BEGIN, the statement and COMMIT were three; a statement is
        atomic on its own. SQLite keeps a plain session, committed at the end. Not for two statements that must
        commit together."""
        if self._read_factory is self._factory:
            with self.session() as session:
                yield session
        else:
            with self.reading() as session:
                yield session


def stream_rows(session: Session, statement: Executable, chunk: int | None = None) -> Iterator[Sequence[Row]]:
    """Core rows (plain tuples) in chunks, with a server-side cursor on PostgreSQL: a scan of millions
    of rows never holds them all, nor pays the ORM's per-row cost."""
    chunk = chunk or CHUNK_ROWS
    result = session.connection().execution_options(stream_results=True, max_row_buffer=chunk).execute(statement)
    while rows := result.fetchmany(chunk):
        yield rows
