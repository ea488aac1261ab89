"""Read-through verdict cache: Redis when configured, the database otherwise or when Redis fails.

Keys carry the pipeline version, so a new pipeline simply misses: ``v<P>:url:<url_hash>`` -> sha256
(or a whole unavailable verdict), ``v<P>:verdict:<sha256>`` -> verdict JSON text. Values stay JSON
text end to end so a cached batch is answered without parsing or re-serialising verdicts. Everything
here is rebuildable from the record: a Redis restart costs time, never verdicts.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import Text, cast, select

from server import models
from server.config import PIPELINE_VERSION
from server.db import Database
from server.checks.records import is_current

log = logging.getLogger(__name__)
PREFIX = "credence:"
UNAVAILABLE_TTL_S = 300

# url key -> sha256 pointer -> verdict text, resolved inside Redis: one round trip per batch.
# (Reads keys it is not passed, so it needs a single Redis, not a cluster.)
_BY_URLS_LUA = """
local out = {}
local pointers = redis.call('MGET', unpack(KEYS))
for i, value in ipairs(pointers) do
  if value and string.sub(value, 1, 1) ~= '{' then
    out[i] = redis.call('GET', ARGV[1] .. value)
  else
    out[i] = value
  end
end
return out
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class VerdictCache:
    def __init__(self, db: Database, client: redis.Redis | None, ttl_s: int,
                 detectors: Callable[[], str] = lambda: "none") -> None:
        self.db = db
        self.client = client
        self.ttl_s = ttl_s
        self.detectors = detectors  # the configured detectors' stamp, read per call: models may change
        self._by_urls = client.register_script(_BY_URLS_LUA) if client is not None else None

    def _keys(self) -> tuple[str, str, str]:
        """(url prefix, verdict prefix, detectors stamp), read once per call: keys carry the pipeline version
        and the configured detectors, so a change of either makes every cached verdict a miss, and the
        record (filtered by ``is_current``) decides what still stands."""
        stamp = self.detectors()
        generation = f"{PREFIX}v{PIPELINE_VERSION}.{stamp}:"
        return generation + "url:", generation + "verdict:", stamp

    def _redis(self, op: str, *args: Any, **kwargs: Any) -> Any:
        if self.client is None:
            return None
        try:
            return getattr(self.client, op)(*args, **kwargs)
        except redis.RedisError as exc:  # degrade to the database, never fail a request
            log.warning("redis %s failed, using the database: %s", op, exc)
            return None

    def _set_many(self, items: dict[str, str], ttl_s: int) -> None:
        if self.client is None or not items:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, ex=ttl_s)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("redis write failed: %s", exc)

    def by_urls(self, url_hashes: list[str]) -> dict[str, str]:
        """Verdict JSON text for every URL that has a current verdict; misses fall back to the record."""
        found: dict[str, str] = {}
        url_key, verdict_key, stamp = self._keys()
        if self._by_urls is not None and url_hashes:
            try:
                values = self._by_urls(keys=[url_key + h for h in url_hashes], args=[verdict_key])
            except redis.RedisError as exc:  # degrade to the database, never fail a request
                log.warning("redis lookup failed, using the database: %s", exc)
                values = []
            found = {h: _text(v) for h, v in zip(url_hashes, values) if v}
        missing = [h for h in url_hashes if h not in found]
        if missing:
            found.update(self._urls_from_record(missing, url_key, verdict_key, stamp))
        return found

    def _urls_from_record(self, url_hashes: list[str], url_key: str, verdict_key: str, stamp: str) -> dict[str, str]:
        with self.db.session() as session:
            rows = session.execute(
                # as stored text: no JSON decode and re-encode on the way out
                select(models.MediaUrl.url_hash, models.Verdict.sha256, cast(models.Verdict.body, Text))
                .join(models.Verdict, models.Verdict.sha256 == models.MediaUrl.sha256)
                .where(models.MediaUrl.url_hash.in_(url_hashes), is_current(stamp))
                .order_by(models.Verdict.created_at)
            ).all()
        found: dict[str, str] = {}
        refill: dict[str, str] = {}
        for url_hash, sha256, text in rows:  # oldest first: the newest verdict wins
            found[url_hash] = text
            refill[url_key + url_hash] = sha256
            refill[verdict_key + sha256] = text
        self._set_many(refill, self.ttl_s)
        return found

    def by_shas(self, digests: list[str]) -> dict[str, str]:
        """Current verdict JSON text per content: one MGET, then one query for the misses."""
        _, verdict_key, stamp = self._keys()
        values = self._redis("mget", [verdict_key + d for d in digests]) if digests else None
        found = {d: _text(v) for d, v in zip(digests, values or []) if v is not None}
        missing = [d for d in digests if d not in found]
        if missing:
            with self.db.session() as session:
                rows = session.execute(
                    select(models.Verdict.sha256, cast(models.Verdict.body, Text))
                    .where(models.Verdict.sha256.in_(missing), is_current(stamp))
                    .order_by(models.Verdict.created_at)
                ).all()
            refill = {sha256: text for sha256, text in rows}  # newest last wins
            found.update(refill)
            self._set_many({verdict_key + k: v for k, v in refill.items()}, self.ttl_s)
        return found

    def remember(self, *, url_hash: str | None, body: dict[str, Any]) -> None:
        """Store a verdict just made; unavailable verdicts are kept briefly and by URL only."""
        sha256 = body.get("sha256")
        text = json.dumps(body)
        url_key, verdict_key, _ = self._keys()
        if sha256:
            items = {verdict_key + sha256: text}
            if url_hash:
                items[url_key + url_hash] = sha256
            self._set_many(items, self.ttl_s)
        elif url_hash:
            self._set_many({url_key + url_hash: text}, UNAVAILABLE_TTL_S)

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
        return _text(holder)

    def extend(self, key: str, ttl_s: int) -> None:
        """Renew a held lock's lifetime (a worker's heartbeat); a lock already gone stays gone."""
        self._redis("expire", f"{PREFIX}{key}", ttl_s)

    def release(self, key: str) -> None:
        self._redis("delete", f"{PREFIX}{key}")

    def ping(self) -> bool:
        return bool(self._redis("ping")) if self.client is not None else True


def redis_client(url: str) -> redis.Redis | None:
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30)
