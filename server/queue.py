"""Celery configuration shared by the API (which only sends tasks by name) and the workers.

The API never imports ``worker``: it builds a bare Celery client from the same settings and
enqueues ``credence.*`` task names onto the ``fetch`` / ``cpu`` / ``gpu`` queues.
"""
from __future__ import annotations

import os
import socket
import uuid
from queue import Empty
from time import monotonic, sleep
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

try:
    from inotify_simple import INotify, flags
except ImportError:  # not Linux: the embedded broker polls
    INotify = None

from server.config import EMBEDDED_BROKER_SCHEME, Settings


class AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, but a message file appears in the queue folder whole.

    kombu creates the file in the folder, then writes it: a worker polling the folder can take the file
    while it is still empty, fail to parse it and stop consuming (seen: the embedded worker stopped with a
    JSONDecodeError and every check stayed pending). Written beside the queue under a name no queue reads,
    then renamed in, the message is either absent or complete."""

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # "<queue>.msg.part": never matched as "<queue>.msg"
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Arrivals:
    """Waits until a message file arrives in the broker folder (inotify), or ``seconds`` pass.

    kombu's filesystem transport sleeps its polling interval (0.1 s here) whenever the folder had nothing for it,
    so a message waited 50 ms on average to be seen: the start of every page, and every hand-over the worker had
    not prefetched. Messages arrive by rename (AtomicFilesystemChannel), so IN_MOVED_TO says one is there. Events
    stay queued between waits, so a file renamed in after the last look ends the next wait at once. Without
    inotify (not Linux, or no watch left) it sleeps, as kombu does."""

    def __init__(self, folder: str) -> None:
        self.watch = None
        if INotify is not None:
            try:
                self.watch = INotify()
                self.watch.add_watch(folder, flags.MOVED_TO)
            except OSError:
                self.close()

    def wait(self, seconds: float) -> None:
        if self.watch is None:
            sleep(seconds)
        else:
            self.watch.read(timeout=max(1, int(seconds * 1000)))  # every queued event: the next wait starts clean

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicFilesystemChannel
    arrivals: Arrivals | None = None

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """kombu's virtual ``drain_events`` (5.7), waking on an arrival instead of sleeping the interval."""
        time_start = monotonic()
        get = self.cycle.get
        polling_interval = self.polling_interval
        if timeout and polling_interval and polling_interval > timeout:
            polling_interval = timeout
        while True:
            try:
                get(self._deliver, timeout=timeout)
            except Empty:
                if timeout is not None and monotonic() - time_start >= timeout:
                    raise socket.timeout()
                if polling_interval is not None:
                    if self.arrivals is None:  # the consumer's process only: a sender never drains
                        self.arrivals = Arrivals(self.client.transport_options["data_folder_in"])
                    self.arrivals.wait(polling_interval)
            else:
                break

    def close_connection(self, connection: Any) -> None:
        super().close_connection(connection)
        if self.arrivals is not None:  # a reconnection makes a new transport: its watch, not another fd
            self.arrivals.close()
            self.arrivals = None


TRANSPORT_ALIASES[EMBEDDED_BROKER_SCHEME] = f"{__name__}:AtomicFilesystemTransport"

QUEUES = ("fetch", "cpu", "gpu")
TASK_ROUTES = {
    "credence.fetch": {"queue": "fetch"},
    "credence.analyze": {"queue": "cpu"},
    "credence.sweep": {"queue": "cpu"},
    "credence.hash_entry": {"queue": "cpu"},
    "credence.rematch": {"queue": "cpu"},
    "credence.rematch_removed": {"queue": "cpu"},
    "credence.detect": {"queue": "gpu"},
    "credence.evict_media": {"queue": "cpu"},
    "credence.forensics": {"queue": "cpu"},
    "credence.revalidate_manifest": {"queue": "cpu"},
    "credence.expire_manifests": {"queue": "cpu"},
    "credence.heatmap": {"queue": "gpu"},  # where the detectors are loaded
    "credence.pull_peers": {"queue": "fetch"},
    "credence.pull_peer": {"queue": "fetch"},
}


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "task_ignore_result": True,  # the database is the record, not the result backend
        "task_acks_late": True,  # a task killed mid-run is redelivered, not lost
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The worker's timer wakes at most this often (Celery's default: 1 s). It is what flushes a detection
        # batch that did not fill: at 1 s a batch waited up to a second, not detect_batch_wait_s, and its
        # messages held the worker's prefetch slots meanwhile, so every other task of the page waited too.
        "worker_timer_precision": min(1.0, settings.detect_batch_wait_s),
        # A pool process that consumes the gpu queue loads its detectors before saying it is up
        # (worker/detection/jobs.py preload: 2.3 s for the baseline on 2 cores, more for bigger models); past
        # Celery's default of 4 s the pool would kill it and start another, which would load them again.
        "worker_proc_alive_timeout": 120.0,
        "task_routes": TASK_ROUTES,
        "task_default_queue": "cpu",
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Every task is bounded (the analysis has its own, shorter, limits on its decorator). The hard limit
        # needs the prefork pool: the pool kills the child process, which native code cannot ignore.
        "task_soft_time_limit": settings.task_soft_limit_s,
        "task_time_limit": settings.task_hard_limit_s,
        "beat_schedule": {
            "sweep-stale-checks": {"task": "credence.sweep", "schedule": 30.0},
            "pull-peers": {"task": "credence.pull_peers", "schedule": float(settings.peer_pull_s)},
            "evict-media": {"task": "credence.evict_media", "schedule": float(settings.media_evict_interval_s)},
            **({"expire-manifests": {"task": "credence.expire_manifests", "schedule": 3600.0}}
               if settings.repository_retention_days else {}),
        },
        "beat_schedule_filename": str(settings.resolved_data_dir / "celerybeat-schedule"),
    }
    if settings.embedded_broker:
        folder = settings.resolved_data_dir / "broker"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.1,  # the default 1 s makes the embedded pipeline crawl
        }
    else:
        # kombu sweeps for unacknowledged messages every interval x throttle seconds (100 s by default), so a
        # dead worker's tasks would wait that long past the visibility timeout; sweep at a third of it instead.
        conf["broker_transport_options"] = {
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 3)),
            "unacked_restore_throttle": 1,
        }
    return conf


def make_celery(settings: Settings, name: str = "credence") -> Celery:
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


def enqueue_fetch(app: Celery, check_id: str) -> None:
    app.send_task("credence.fetch", args=[check_id], **TASK_ROUTES["credence.fetch"])


def enqueue_analyze(app: Celery, sha256: str) -> None:
    app.send_task("credence.analyze", args=[sha256], **TASK_ROUTES["credence.analyze"])


def enqueue_hash_entry(app: Celery, entry_id: str) -> None:
    app.send_task("credence.hash_entry", args=[entry_id], **TASK_ROUTES["credence.hash_entry"])


def enqueue_rematch(app: Celery, entry_id: str) -> None:
    app.send_task("credence.rematch", args=[entry_id], **TASK_ROUTES["credence.rematch"])


def enqueue_rematch_removed(app: Celery, hashes: dict[str, Any]) -> None:
    """Re-match what a deleted entry matched: it goes by the entry's hashes, as the row is gone."""
    app.send_task("credence.rematch_removed", args=[hashes], **TASK_ROUTES["credence.rematch_removed"])


def enqueue_pull_peer(app: Celery, peer_id: str) -> None:
    app.send_task("credence.pull_peer", args=[peer_id], **TASK_ROUTES["credence.pull_peer"])


def enqueue_detect(app: Celery, sha256: str, partial: dict[str, Any]) -> None:
    """Hand a content to the gpu queue with what the cpu analysis found (evidence, versions, timings)."""
    app.send_task("credence.detect", args=[sha256, partial], **TASK_ROUTES["credence.detect"])


def enqueue_forensics(app: Celery, sha256: str) -> None:
    """Compute the forensic views of a stored image on demand (the desk's report page asks)."""
    app.send_task("credence.forensics", args=[sha256], **TASK_ROUTES["credence.forensics"])


def enqueue_heatmap(app: Celery, sha256: str) -> None:
    """Make a detector's heat map of a stored image on demand (the desk's report page asks)."""
    app.send_task("credence.heatmap", args=[sha256], **TASK_ROUTES["credence.heatmap"])


def enqueue_revalidate_manifest(app: Celery, manifest_id: str) -> None:
    """Re-validate an imported manifest store against this instance's trust lists (a bounded worker task)."""
    app.send_task("credence.revalidate_manifest", args=[manifest_id], **TASK_ROUTES["credence.revalidate_manifest"])
