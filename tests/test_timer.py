"""The process's timer threads (worker/timer.py): calls made in time order from one thread, a sooner call
wakes it, a cancelled call is never made, and a forked child gets a timer of its own."""
from __future__ import annotations

import os
import threading
import time

from worker.timer import Timer


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_calls_are_made_in_due_order_on_one_thread_and_a_cancelled_one_never() -> None:
    timer = Timer("test-timer")
    made: list[tuple[str, str]] = []
    done = threading.Event()
    before = threading.active_count()
    timer.call_in(0.4, lambda: (made.append(("late", threading.current_thread().name)), done.set()))
    skipped = timer.call_in(0.2, lambda: made.append(("cancelled", "")))
    for name in ("first", "second"):
        timer.call_in(0.1 if name == "first" else 0.3, lambda name=name: made.append((name, threading.current_thread().name)))
    timer.cancel(skipped)
    assert threading.active_count() == before + 1  # one thread for all four
    assert done.wait(20)
    assert made == [("first", "test-timer"), ("second", "test-timer"), ("late", "test-timer")]
    assert timer.pending() == 0


def test_a_call_due_sooner_than_the_one_waited_for_is_made_in_time() -> None:
    timer = Timer("test-timer")
    made = threading.Event()
    timer.call_in(3600, lambda: None)  # the thread now sleeps for an hour
    time.sleep(0.05)
    started = time.monotonic()
    timer.call_in(0.05, made.set)
    assert made.wait(20), "the sooner call was never made"
    assert time.monotonic() - started < 10  # not the hour


def test_a_failing_call_does_not_stop_the_later_ones() -> None:
    timer = Timer("test-timer")
    made = threading.Event()
    timer.call_in(0.01, lambda: 1 / 0)
    timer.call_in(0.05, made.set)
    assert made.wait(20)


def test_a_forked_child_has_a_working_timer_of_its_own() -> None:
    timer = Timer("test-timer")
    timer.call_in(3600, lambda: None)  # the parent's thread exists and waits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread and its pending call are not here
        try:
            made = threading.Event()
            ok = timer.pending() == 0
            timer.call_in(0.01, made.set)
            ok = ok and made.wait(10)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
