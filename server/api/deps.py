"""Access to this app's Services and limiter from inside a request."""
from __future__ import annotations

from flask import current_app

from server.services import Services


def services() -> Services:
    return current_app.extensions["credence"]
