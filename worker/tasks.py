"""Thin Celery tasks: load the context, call the job, nothing else."""
from __future__ import annotations

from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from worker import bank_jobs, context, jobs, peer_pull
from worker.celery_app import app

# Database or Redis hiccups are retried with backoff; the check stays pending meanwhile.
TRANSIENT = {"autoretry_for": (SQLAlchemyError, RedisError, OSError), "retry_backoff": 1,
             "retry_backoff_max": 60, "max_retries": 8}


@app.task(name="credence.fetch", bind=True, **TRANSIENT)
def fetch_check(self, check_id: str) -> str:
    return jobs.fetch_check(context.current(), check_id)


@app.task(name="credence.analyze", bind=True, **{**TRANSIENT, "max_retries": 120})
def analyze_media(self, sha256: str) -> str:
    outcome = jobs.analyze_media(context.current(), sha256, owner=self.request.id or "local")
    if outcome == jobs.IN_FLIGHT:
        # Another worker is analysing these bytes; come back for its verdict rather than redo it.
        raise self.retry(countdown=1)
    return outcome


@app.task(name="credence.sweep")
def sweep() -> dict[str, int]:
    return jobs.sweep(context.current())


@app.task(name="credence.hash_entry", bind=True, **TRANSIENT)
def hash_entry(self, entry_id: str) -> str:
    return bank_jobs.hash_entry(context.current(), entry_id)


@app.task(name="credence.rematch", bind=True, **TRANSIENT)
def rematch_entry(self, entry_id: str) -> int:
    return bank_jobs.rematch_entry(context.current(), entry_id)


@app.task(name="credence.pull_peers")
def pull_peers() -> dict:
    return peer_pull.pull_all(context.current())


@app.task(name="credence.pull_peer", bind=True, **TRANSIENT)
def pull_peer(self, peer_id: str) -> dict:
    return peer_pull.pull_peer(context.current(), peer_id)
