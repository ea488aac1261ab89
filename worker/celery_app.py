"""The Celery application of the workers: ``celery -A worker.celery_app worker -Q fetch,cpu``."""
from __future__ import annotations

from celery.signals import worker_process_init

from server.config import get_settings
from server.db import dispose_all
from server.queue import make_celery

app = make_celery(get_settings(), name="credence-worker")
app.conf.include = ["worker.tasks"]


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # Pooled connections and sockets must not be shared across fork.
    dispose_all()
    from worker import context

    context.reset()
