"""Thin Celery tasks: load the context, call the job, nothing else."""
from __future__ import annotations

from worker import context, jobs
from worker.celery_app import app


@app.task(name="credence.fetch", bind=True)
def fetch_check(self, check_id: str) -> str:
    return jobs.fetch_check(context.current(), check_id)


@app.task(name="credence.analyze", bind=True)
def analyze_media(self, sha256: str) -> str:
    return jobs.analyze_media(context.current(), sha256, owner=self.request.id or "local")


@app.task(name="credence.sweep")
def sweep() -> dict[str, int]:
    return jobs.sweep(context.current())
