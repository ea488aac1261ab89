"""The embedded broker (kombu's filesystem transport): a message appears in its queue folder whole.

kombu's own transport creates the file, then writes it; a polling worker could take it empty and stop
consuming (seen in a fresh-clone run: every check stayed pending). server.queue renames a finished file in.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from server import queue
from server.config import Settings


def test_a_message_is_never_visible_before_it_is_complete(tmp_path: Path, monkeypatch) -> None:
    settings = Settings(data_dir=tmp_path)
    app = queue.make_celery(settings)
    folder = tmp_path / "broker"
    visible_before_rename: list[list[str]] = []
    rename = os.replace

    def spy(src: str, dst: str) -> None:
        visible_before_rename.append(sorted(p.name for p in folder.glob("*.msg")))
        rename(src, dst)

    monkeypatch.setattr(queue.os, "replace", spy)
    app.send_task("credence.sweep")
    assert visible_before_rename == [[]]  # the queue folder held no file while it was being written
    files = list(folder.glob("*.cpu.msg"))
    assert len(files) == 1 and not list(folder.glob("*.part"))
    assert json.loads(files[0].read_text())["headers"]["task"] == "credence.sweep"
    with app.connection_for_read() as conn:  # and kombu's reader takes it as any message
        message = conn.SimpleQueue("cpu", no_ack=True).get(timeout=5)
        assert message.headers["task"] == "credence.sweep"


def test_a_waiting_worker_sees_a_message_when_it_arrives_not_at_its_next_look(tmp_path: Path) -> None:
    """kombu's transport sleeps its polling interval after an empty look; ours wakes on the file's arrival
    (inotify). With an interval of 30 s, a message sent while the consumer waits must reach it long before."""
    settings = Settings(data_dir=tmp_path)
    app = queue.make_celery(settings)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "polling_interval": 30.0}
    took: list[float] = []
    with app.connection_for_read() as conn:
        inbox = conn.SimpleQueue("cpu", no_ack=True)

        def consume() -> None:
            started = time.monotonic()
            message = inbox.get(timeout=40)
            took.append(time.monotonic() - started)
            assert message.headers["task"] == "credence.sweep"

        consumer = threading.Thread(target=consume)
        consumer.start()
        deadline = time.monotonic() + 10
        while conn.transport.arrivals is None:  # its first look found nothing: it waits now
            assert time.monotonic() < deadline, "the consumer never waited"
            time.sleep(0.01)
        time.sleep(0.2)
        app.send_task("credence.sweep")
        consumer.join(45)
        watch = conn.transport.arrivals.watch
    assert len(took) == 1 and took[0] < 10, took  # 30 s without the wake
    assert watch.closed, "the closed connection left its inotify descriptor open"
