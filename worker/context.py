"""The worker process's Services, built on first use and rebuilt after fork."""
from __future__ import annotations

from server.config import get_settings
from server.services import Services

Context = Services
_current: Services | None = None


def current() -> Services:
    global _current
    if _current is None:
        _current = Services(get_settings())
    return _current


def reset() -> None:
    global _current
    _current = None
