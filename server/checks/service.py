"""Checks: the one place that decides how a URL or a file gets its verdict, for the API and the desk alike.

A URL is answered from the cache when it can be, else it joins the check already fetching the same
address (one fetch however many pages ask), else a new check is queued. Uploads are stored by hash and
analysed once. The front ends (server/api/checks.py, server/api/lookup.py, server/desk/) parse and render.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from server import models
from server.checks import records
from server.checks.urls import BadUrl, normalise, url_key
from server.media_store import is_sha256
from server.media_types import sniff
from server.metrics import CACHE_HITS, CACHE_MISSES, CHECKS_CREATED
from server.queue import enqueue_analyze, enqueue_fetch
from server.services import Services
from server.verdicts import detection_pending

MIN_LOOK_S = 0.03  # a waiter looks at the database at most this often: a page's verdicts arrive a few ms apart
POLL_INTERVAL_S = 0.5  # and this often without news on the verdict clock (the database is the truth, the clock a hint)
STREAM_POLL_S = 0.5  # a stream looks at the database this often without news
STREAM_GAP_S = 0.25  # and, on news, no sooner than this after its last push: verdicts finishing within it go out
# together (each push is a message and a redraw in every tab that waits)
HEARTBEAT_S = 10.0  # a stream with nothing to say sends a comment this often, so proxies keep it open
MAX_STREAM_IDS = 200  # at our ids' 32 characters, the request line fits nginx's 8 KB buffer and gunicorn's 8190


def result(url: str | None, status: str, check_id: str | None, verdict: dict[str, Any] | str | None) -> dict[str, Any]:
    """One answer as both front ends show it; ``verdict`` may be JSON text straight from the cache."""
    return {"url": url, "status": status, "check_id": check_id, "verdict": verdict}


def normalise_all(raws: Iterable[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The URLs that can be checked (normalised) and, for the others, where they were and why not."""
    good, bad = [], []
    for index, raw in enumerate(raws):
        try:
            good.append(normalise(raw))
        except BadUrl as exc:
            bad.append({"index": index, "url": str(raw)[:200], "error": str(exc)})
    return good, bad


def _pending_check(svc: Services, url: str, key: str) -> tuple[str, bool]:
    """The check id fetching this URL: an in-flight one if any, else a new one. Returns (id, created)."""
    candidate = models.new_id()
    holder = svc.cache.claim(f"inflight:{key}", candidate, ttl_s=svc.settings.stale_check_s)
    with svc.db.session() as session:
        if holder is not None and records.is_pending(session, holder):
            return holder, False
        existing = records.pending_check_for_url(session, key, svc.settings.stale_check_s)
        if existing is not None:
            return existing, False
        records.create_check(session, source="url", url=url, url_hash=key, check_id=candidate)
    if holder is not None:  # the old holder finished; take the lock over for this check
        svc.cache.release(f"inflight:{key}")
        svc.cache.claim(f"inflight:{key}", candidate, ttl_s=svc.settings.stale_check_s)
    return candidate, True


def fetch_url(svc: Services, url: str) -> str:
    """A check that fetches ``url`` (normalised) now: the in-flight one for the same address, else a new one
    sent to the fetch queue. The desk always calls this (a fact-checker wants what the address serves now)."""
    check_id, created = _pending_check(svc, url, url_key(url))
    if created:
        CHECKS_CREATED.labels("url").inc()
        svc.enqueue(enqueue_fetch, check_id)
    return check_id


def check_urls(svc: Services, urls: list[str]) -> list[dict[str, Any]]:
    """Answers for normalised URLs, in order: cached verdicts as they are, the rest as pending checks.
    A URL repeated in one request is answered once."""
    keys = {url: url_key(url) for url in urls}
    cached = svc.cache.by_urls(list(dict.fromkeys(keys.values())))
    seen: dict[str, dict[str, Any]] = {}
    for url in urls:
        if url in seen:
            continue
        verdict = cached.get(keys[url])
        seen[url] = (result(url, "done", None, verdict) if verdict is not None
                     else result(url, "pending", fetch_url(svc, url), None))
    hits = sum(1 for r in seen.values() if r["status"] == "done")
    CACHE_HITS.inc(hits)
    CACHE_MISSES.inc(len(seen) - hits)
    return [seen[url] for url in urls]


def check_upload(svc: Services, data: bytes) -> tuple[str, dict[str, Any] | None]:
    """Store by hash, reuse a current verdict, else queue one analysis. Returns (check id, verdict or None).

    Bytes whose current verdict is ``unavailable`` (nothing could be read from them) are not stored again."""
    sha256 = hashlib.sha256(data).hexdigest()
    with svc.db.session() as session:
        records.record_media(session, sha256=sha256, mime=sniff(data[:512]) or "application/octet-stream",
                             size=len(data))
        check_id = records.create_check(session, source="upload", sha256=sha256)
        current = records.current_verdict(session, sha256, svc.detectors_stamp())
        if current is not None and detection_pending(current.body.get("versions") or {}):
            current = None  # interim (detection re-running after a retraction): wait for the final verdict
        if current is not None:
            records.complete_check(session, check_id, current.id)
        body = current.body if current is not None else None
        if body is None or body.get("level") != "unavailable":
            svc.store.put(data)
    CHECKS_CREATED.labels("upload").inc()
    if body is None:
        svc.enqueue(enqueue_analyze, sha256)
    return check_id, body


def statuses(svc: Services, ids: list[str]) -> list[dict[str, Any]]:
    """Where each check stands, in the order asked; an id nobody made is ``unknown``."""
    with svc.db.session() as session:
        found = records.checks_by_id(session, ids)
    out = []
    for check_id in ids:
        if check_id not in found:
            out.append(result(None, "unknown", check_id, None))
            continue
        check, body = found[check_id]
        out.append(result(check.url, check.status, check_id, body))
    return out


def wait(svc: Services, results: list[dict[str, Any]], wait_s: float, *, until_any: bool = False) -> None:
    """Fill in verdicts that finish within ``wait_s`` (capped by the settings); the database is the truth.
    ``until_any``: return as soon as one pending check is done (a poller then shows it and asks again)."""
    deadline = time.monotonic() + min(wait_s, svc.settings.max_wait_s)
    while True:
        waiting = {r["check_id"]: r for r in results if r["status"] == "pending"}
        if not waiting:
            return
        seen = svc.clock.reading()  # before the query: a completion committed after it moves the clock
        with svc.db.reading() as session:
            done = records.done_bodies(session, list(waiting))
        for check_id, body in done.items():
            waiting[check_id].update(status="done", verdict=body)
        finished = len(done)
        if finished == len(waiting) or (until_any and finished) or time.monotonic() + MIN_LOOK_S > deadline:
            return
        svc.clock.wait_for_news(seen, time.monotonic() + MIN_LOOK_S, min(deadline, time.monotonic() + POLL_INTERVAL_S))


def events(svc: Services, ids: list[str], max_s: float | None = None) -> Iterator[tuple[str, Any]]:
    """Push, not poll: ``("result", result)`` for each check as it is done (an id nobody made at once, as
    ``unknown``), then ``("done", [])`` once all are, or ``("timeout", still_pending_ids)`` after ``max_s``
    (capped by ``max_stream_s``: each open stream holds a server thread). ``("heartbeat", None)`` after each
    ``HEARTBEAT_S`` without news. A done check whose verdict row is missing counts as pending, as in ``wait``.
    Repeated ids are answered once; the front end bounds the count (``MAX_STREAM_IDS``)."""
    cap = svc.settings.max_stream_s
    deadline = time.monotonic() + (cap if max_s is None else min(max_s, cap))
    waiting = list(dict.fromkeys(ids))
    quiet_since = time.monotonic()
    pushed_at = -STREAM_GAP_S
    first = True
    while True:
        seen = svc.clock.reading()  # before the look, as in wait()
        with svc.db.reading() as session:  # a look every few ms on a busy page: no transaction around it
            found = records.checks_by_id(session, waiting)
        still = []
        for check_id in waiting:
            if check_id not in found:
                if first:
                    yield "result", result(None, "unknown", check_id, None)
                continue
            check, body = found[check_id]
            if check.status == "done" and body is not None:
                quiet_since = pushed_at = time.monotonic()
                yield "result", result(check.url, "done", check_id, body)
            else:
                still.append(check_id)
        waiting, first = still, False
        if not waiting:
            yield "done", []
            return
        if time.monotonic() + STREAM_POLL_S > deadline:
            yield "timeout", waiting
            return
        if time.monotonic() - quiet_since >= HEARTBEAT_S:
            quiet_since = time.monotonic()
            yield "heartbeat", None
        now = time.monotonic()
        svc.clock.wait_for_news(seen, max(now + MIN_LOOK_S, pushed_at + STREAM_GAP_S), now + STREAM_POLL_S)


def lookup(svc: Services, digests: list[str]) -> list[dict[str, Any]]:
    """Privacy mode: verdicts by SHA-256 only, never a fetch. Raises BadDigests naming the malformed ones."""
    digests = [d.lower() for d in digests]
    bad = [d for d in digests if not is_sha256(d)]
    if bad:
        raise BadDigests(bad[:10])
    known = svc.cache.by_shas(list(dict.fromkeys(digests)))
    return [{**result(None, "done" if known.get(d) else "unknown", None, known.get(d)), "sha256": d}
            for d in digests]


class BadDigests(ValueError):
    """Lookup digests that are not 64 hex characters (the first ten)."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__("expected SHA-256 digests as 64 hex characters")
        self.digests = digests
