"""One deadline for a whole fetch (every hop, every range request), and the watchdog that enforces it."""
from __future__ import annotations

import socket
import threading
import time

from worker.fetch.common import FetchRefused
from worker.timer import Call, Timer

# Every fetch's watchdog in this process, on one thread: its calls only shut sockets down, never wait.
WATCHDOGS = Timer("credence-fetch-watchdog")


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds

    def extend(self, seconds: float) -> None:
        """A longer whole-fetch budget, counted from the start (a video, once its bytes say so)."""
        if seconds > self.seconds:
            self.seconds, self.at = seconds, self.started + seconds

    def remaining(self) -> float:
        """Seconds left; raises once the whole fetch has run out of time."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.refusal()
        return left

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def refusal(self, what: str = "the fetch") -> FetchRefused:
        unit = "second" if self.seconds == 1 else "seconds"
        return FetchRefused(f"gave up: {what} took longer than {self.seconds:g} {unit}", "timeout")


class Watchdog:
    """Shuts the sockets down when the deadline passes.

    Socket timeouts bound each recv, not the total: a server dripping one byte at a time
    (headers, TLS handshake or body) would otherwise hold a worker forever. Dups of the
    sockets are kept so a shutdown can never hit an fd that was closed and reused.
    """

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer: Call | None = None
        self._closed = False
        self.fired = False

    def arm(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            if self._closed:
                dup.close()
                return
            self._socks.append(dup)
            if self.fired:
                self._shutdown(dup)
            if self._timer is None:
                self._timer = WATCHDOGS.call_at(self._deadline.at, self._fire)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            left = self._deadline.at - time.monotonic()
            if left > 0:  # the deadline was extended since the timer was set
                self._timer = WATCHDOGS.call_at(self._deadline.at, self._fire)
                return
            self.fired = True
            for sock in self._socks:
                self._shutdown(sock)

    def drop_sockets(self) -> None:
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            WATCHDOGS.cancel(self._timer)
            for sock in self._socks:
                sock.close()
            self._socks.clear()
