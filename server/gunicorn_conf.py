"""gunicorn settings for the API in production (docker-compose.yml: ``--config python:server.gunicorn_conf``).

gunicorn runs several API processes; each counts its own requests, so /metrics would show whichever
process answered. With ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its metrics to files there
and /metrics sums them (server/api/health.py); the folder must start empty, and a dead process's files
are marked so.
"""
from __future__ import annotations

import os

# The longest request line gunicorn accepts (its maximum; default 4094): a stream of 200 check ids
# (GET /api/v1/checks/events, about 6.7 KB) must fit, as it fits nginx's 8 KB header buffer in front.
limit_request_line = 8190


def on_starting(server) -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        # Made before server.metrics is imported: prometheus_client refuses a multiprocess folder that is missing.
        os.makedirs(path, exist_ok=True)
        from server.metrics import fresh_dir

        fresh_dir(path)


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
