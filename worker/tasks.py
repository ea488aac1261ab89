"""Thin Celery tasks: load the context, call the job, nothing else."""
from __future__ import annotations

import logging

from celery.exceptions import TimeLimitExceeded
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from worker import context, forensics_jobs, jobs, media_jobs, provenance_jobs
from worker.banks import jobs as bank_jobs
from worker.exchange import peer_pull
from worker.celery_app import app
from worker.detection import jobs as detect_jobs
from server.config import get_settings
from celery_batches import Batches

_BATCH = get_settings()

# Database or Redis hiccups are retried with backoff; the check stays pending meanwhile.
TRANSIENT = {"autoretry_for": (SQLAlchemyError, RedisError, OSError), "retry_backoff": 1,
             "retry_backoff_max": 60, "max_retries": 8}


@app.task(name="credence.fetch", bind=True, **TRANSIENT)
def fetch_check(self, check_id: str) -> str:
    return jobs.fetch_check(context.current(), check_id)


class BoundedAnalysis(app.Task):
    """The analysis task: past its hard time limit the pool kills the process (native code ignores the soft
    one), and this hook, run by the worker's main process, gives the waiting checks their verdict."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: object) -> None:
        if isinstance(exc, TimeLimitExceeded):
            sha256 = args[0] if args else kwargs.get("sha256")
            try:
                jobs.analysis_timed_out(context.current(), sha256, _BATCH.analysis_hard_limit_s)
            except (SQLAlchemyError, RedisError, OSError):
                # The checks stay pending; the sweeper sends them again once their lease runs out.
                logging.getLogger(__name__).exception("could not record the time-out of %s", sha256)
        super().on_failure(exc, task_id, args, kwargs, einfo)


@app.task(name="credence.analyze", bind=True, base=BoundedAnalysis, soft_time_limit=_BATCH.analysis_soft_limit_s,
          time_limit=_BATCH.analysis_hard_limit_s, **{**TRANSIENT, "max_retries": 120})
def analyze_media(self, sha256: str) -> str:
    outcome = jobs.analyze_media(context.current(), sha256, owner=self.request.id or "local")
    if outcome == jobs.IN_FLIGHT:
        # Another worker is analysing these bytes; come back for its verdict rather than redo it.
        raise self.retry(countdown=1)
    return outcome


@app.task(name="credence.forensics", bind=True, soft_time_limit=_BATCH.analysis_soft_limit_s,
          time_limit=_BATCH.analysis_hard_limit_s, **TRANSIENT)
def forensic_views(self, sha256: str) -> str:
    """On demand from the desk: bounded like an analysis (pixel cap, decode budget, its time limits)."""
    return forensics_jobs.compute_forensics(context.current(), sha256)


@app.task(name="credence.heatmap", bind=True, soft_time_limit=_BATCH.analysis_soft_limit_s,
          time_limit=_BATCH.analysis_hard_limit_s, **TRANSIENT)
def heatmap(self, sha256: str) -> str:
    """On demand from the desk, on the gpu queue: bounded like the forensic views (worker/detection/jobs.py)."""
    return detect_jobs.explain_stored(context.current(), sha256)


@app.task(name="credence.revalidate_manifest", bind=True, soft_time_limit=_BATCH.analysis_soft_limit_s,
          time_limit=_BATCH.analysis_hard_limit_s, **TRANSIENT)
def revalidate_manifest(self, manifest_id: str) -> str:
    """An imported manifest store read by c2pa natively: bounded like an analysis (its time limits kill the process)."""
    return provenance_jobs.revalidate_manifest(context.current(), manifest_id)


@app.task(name="credence.sweep")
def sweep() -> dict[str, int]:
    return jobs.sweep(context.current())


@app.task(name="credence.hash_entry", bind=True, **TRANSIENT)
def hash_entry(self, entry_id: str) -> str:
    return bank_jobs.hash_entry(context.current(), entry_id)


@app.task(name="credence.rematch", bind=True, **TRANSIENT)
def rematch_entry(self, entry_id: str) -> int:
    return bank_jobs.rematch_entry(context.current(), entry_id)


@app.task(name="credence.rematch_removed", bind=True, **TRANSIENT)
def rematch_removed(self, hashes: dict) -> int:
    return bank_jobs.rematch_removed(context.current(), hashes)


@app.task(name="credence.expire_manifests")
def expire_manifests() -> int:
    return provenance_jobs.expire_manifests(context.current())


@app.task(name="credence.evict_media")
def evict_media() -> dict:
    return media_jobs.evict_media(context.current())


@app.task(name="credence.pull_peers")
def pull_peers() -> dict:
    return peer_pull.pull_all(context.current())


@app.task(name="credence.pull_peer", bind=True, **TRANSIENT)
def pull_peer(self, peer_id: str) -> dict:
    return peer_pull.pull_peer(context.current(), peer_id)


@app.task(name="credence.detect", base=Batches, flush_every=_BATCH.detect_batch_size,
          flush_interval=_BATCH.detect_batch_wait_s)
def detect_media(requests) -> dict[str, str]:
    """Batched on the gpu queue (celery-batches: flush on size or after a short wait).

    Each request is ``(sha256, partial)``; outcomes and errors stay per item. A batch that dies is
    acknowledged late, so its messages come back; a lost one is re-enqueued by the sweeper.
    """
    items = []
    for request in requests:
        args = list(request.args or ())
        sha256 = args[0] if args else request.kwargs.get("sha256")
        partial = args[1] if len(args) > 1 else request.kwargs.get("partial", {})
        items.append((sha256, partial))
    return detect_jobs.detect_batch(context.current(), items)
