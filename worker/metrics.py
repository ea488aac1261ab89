"""Prometheus metrics of the workers: what they finished, how long each rule took, what the guard refused.

Celery's prefork children each count their own work, so the metrics use prometheus_client's multiprocess
mode: every process writes to files under ``PROMETHEUS_MULTIPROC_DIR``, which ``credence worker`` sets
(a fresh folder per run) before Celery starts, and the main process serves their sum on
``CREDENCE_WORKER_METRICS_PORT``. Under ``credence serve`` the API's /metrics adds them to its own
(server/metrics.py).
"""
from __future__ import annotations

import logging
import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from server.verdicts import Verdict
from server.vocabulary import Kind

log = logging.getLogger(__name__)

_SECONDS_BUCKETS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 120)

TASKS = Counter("credence_worker_tasks_total", "Tasks the workers finished, by outcome", ["task", "outcome"])
TASK_SECONDS = Histogram("credence_worker_task_seconds", "How long each task ran", ["task"],
                         buckets=_SECONDS_BUCKETS)
VERDICTS = Counter("credence_verdicts_total", "Verdicts the workers recorded after analysis", ["level"])
RULE_SECONDS = Histogram("credence_rule_seconds", "How long each pipeline rule took on one item", ["rule"],
                         buckets=_SECONDS_BUCKETS)
RULE_FAILURES = Counter("credence_rule_failures_total", "Rules that failed on an item and became a note", ["rule"])
FETCH_REFUSED = Counter("credence_fetch_refused_total", "Fetches the guard refused, by reason", ["code"])
BANK_INDEX_ROWS = Gauge("credence_bank_index_rows", "Rows in the newest in-memory bank index", ["kind"],
                        multiprocess_mode="mostrecent")
BANK_INDEX_SECONDS = Histogram("credence_bank_index_build_seconds", "Loading and building the bank index",
                               buckets=(0.01, 0.1, 1, 5, 15, 30, 60, 120))


def verdict_recorded(verdict: Verdict) -> None:
    """Count a verdict made by analysis, with the time of each rule that ran and each that failed."""
    VERDICTS.labels(verdict.level.value).inc()
    for rule, ms in (verdict.timings or {}).items():
        RULE_SECONDS.labels(rule).observe(ms / 1000)
    for item in verdict.evidence:
        if item.kind == Kind.STAGE_ERROR:
            RULE_FAILURES.labels(item.stage).inc()


_started: dict[str, float] = {}


def task_started(task_id: str) -> None:
    _started[task_id] = time.perf_counter()


def task_finished(task_id: str, task_name: str, state: str | None) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(task_name).observe(time.perf_counter() - started)
    TASKS.labels(task_name, (state or "unknown").lower()).inc()


def serve(port: int, path: str | os.PathLike) -> None:
    """Serve the summed metrics from this (the main worker) process."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    start_http_server(port, registry=registry)
    log.info("worker metrics on port %d", port)
