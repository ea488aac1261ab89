"""The manifest repository's worker tasks: re-validating imported stores (``credence.revalidate_manifest``) and
its retention (``credence.expire_manifests``, hourly from the beat when CREDENCE_REPOSITORY_RETENTION_DAYS is set).

The import itself (``credence provenance import``) only parses and stores a file's records; the stores are hostile
bytes handed to native code (c2pa-rs), so they are read here, in a worker process under the analysis's time limits
(a hard limit kills the process, which native code cannot ignore), after the same structure budgets. What counts is
decided in worker/stages/manifest_check.py and kept by server/provenance/repository.py ``record_revalidation``.
"""
from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded

from server import models
from server.provenance import repository
from worker.context import Context
from worker.stages import manifest_check, soft_binding
from worker.stages.budget import Limits
from worker.trust import reading_context

log = logging.getLogger(__name__)


def revalidate_manifest(ctx: Context, manifest_id: str) -> str:
    """Re-validate one imported record's store here; "skipped" for a row gone or read here, else whether it counts."""
    with ctx.db.session() as session:
        row = session.get(models.ProvenanceManifest, manifest_id)
        if row is None or row.origin is None:
            return "skipped"
        store, record = row.store, {"label": row.label, "pdq": row.pdq, "iscc": row.iscc}
    settings = ctx.settings
    if not store:
        outcome = manifest_check.Revalidation(reason="the record carries no manifest store to validate")
        declared: list[dict[str, str]] = []
    else:
        context, files = reading_context(settings)
        try:
            outcome = manifest_check.revalidate(
                store, record, context, trust={"loaded": files.loaded, **files.describe()},
                pdq_threshold=settings.pdq_threshold, max_pixels=settings.max_pixels,
                limits=Limits.from_settings(settings), put_thumbnail=ctx.store.put)
        except SoftTimeLimitExceeded:
            outcome = manifest_check.Revalidation(
                reason=f"its validation took longer than {settings.analysis_soft_limit_s} s and was stopped")
        declared = soft_binding.declared_bindings(store, record["label"]) if outcome.bindings else []
    with ctx.db.session() as session:
        kept = repository.record_revalidation(session, manifest_id, outcome.evidence, bindings=outcome.bindings,
                                              declared=declared, reason=outcome.reason)
    if kept is None:
        return "skipped"
    return "counts" if outcome.reason is None else "informational"


def expire_manifests(ctx: Context) -> int:
    """The beat task's pass over the repository's retention (CREDENCE_REPOSITORY_RETENTION_DAYS; 0: nothing)."""
    days = ctx.settings.repository_retention_days
    if not days:
        return 0
    with ctx.db.session() as session:
        gone = repository.expire(session, days)
    if gone:
        log.info("manifest repository: %d records untouched for %d days forgotten", gone, days)
    return gone
