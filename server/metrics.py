"""Prometheus metrics of the API process (the workers' own are in worker/metrics.py)."""
from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUEST_LATENCY = Histogram("credence_http_request_seconds", "API request latency", ["endpoint", "method", "status"])
CACHE_LOOKUPS = Counter("credence_cache_lookups_total", "Verdict cache lookups by URL", ["result"])
CACHE_HITS = CACHE_LOOKUPS.labels("hit")
CACHE_MISSES = CACHE_LOOKUPS.labels("miss")
CHECKS_CREATED = Counter("credence_checks_created_total", "Checks queued", ["source"])


def summed(path: str | os.PathLike) -> bytes:
    """The metrics of several processes (gunicorn's, or a worker's prefork children), from the files each
    writes under ``path`` in prometheus_client's multiprocess mode, summed, in the text format."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))
    return generate_latest(registry)


def fresh_dir(path: str | os.PathLike) -> Path:
    """An empty folder for one run's metric files: files left by an earlier run would be summed in."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    return folder
