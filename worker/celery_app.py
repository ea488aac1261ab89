"""The Celery application of the workers: ``celery -A worker.celery_app worker -Q fetch,cpu``."""
from __future__ import annotations

import logging
import os

from celery.signals import (task_postrun, task_prerun, worker_init, worker_process_init, worker_process_shutdown,
                            worker_ready)

from server.config import get_settings
from server.db import dispose_all
from server.queue import make_celery
from worker import allocator, metrics
from worker.detection import jobs as detect_jobs
from worker.pipeline import runner

app = make_celery(get_settings(), name="credence-worker")
app.conf.include = ["worker.tasks"]


_warmed_s: list[float] = []


@worker_init.connect
def _warm_ruleset(**_: object) -> None:
    # Before the pool forks: every process starts with what the rules load on first use.
    if {"cpu", "gpu"} & set(app.amqp.queues.consume_from):
        try:
            _warmed_s.append(runner.warm(get_settings()))  # logged once logging is set up (worker_ready)
        except Exception:  # noqa: BLE001 - a failed warm-up only costs the first image its loads
            logging.getLogger(__name__).warning("ruleset warm-up failed", exc_info=True)


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # Pooled connections and sockets must not be shared across fork.
    dispose_all()
    allocator.keep_freed_buffers()
    from worker import context

    context.reset()
    if "gpu" in app.amqp.queues.consume_from:  # this worker's -Q, selected before the pool forked
        detect_jobs.preload(get_settings())


@task_prerun.connect
def _task_started(task_id: str = "", **_: object) -> None:
    metrics.task_started(task_id)


@task_postrun.connect
def _task_finished(task_id: str = "", task=None, state: str | None = None, **_: object) -> None:
    metrics.task_finished(task_id, getattr(task, "name", "unknown"), state)


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    if _warmed_s:
        logging.getLogger(__name__).info("ruleset warmed in %.2f s before the pool started", _warmed_s[-1])
    port, path = get_settings().worker_metrics_port, os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if port and path:
        metrics.serve(port, path)
    elif port:
        logging.getLogger(__name__).warning(
            "CREDENCE_WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: start workers with "
            "`credence worker`, which sets it, to serve metrics")


@worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
