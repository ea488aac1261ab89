"""Access to this app's Services and limiter from inside a request."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery
from flask import current_app

from server.services import Services

log = logging.getLogger(__name__)


def services() -> Services:
    return current_app.extensions["credence"]


def enqueue(send: Callable[[Celery, Any], None], arg: Any) -> None:
    """Send a task; if the broker is down the work is already recorded and the sweeper retries it."""
    try:
        send(services().celery, arg)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue %s for %s", getattr(send, "__name__", send), arg)
