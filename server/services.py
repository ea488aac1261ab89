"""The handles every process needs (database, cache, media store, queue client), built lazily.

The API keeps one in ``app.extensions``; each worker process keeps one in ``worker.context``.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery import Celery

from server.checks.cache import VerdictCache, redis_client
from server.checks.clock import VerdictClock
from server.checks.progress import ProgressLog
from server.detection.manifest import configured_stamp
from server.config import Settings
from server.db import Database
from server.media_store import MediaStore
from server.queue import make_celery

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.sqlalchemy_url)

    @cached_property
    def cache(self) -> VerdictCache:
        return VerdictCache(self.db, redis_client(self.settings.redis_url), self.settings.cache_ttl_s,
                            detectors=self.detectors_stamp)

    def detectors_stamp(self) -> str:
        """The detectors verdicts are made with now: stored verdicts made with others are recomputed."""
        return configured_stamp(self.settings)

    @cached_property
    def progress(self) -> ProgressLog:
        """Stage events of checks in flight (server/checks/progress.py): beside the cache in Redis, else
        files in the data folder."""
        client = self.cache.client
        return ProgressLog(client, None if client is not None else self.settings.resolved_data_dir / "progress")

    @cached_property
    def clock(self) -> VerdictClock:
        """Moves when checks are completed (server/checks/clock.py): beside the cache in Redis, else a file."""
        client = self.cache.client
        return VerdictClock(client, None if client is not None else self.settings.resolved_data_dir / "verdict-clock")

    @cached_property
    def store(self) -> MediaStore:
        return MediaStore(self.settings.media_path)

    @cached_property
    def celery(self) -> Celery:
        return make_celery(self.settings)

    def enqueue(self, send: Callable[[Celery, Any], None], arg: Any) -> None:
        """Send a task; if the broker is down the work is already recorded and the sweeper retries it."""
        try:
            send(self.celery, arg)
        except Exception:  # noqa: BLE001
            log.exception("could not enqueue %s for %s", getattr(send, "__name__", send), arg)
