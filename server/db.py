"""Engine and sessions for SQLite (embedded) and PostgreSQL (production) alike."""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Executable, Row, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

CHUNK_ROWS = 50_000
_WAIT_FOR_DISK = text("SET LOCAL synchronous_commit TO on")
# A pooled PostgreSQL connection is pinged before use only after sitting idle this long. SQLAlchemy's
# pool_pre_ping pings at every checkout: a round trip per session, 7% of a worker's time on a fresh page
# (issue 17), for connections used milliseconds before.
PING_AFTER_IDLE_S = 1.0

_engines: dict[tuple[str, bool], Engine] = {}
# PostgreSQL's setting for a connection whose commits need not wait for the disk (Database.session(redoable=True)).
_COMMITS_DO_NOT_WAIT = "-c synchronous_commit=off"


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


def engine_for(url: str, *, commits_wait: bool = True) -> Engine:
    """One engine per URL per process (engines are not fork-safe; workers call this after fork). With PostgreSQL,
    ``commits_wait=False``: its own pool, whose connections commit without waiting for the disk."""
    engine = _engines.get((url, commits_wait))
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_size=5, max_overflow=10,
                                   connect_args={} if commits_wait else {"options": _COMMITS_DO_NOT_WAIT})
            _ping_when_idle(engine)
        _engines[(url, commits_wait)] = engine
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
    """Session factory bound to one URL; passed around instead of a global.

    ``redoable=True`` (``session``, ``one_statement``): what the block writes moves a pending check on (a fetch
    attempt, its content, a lease, the verdict that completes it). With PostgreSQL its commit does not wait for
    the disk (``synchronous_commit = off`` on a pool of its own: no round trip more), as embedded SQLite's
    commits do not (synchronous=NORMAL). A crash of the database server or its host may lose the last such
    commits (PostgreSQL flushes them within 3 x ``wal_writer_delay``, 0.6 s by default); their checks are then
    pending again and the sweeper does them again. Everything else (a check's creation, banks, reports, users)
    waits for the disk, and so does a redoable block that calls ``durable``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self.sqlite = url.startswith("sqlite")
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite's driver opens no transaction for reads: its reads keep the plain factory (switching its
        # isolation level back and forth at each checkout cost more than it saved).
        self._read_factory = self._factory if self.sqlite else sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
        # Redoable writes: SQLite's commits do not wait for the disk already (synchronous=NORMAL, per file);
        # PostgreSQL's go through a second pool, which connects on first use (the API never uses it).
        self._redo_factory = self._redo_one_factory = self._factory
        if not self.sqlite:
            redo = engine_for(url, commits_wait=False)
            self._redo_factory = sessionmaker(redo, expire_on_commit=False)
            self._redo_one_factory = sessionmaker(redo.execution_options(isolation_level="AUTOCOMMIT"),
                                                  expire_on_commit=False)

    @contextmanager
    def session(self, *, redoable: bool = False) -> Iterator[Session]:
        session = (self._redo_factory if redoable else self._factory)()
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
    def one_statement(self, *, redoable: bool = False) -> Iterator[Session]:
        """A session for one statement that writes (``UPDATE ... RETURNING`` and the like). With PostgreSQL it
        commits by itself: one round trip where BEGIN, the statement and COMMIT were three; a statement is
        atomic on its own. SQLite keeps a plain session, committed at the end. Not for two statements that must
        commit together. ``redoable``: as for ``session``."""
        if self.sqlite:
            with self.session() as session:
                yield session
            return
        session = (self._redo_one_factory if redoable else self._read_factory)()
        try:
            yield session
        finally:
            session.close()

    def durable(self, session: Session) -> None:
        """This redoable session's commit waits for the disk after all: it turned out to move no pending check
        on, so nothing would redo it if it were lost."""
        if not self.sqlite:
            session.execute(_WAIT_FOR_DISK)


def stream_rows(session: Session, statement: Executable, chunk: int | None = None) -> Iterator[Sequence[Row]]:
    """Core rows (plain tuples) in chunks, with a server-side cursor on PostgreSQL: a scan of millions
    of rows never holds them all, nor pays the ORM's per-row cost."""
    chunk = chunk or CHUNK_ROWS
    result = session.connection().execution_options(stream_results=True, max_row_buffer=chunk).execute(statement)
    while rows := result.fetchmany(chunk):
        yield rows
