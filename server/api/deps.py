"""Access to this app's Services from inside a request."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from flask import current_app

from server.services import Services


def services() -> Services:
    return current_app.extensions["credence"]


def enqueue(send: Callable[[Celery, Any], None], arg: Any) -> None:
    """Send a task (Services.enqueue: a broker that is down is logged, the sweeper retries)."""
    services().enqueue(send, arg)
