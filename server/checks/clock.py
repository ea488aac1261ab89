"""A verdict clock: it moves whenever checks are completed, so a request waiting for verdicts looks at the
database when there is news rather than on a timer (issue 17: polling every 100 ms added 50-190 ms between a
verdict's record and the answer that carries it).

With Redis it is one counter (INCR, GET); embedded it is a small file in the data folder, one byte appended per
completion, read with ``stat``: both cost microseconds to read. One thread per process reads it every
``READ_EVERY_S`` while any request waits, and wakes them when it moves: a thousand open streams cost one reader,
not a hundred thousand Redis GETs a second. The database stays the truth: a waiter still looks there now and
then without news, so a completion that never moved the clock (a crash between commit and tick) is seen late,
never lost.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from time import monotonic, sleep
from typing import Hashable

import redis

from server.checks.cache import PREFIX

log = logging.getLogger(__name__)

KEY = f"{PREFIX}verdict-clock"
MAX_FILE_BYTES = 4096  # then the file starts again: its size changes either way, and it stays tiny
READ_EVERY_S = 0.01  # the watcher's reads while anyone waits (a stat or a Redis GET: microseconds)


class VerdictClock:
    def __init__(self, client: redis.Redis | None, path: Path | None) -> None:
        self.client = client
        self.path = path
        self._changed = threading.Condition()
        self._latest: Hashable = None  # the watcher's last reading
        self._waiting = 0
        self._watcher_pid: int | None = None  # the process whose watcher thread runs (none survives a fork)

    def tick(self) -> None:
        """Say that checks were just completed (after the commit). Never raises: a lost tick costs latency only."""
        try:
            if self.client is not None:
                self.client.incr(KEY)
            elif self.path is not None:
                try:
                    fh = open(self.path, "ab")
                except FileNotFoundError:  # the first completion of this data folder's life
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fh = open(self.path, "ab")
                with fh:
                    if fh.tell() >= MAX_FILE_BYTES:
                        fh.truncate(0)
                    fh.write(b".")
        except (redis.RedisError, OSError) as exc:
            log.warning("verdict clock not moved: %s", exc)

    def read(self) -> Hashable:
        """The clock's current reading: compare two readings for news; None when it cannot be read."""
        try:
            if self.client is not None:
                return self.client.get(KEY)
            if self.path is not None:
                st = os.stat(self.path)
                return st.st_size, st.st_mtime_ns
        except (redis.RedisError, OSError):
            return None
        return None

    def reading(self) -> Hashable:
        """The clock as this process's watcher last read it (at most ``READ_EVERY_S`` old), or read now when no
        watcher runs. Take it before looking at the database: a completion committed after the look moves the
        clock past it, and one the look already saw may wake the waiter once more, never less."""
        with self._changed:
            if self._watcher_pid != os.getpid():
                self._latest = self.read()
            return self._latest

    def wait_for_news(self, seen: Hashable, not_before: float, until: float) -> None:
        """Return once the clock has moved from ``seen`` and ``not_before`` has passed, or at ``until``
        (monotonic times)."""
        with self._changed:
            self._waiting += 1
            try:
                if self._watcher_pid != os.getpid():
                    self._watcher_pid = os.getpid()
                    threading.Thread(target=self._watch, name="credence-verdict-clock", daemon=True).start()
                while (now := monotonic()) < until:
                    moved = self._latest != seen
                    if moved and now >= not_before:
                        return
                    self._changed.wait((not_before if moved else until) - now)
            finally:
                self._waiting -= 1

    def _watch(self) -> None:
        """Reads the clock for every waiter of this process; stops when none is left."""
        while True:
            value = self.read()
            with self._changed:
                if value != self._latest:
                    self._latest = value
                    self._changed.notify_all()
                if not self._waiting:
                    self._watcher_pid = None
                    return
            sleep(READ_EVERY_S)
