"""What each task does, as plain functions over a Context: testable without a broker.

Every function is idempotent: running it twice, or after a worker died half-way, leaves the same
record. Checks only ever move from ``pending`` to ``done``; a check is never dropped.
"""
from __future__ import annotations

import logging
import threading
import time

from celery.exceptions import SoftTimeLimitExceeded

from server import models
from server.checks import records
from server.checks.progress import DONE, END, PLAN, QUEUED, START, event_of
from server.config import PIPELINE_VERSION, Settings
from server.media_types import IMAGE_TYPES, sniff
from server.queue import enqueue_analyze, enqueue_fetch
from server.verdicts import Level, Verdict, unavailable
from server.vocabulary import Stage
from worker import metrics
from worker.detection import gate as detection
from worker.banks.matcher import BankMatcher
from worker.context import Context
from worker.fetch.common import FetchLimits, FetchRefused
from worker.fetch.media import fetch
from worker.media_jobs import drop_unusable
from worker.lease import Heartbeat
from worker.timer import BACKGROUND, Call
from worker.pipeline.rules import RULES
from worker.pipeline.runner import analyze
from worker.settle import complete_from_record, completed, completing, final_verdict, hand_off, record_final
from worker.stages.budget import REFUSAL_CODES, Limits, OverBudget, check_structure
from worker.stages.decode import DecodeError, probe_dimensions

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
IN_FLIGHT = "in-flight"
DETECTING = "detecting"  # handed to the gpu queue, whose detect task records the verdict


def _finish_check(ctx: Context, check_id: str, url_hash: str | None, verdict: Verdict) -> None:
    with ctx.db.session(redoable=True) as session:
        records.complete_check(session, check_id, records.record_verdict(session, verdict))
    ctx.clock.tick()
    metrics.verdict_recorded(verdict)
    body = verdict.model_dump(mode="json")
    ctx.cache.remember(url_hash=url_hash, body=body)
    if url_hash:
        ctx.cache.release(f"inflight:{url_hash}")


class HeldProgress:
    """A task's progress events of one check or content, written together: each write is a Redis round trip
    (about 11 per fresh image, 16% of a worker's time with Redis; issue 17).

    Events wait at most ``HOLD_S``: the first one held asks the background timer (worker/timer.py) to write them
    then, so a long step shows as running within that time; the task writes what is held itself when it ends a
    step whose result others wait on (the fetch's end, the verdict). Each event keeps the time it happened.
    Also the runner's progress callback (rule, event, ms)."""

    HOLD_S = 0.05

    def __init__(self, ctx: Context, scope: str, key: str) -> None:
        self.plog, self.scope, self.key = ctx.progress, scope, key
        self._lock = threading.Lock()  # the task's thread and the timer's; held while writing, to keep the order
        self._held: list[dict] = []
        self._fresh = False
        self._due: Call | None = None

    def add(self, stage: str, event: str, **extra: object) -> None:
        with self._lock:
            self._held.append(event_of(stage, event, **extra))
            if self._due is None:
                self._due = BACKGROUND.call_in(self.HOLD_S, self.flush)

    def __call__(self, rule: str, event: str, ms: float | None) -> None:
        self.add(rule, event, **({} if ms is None else {"ms": ms}))

    def restart(self, stage: str, event: str, **extra: object) -> None:
        """Forget the key's earlier runs; this run starts with this event, written at once."""
        with self._lock:
            self._fresh = True
        self.add(stage, event, **extra)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            BACKGROUND.cancel(self._due)
            self._due = None
            held, fresh, self._held, self._fresh = self._held, self._fresh, [], False
            if held or fresh:
                self.plog.add_many(self.scope, self.key, held, fresh=fresh)


def fetch_check(ctx: Context, check_id: str) -> str:
    """Fetch a URL check through the guarded fetcher, store the bytes, hand over to analysis."""
    with ctx.db.one_statement(redoable=True) as session:
        target = records.start_fetch_attempt(session, check_id)
    if target is None:
        return "skipped"
    url, url_hash = target
    progress = HeldProgress(ctx, "check", check_id)
    progress.add(Stage.FETCH, START)
    started = time.perf_counter()
    try:
        # A video's fetch may outlast one lease; counting the attempt just renewed it.
        with Heartbeat(ctx, check_id=check_id, renewed=True):
            fetched = fetch(url or "", FetchLimits.from_settings(ctx.settings))
    except FetchRefused as exc:
        progress.add(Stage.FETCH, END, ms=round((time.perf_counter() - started) * 1000, 1), outcome=exc.code)
        progress.flush()
        metrics.FETCH_REFUSED.labels(exc.code).inc()
        verdict = unavailable(f"Could not check: {exc.reason}.", stage=Stage.FETCH, code=exc.code,
                              sha256=None, versions={"pipeline": PIPELINE_VERSION})
        _finish_check(ctx, check_id, url_hash, verdict)
        return "unavailable"
    progress.add(Stage.FETCH, END, ms=round((time.perf_counter() - started) * 1000, 1))
    progress.flush()
    sha256 = ctx.store.put(fetched.data)
    with ctx.db.session(redoable=True) as session:
        # A video over its cap is its playable start: source_size keeps the whole file's size.
        records.record_media(session, sha256=sha256, mime=fetched.mime, size=len(fetched.data),
                             source_size=fetched.source_size)
        records.record_url(session, url=url or "", url_hash=url_hash or "", sha256=sha256,
                           final_url=fetched.final_url, etag=fetched.etag)
        records.set_check_content(session, check_id, sha256)
        # The check now waits on its content: whichever analysis of these bytes finishes completes it, or the
        # verdict they already have, in the same transaction.
        found = completing(session, ctx, sha256)
    recorded = completed(ctx, found)
    if recorded is None:
        ctx.progress.add("media", sha256, "analysis", QUEUED)
        enqueue_analyze(ctx.celery, sha256)
    elif recorded.get("level") == Level.UNAVAILABLE.value:
        drop_unusable(ctx, sha256)  # seen before and unreadable then: the fetch must not keep them either
    return sha256


def bank_matcher(ctx: Context) -> BankMatcher:
    """One matcher per process; its bank index is the host's shared copy (worker/banks/index/snapshot_files.py)."""
    matcher = ctx.__dict__.get("_bank_matcher")
    if matcher is None:
        s = ctx.settings
        matcher = BankMatcher(ctx.db, s.pdq_threshold, s.phash_threshold, vpdq_frame_threshold=s.vpdq_frame_threshold,
                              vpdq_match_share=s.vpdq_match_share, index_dir=s.bank_index_path)
        ctx.__dict__["_bank_matcher"] = matcher
    return matcher


def analyze_media(ctx: Context, sha256: str, owner: str) -> str:
    """Analyse one content once, however many checks wait on it. The claim comes before the look at the record
    (a Redis SET, cheaper than the query; without Redis it claims nothing), so a fresh content costs one look."""
    holder = ctx.cache.claim(f"analyzing:{sha256}", owner, ttl_s=ctx.settings.stale_check_s)
    if holder is not None and holder != owner:
        if complete_from_record(ctx, sha256):
            return "cached"
        return IN_FLIGHT  # the caller retries shortly and then finds the holder's verdict
    try:
        with ctx.db.reading() as session:  # a fresh content only reads here: no transaction
            final = final_verdict(session, ctx, sha256) is not None
            source_size = records.source_size(session, sha256)
        if final and complete_from_record(ctx, sha256):  # analysed before, or by the holder just before the claim
            return "cached"
        data = ctx.store.get(sha256)
        if data is None:
            verdict = unavailable("Could not check: the stored copy of this file is missing.", stage=Stage.STORE,
                                  code="missing-bytes", sha256=None, versions={"pipeline": PIPELINE_VERSION})
            with ctx.db.session(redoable=True) as session:
                verdict_id = records.record_verdict(session, verdict)
                for check_id in records.complete_checks_for(session, sha256, verdict_id):
                    log.warning("check %s completed as unavailable: bytes missing", check_id)
            ctx.clock.tick()
            metrics.verdict_recorded(verdict)
            return "missing"
        refused = over_budget(data, ctx.settings)
        if refused is not None:
            return _finish_unanalysed(ctx, sha256, f"Could not check: {refused.reason}.", refused.code)
        # The analysis must know when the bytes are only a file's start (its verdict says so, and a
        # part's file hashes never match a whole file). The heartbeat keeps the sweeper off these checks.
        progress = HeldProgress(ctx, "media", sha256)
        progress.restart("analysis", PLAN, rules=[rule.name for rule in RULES])  # this run's events only
        try:
            with Heartbeat(ctx, sha256=sha256, lock_key=f"analyzing:{sha256}"):
                analysis = analyze(data, ctx.settings, matcher=bank_matcher(ctx), source_size=source_size,
                                   progress=progress)
        except SoftTimeLimitExceeded:
            progress.flush()  # the rules' last events before the verdict's
            return analysis_timed_out(ctx, sha256, ctx.settings.analysis_soft_limit_s)
        except BaseException:
            progress.flush()
            raise
        verdict, facts = analysis.verdict, analysis.facts
        media = {"sha256": sha256, "mime": facts.mime or "application/octet-stream", "size": len(data),
                 "width": facts.width, "height": facts.height, "hashes": facts.hashes, "source_size": source_size}
        if detection.is_pending(verdict.versions):
            # Not decisive and detectors are configured: the gpu queue adds detection, then records the
            # verdict and completes every check waiting on this sha256.
            with ctx.db.one_statement(redoable=True) as session:  # record_media is one upsert
                records.record_media(session, **media)
            hand_off(ctx, sha256, verdict, owner)
            progress.add(Stage.DETECT, QUEUED)
            progress.flush()
            return DETECTING
        record_final(ctx, sha256, verdict, media=media)
        progress.add("analysis", DONE, level=verdict.level.value)  # with the rules' last events: one write
        progress.flush()
        if verdict.level == Level.UNAVAILABLE:
            drop_unusable(ctx, sha256)  # nothing could be read from them: not kept (issue 15)
        return verdict.level.value
    finally:
        ctx.cache.release(f"analyzing:{sha256}")


_REFUSALS = REFUSAL_CODES | {"too-many-pixels"}


def over_budget(data: bytes, settings: Settings) -> OverBudget | DecodeError | None:
    """Why the bytes must not reach the ruleset at all: hostile structure, or an image whose decode (or a
    stage reading its metadata through Pillow, which may decode it) would pass the memory budget."""
    limits = Limits.from_settings(settings)
    try:
        if sniff(data[:512]) in IMAGE_TYPES:
            probe_dimensions(data, settings.max_pixels, limits)
        else:
            check_structure(data, limits)
    except OverBudget as exc:
        return exc
    except DecodeError as exc:  # a merely broken header is the ruleset's to report
        return exc if exc.code in _REFUSALS else None
    return None


def _finish_unanalysed(ctx: Context, sha256: str, reason: str, code: str) -> str:
    """Complete every check on this content with an ``unavailable`` verdict that says why.

    The verdict carries the sha256, so later checks of the same bytes are answered from the record
    instead of spending the budget again (a new pipeline version looks again).
    """
    verdict = unavailable(reason, stage=Stage.BUDGET, code=code, sha256=sha256, versions={"pipeline": PIPELINE_VERSION})
    for check_id in record_final(ctx, sha256, verdict):
        log.warning("check %s completed as unavailable: %s", check_id, code)
    ctx.progress.add("media", sha256, "analysis", DONE, level=verdict.level.value)
    drop_unusable(ctx, sha256)
    return "unavailable"


def analysis_timed_out(ctx: Context, sha256: str, limit_s: float) -> str:
    """The analysis passed its time limit (soft: stopped; hard: its process killed): its checks are not lost."""
    try:
        return _finish_unanalysed(ctx, sha256, f"Could not check: the analysis took longer than {limit_s:g} s "
                                  "(the limit for one file) and was stopped.", "analysis-timeout")
    finally:
        ctx.cache.release(f"analyzing:{sha256}")


def sweep(ctx: Context) -> dict[str, int]:
    """Re-enqueue checks whose lease ran out (lost message, dead worker, broker restart).

    A check's lease is renewed by the worker fetching or analysing it (worker/lease.py): a slow analysis
    keeps its checks, and only work nobody is doing any more is sent again.
    """
    counts = {"refetch": 0, "reanalyze": 0, "given_up": 0}
    with ctx.db.session() as session:
        stale = records.stale_checks(session, ctx.settings.stale_check_s)
        for check in stale:
            check.updated_at = models.utcnow()
            check.attempts += 1
        session.flush()
        session.expunge_all()
    for check in stale:
        if check.attempts >= MAX_ATTEMPTS:
            verdict = unavailable(f"Could not check: gave up after {check.attempts} attempts.", stage=Stage.SWEEP,
                                  code="gave-up", sha256=None, versions={"pipeline": PIPELINE_VERSION})
            _finish_check(ctx, check.id, check.url_hash, verdict)
            counts["given_up"] += 1
        elif check.sha256:
            if not complete_from_record(ctx, check.sha256):
                enqueue_analyze(ctx.celery, check.sha256)
            counts["reanalyze"] += 1
        else:
            enqueue_fetch(ctx.celery, check.id)
            counts["refetch"] += 1
    return counts
