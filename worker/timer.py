"""Functions called at a given time from one long-lived thread per process, instead of a thread per use.

A fetch's watchdog and a task's lease each used to start a thread (``threading.Timer``) and stop it again:
on the fresh path that was a thread start, a wake-up and a join per fetch and per analysis, each a wait for
the scheduler on a busy machine (issue 17's profile). A ``Timer`` starts its thread on first use, in every
process (a forked child gets a fresh one: the parent's thread is not there, and its lock may have been held
at the fork), and wakes it only when a call is due sooner than the one it is waiting for.

Calls run one after another on the timer's thread, so each timer serves calls of one kind: the fetch
watchdog's are instant (worker/fetch/deadline.py has its own), and ``BACKGROUND``'s may wait on the database or
Redis (lease renewals, held progress events).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True)
class Call:
    due: float  # time.monotonic()
    seq: int
    fn: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Timer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[Call] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._waiting_until = float("inf")  # when the thread wakes next by itself

    def call_at(self, due: float, fn: Callable[[], None]) -> Call:
        """Call ``fn`` on the timer's thread once ``time.monotonic()`` reaches ``due``."""
        call = Call(due, next(self._seq), fn)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, call)
            if due < self._waiting_until:
                self._cond.notify()
        return call

    def call_in(self, seconds: float, fn: Callable[[], None]) -> Call:
        return self.call_at(time.monotonic() + seconds, fn)

    @staticmethod
    def cancel(call: Call | None) -> None:
        """The call will not be made (if it is being made now, that one finishes). Left in the heap until due."""
        if call is not None:
            call.cancelled = True

    def pending(self) -> int:
        """Calls not yet made or cancelled: what a test can count."""
        with self._cond:
            return sum(not c.cancelled for c in self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                now = time.monotonic()
                if not self._heap or self._heap[0].due > now:
                    self._waiting_until = self._heap[0].due if self._heap else float("inf")
                    self._cond.wait(None if not self._heap else self._waiting_until - now)
                    self._waiting_until = 0.0  # awake: no need to be woken
                    continue
                call = heapq.heappop(self._heap)
            try:
                call.fn()
            except Exception:  # noqa: BLE001 - the one thread must outlive any call, or no later call is made
                log.exception("%s: a timed call failed", self.name)


# Writes a task leaves for later: lease renewals (worker/lease.py) and held progress events (worker/jobs.py).
BACKGROUND = Timer("credence-background")
