"""What the workers are doing now: per-stage events of a check (its fetch) and of a content (its analysis).

The record keeps verdicts, not progress: a verdict's timings only say what happened once everything is done.
Workers append small events here as they go ({"stage", "event", "at"} with ``ms`` on an end), the desk
reads them to show each stage queued, running or done with its start and end (issue 21).

Kept in Redis (one short list per key, with a TTL) when Redis is configured; in the embedded mode (no Redis,
one host) in small files under the data folder. Progress is never worth a failed job: a write that fails is
logged and dropped, and a reader without events falls back to what the record says.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from server.checks.cache import PREFIX
from server.vocabulary import Stage

log = logging.getLogger(__name__)
TTL_S = 3600
MAX_EVENTS = 200  # a run writes about 25 (two per rule); more is a loop, and the newest are kept
PRUNE_EVERY_S = 300.0
CLOCK_SLACK_S = 1.0  # API and workers may run on hosts whose clocks differ a little
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# Raw appends: a text-mode open() builds three file objects per write, most of a write's cost (issue 17).
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)

# Event names.
PLAN = "plan"  # an analysis starts; ``rules`` lists every rule it may run, in order
START, END, SKIP = "start", "end", "skip"  # one rule (or the fetch, or detection)
QUEUED = "queued"  # handed to a queue: ``stage`` says which work waits
DONE = "done"  # the content's verdict is recorded


def now() -> float:
    return time.time()


def event_of(stage: str, event: str, **extra: Any) -> dict[str, Any]:
    """One event, stamped now (a writer may hold it and append it with the next: ``ProgressLog.add_many``)."""
    return {"stage": stage, "event": event, "at": round(now(), 4), **extra}


class ProgressLog:
    """Append-only event lists per ``check:<id>`` or ``media:<sha256>``, newest run only for a content."""

    def __init__(self, client: redis.Redis | None, folder: Path | None, ttl_s: int = TTL_S) -> None:
        self.client = client
        self.folder = folder
        self.ttl_s = ttl_s
        self._pruned = 0.0

    def _key(self, scope: str, key: str) -> str | None:
        return f"{scope}-{key}" if scope in ("check", "media") and key and _SAFE_KEY.match(key) else None

    def add(self, scope: str, key: str, stage: str, event: str, **extra: Any) -> None:
        """Append one event; never raises."""
        self.add_many(scope, key, [event_of(stage, event, **extra)])

    def add_many(self, scope: str, key: str, events: list[dict[str, Any]], *, fresh: bool = False) -> None:
        """Append events made by ``event_of`` (each with its own time) in one write; never raises. ``fresh``: forget
        earlier runs of ``key`` first (a new analysis of the same content starts), in the same round trip."""
        name = self._key(scope, key)
        if name is None or not (events or fresh):
            return
        lines = [json.dumps(e, separators=(",", ":")) for e in events]
        try:
            if self.client is not None:
                pipe = self.client.pipeline(transaction=False)
                list_key = f"{PREFIX}progress:{name}"
                if fresh:
                    pipe.delete(list_key)
                if lines:
                    pipe.rpush(list_key, *lines)
                    pipe.ltrim(list_key, -MAX_EVENTS, -1)
                    pipe.expire(list_key, self.ttl_s)
                pipe.execute()
            elif self.folder is not None:
                path = os.path.join(self.folder, f"{name}.jsonl")
                if fresh:
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                    self._prune()
                if not lines:
                    return
                try:
                    fd = os.open(path, _APPEND, 0o666)
                except FileNotFoundError:  # the first event of this folder's life
                    self.folder.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path, _APPEND, 0o666)
                try:  # one short append: whole lines even with two writers
                    os.write(fd, "".join(line + "\n" for line in lines).encode())
                finally:
                    os.close(fd)
        except (redis.RedisError, OSError) as exc:
            log.warning("progress of %s not recorded: %s", name, exc)

    def restart(self, scope: str, key: str) -> None:
        """Forget earlier runs of ``key``."""
        self.add_many(scope, key, [], fresh=True)

    def _prune(self) -> None:
        """Files past the TTL are deleted now and then (Redis expires its lists itself)."""
        if self.folder is None or now() - self._pruned < PRUNE_EVERY_S or not self.folder.is_dir():
            return
        self._pruned = now()
        cutoff = now() - self.ttl_s
        with os.scandir(self.folder) as entries:
            for entry in entries:
                try:
                    if entry.name.endswith(".jsonl") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue

    def read_many(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Events per (scope, key), oldest first; unknown or expired keys read as no events."""
        wanted = [(scope, key) for scope, key in dict.fromkeys(pairs) if self._key(scope, key)]
        out: dict[tuple[str, str], list[dict[str, Any]]] = {pair: [] for pair in wanted}
        if not wanted:
            return out
        try:
            if self.client is not None:
                pipe = self.client.pipeline(transaction=False)
                for scope, key in wanted:
                    pipe.lrange(f"{PREFIX}progress:{self._key(scope, key)}", 0, -1)
                for pair, lines in zip(wanted, pipe.execute()):
                    out[pair] = _parse(lines)
            elif self.folder is not None:
                cutoff = now() - self.ttl_s
                for pair in wanted:
                    path = self.folder / f"{self._key(*pair)}.jsonl"
                    try:
                        if path.stat().st_mtime >= cutoff:
                            out[pair] = _parse(path.read_text(encoding="utf-8").splitlines()[-MAX_EVENTS:])
                    except FileNotFoundError:
                        continue
        except (redis.RedisError, OSError) as exc:
            log.warning("progress not readable, showing the record only: %s", exc)
        return out


def _parse(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(event, dict) and isinstance(event.get("at"), (int, float)):
            out.append(event)
    return out


# ---------------------------------------------------------------------------- reading: stage by stage

def matches(name: str, rules: tuple[str, ...]) -> bool:
    """Whether a rule (or timing key) belongs to a stage named by its rules' prefixes; the detection gate is
    part of the analysis, not of detection."""
    return name != Stage.DETECT_GATE and any(name == r or name.startswith(r) for r in rules)


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")


def relevant_run(events: list[dict[str, Any]], since: float | None) -> list[dict[str, Any]]:
    """A content's events only if its latest run could be this check's: a run that was over before the check
    was made answered an earlier check (this one was completed from the record)."""
    done = [e["at"] for e in events if e.get("event") == DONE]
    if since is not None and done and done[-1] < since - CLOCK_SLACK_S:
        return []
    return events


def stage_progress(rules: tuple[str, ...], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A stage's state from its rules' events: None when the events say nothing about it.

    The run's plan (the rules it may run, in order) tells which of the stage's rules are still to come, so a
    stage is done only once all of them ended or were skipped, and a stage whose rules have not started
    waits; nothing shows "running" before a worker said it started."""
    plan = next((e.get("rules") for e in reversed(events) if e.get("event") == PLAN), None)
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, float]] = {}
    skipped: set[str] = set()
    for e in events:
        name = e.get("stage", "")
        if not matches(name, rules):
            continue
        if e.get("event") == START:
            started.setdefault(name, e["at"])
        elif e.get("event") == END:
            ended[name] = (e["at"], float(e.get("ms") or 0.0))
        elif e.get("event") == SKIP:
            skipped.add(name)
    mine = [r for r in plan if matches(r, rules)] if isinstance(plan, list) else list(started)
    if not mine and not started:
        return None
    out: dict[str, Any] = {}
    if started:
        out["started_at"] = iso(min(started.values()))
    if mine and all(r in ended or r in skipped for r in mine):
        if not ended:
            return {"state": "skipped", "note": "not applicable"}
        out.update(state="done", ended_at=iso(max(at for at, _ in ended.values())),
                   ms=round(sum(ms for _, ms in ended.values()), 1))
        return out
    out["state"] = "running" if started else "waiting"
    return out


def queued_for(stage: str, events: list[dict[str, Any]]) -> float | None:
    """When work for ``stage`` was handed to its queue, if it was and has not started since."""
    at = None
    for e in events:
        if e.get("stage") == stage and e.get("event") == QUEUED:
            at = e["at"]
        elif e.get("stage") == stage and e.get("event") in (START, END):
            at = None
    return at


def ran_plan(events: list[dict[str, Any]]) -> bool:
    """Whether the latest analysis run got through its ruleset (every planned rule ended or was skipped)."""
    plan = next((e.get("rules") for e in reversed(events) if e.get("event") == PLAN), None)
    if not isinstance(plan, list):
        return False
    finished = {e.get("stage") for e in events if e.get("event") in (END, SKIP)}
    return all(r in finished for r in plan)


def done_at(events: list[dict[str, Any]]) -> float | None:
    return next((e["at"] for e in reversed(events) if e.get("event") == DONE), None)
