"""Read-through verdict cache: Redis when configured, the database otherwise or when Redis fails.

Keys: ``url:<url_hash>`` -> sha256 (or a whole unavailable verdict), ``verdict:<sha256>`` -> verdict
JSON. Everything here is rebuildable from the record, so a Redis restart costs time, never verdicts.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import redis

from server import records
from server.config import PIPELINE_VERSION
from server.db import Database

log = logging.getLogger(__name__)
PREFIX = "credence:"
UNAVAILABLE_TTL_S = 300


class VerdictCache:
    def __init__(self, db: Database, client: redis.Redis | None, ttl_s: int) -> None:
        self.db = db
        self.client = client
        self.ttl_s = ttl_s

    @staticmethod
    def _fresh(body: dict[str, Any] | None) -> dict[str, Any] | None:
        if body and body.get("versions", {}).get("pipeline") == PIPELINE_VERSION:
            return body
        return None

    def _redis(self, op: str, *args: Any) -> Any:
        if self.client is None:
            return None
        try:
            return getattr(self.client, op)(*args)
        except redis.RedisError as exc:  # degrade to the database, never fail a request
            log.warning("redis %s failed, using the database: %s", op, exc)
            return None

    def by_sha(self, sha256: str) -> dict[str, Any] | None:
        raw = self._redis("get", f"{PREFIX}verdict:{sha256}")
        if raw:
            return self._fresh(json.loads(raw))
        with self.db.session() as session:
            row = records.current_verdict(session, sha256)
            body = row.body if row else None
        if body:
            self._redis("set", f"{PREFIX}verdict:{sha256}", json.dumps(body), self.ttl_s)
        return body

    def by_url(self, url_hash: str) -> dict[str, Any] | None:
        raw = self._redis("get", f"{PREFIX}url:{url_hash}")
        if raw:
            raw = raw.decode() if isinstance(raw, bytes) else raw
            if raw.startswith("{"):
                return self._fresh(json.loads(raw))
            return self.by_sha(raw)
        with self.db.session() as session:
            sha256 = records.sha_for_url(session, url_hash)
        if sha256 is None:
            return None
        body = self.by_sha(sha256)
        if body:
            self._redis("set", f"{PREFIX}url:{url_hash}", sha256, self.ttl_s)
        return body

    def remember(self, *, url_hash: str | None, body: dict[str, Any]) -> None:
        """Store a verdict just made; unavailable verdicts are kept briefly and by URL only."""
        sha256 = body.get("sha256")
        if sha256:
            self._redis("set", f"{PREFIX}verdict:{sha256}", json.dumps(body), self.ttl_s)
            if url_hash:
                self._redis("set", f"{PREFIX}url:{url_hash}", sha256, self.ttl_s)
        elif url_hash:
            self._redis("set", f"{PREFIX}url:{url_hash}", json.dumps(body), UNAVAILABLE_TTL_S)

    def claim(self, key: str, owner: str, ttl_s: int) -> str | None:
        """Redis lock: None if ``owner`` now holds ``key``, else the current holder.

        Without Redis nothing is claimed (returns None): work may then run twice, which is
        harmless because every job is idempotent.
        """
        if self.client is None:
            return None
        try:
            if self.client.set(f"{PREFIX}{key}", owner, nx=True, ex=ttl_s):
                return None
            holder = self.client.get(f"{PREFIX}{key}")
        except redis.RedisError:
            return None
        if holder is None:
            return None
        return holder.decode() if isinstance(holder, bytes) else holder

    def release(self, key: str) -> None:
        self._redis("delete", f"{PREFIX}{key}")

    def ping(self) -> bool:
        return bool(self._redis("ping")) if self.client is not None else True


def redis_client(url: str) -> redis.Redis | None:
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
