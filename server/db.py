"""Engine and sessions for SQLite (embedded) and PostgreSQL (production) alike."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine, Executable, Row, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

CHUNK_ROWS = 50_000

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
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        _engines[url] = engine
    return engine


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


def stream_rows(session: Session, statement: Executable, chunk: int | None = None) -> Iterator[Sequence[Row]]:
    """Core rows (plain tuples) in chunks, with a server-side cursor on PostgreSQL: a scan of millions
    of rows never holds them all, nor pays the ORM's per-row cost."""
    chunk = chunk or CHUNK_ROWS
    result = session.connection().execution_options(stream_results=True, max_row_buffer=chunk).execute(statement)
    while rows := result.fetchmany(chunk):
        yield rows
