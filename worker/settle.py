"""Where a verdict goes once an analysis has made it: one place for the cpu stage, the gpu stage and a
re-match's re-analysis.

A final verdict is recorded, completes every check waiting on its content, is counted and cached. A verdict
whose detection is still due is handed to the gpu queue instead, once per content at a time (the
``detecting:`` claim), and completes nothing until the detectors answer.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from server.checks import records
from server.provenance import repository
from server.queue import enqueue_detect
from server.verdicts import Verdict
from worker import metrics
from worker.detection import gate as detection
from worker.context import Context


def detecting_key(sha256: str) -> str:
    return f"detecting:{sha256}"


def partial_of(verdict: Verdict) -> dict[str, Any]:
    """What the cpu stage found, as JSON for the gpu task's message."""
    return {"evidence": [e.model_dump(mode="json") for e in verdict.evidence],
            "versions": dict(verdict.versions), "timings": dict(verdict.timings)}


def complete_from_record(ctx: Context, sha256: str) -> dict[str, Any] | None:
    """Complete the checks waiting on this content from its recorded verdict, if it has a final one.

    An interim verdict (detection re-running after a retraction) completes nothing: its checks wait for
    the detectors, and analysing the content again only joins the detection already under way."""
    with ctx.db.session(redoable=True) as session:
        found = completing(session, ctx, sha256)
    return completed(ctx, found)


Found = tuple[dict[str, Any] | None, list[str]]


def interim(row: Row[Any]) -> bool:
    """A recorded verdict whose detection is still due (running again after a retraction): it completes nothing."""
    return detection.is_pending(row.body.get("versions") or {})


def final_verdict(session: Session, ctx: Context, sha256: str) -> Row[Any] | None:
    """The content's recorded verdict if it is final (current, detection not pending); only reads."""
    row = records.current_verdict(session, sha256, ctx.detectors_stamp())
    return None if row is None or interim(row) else row


def completing(session: Session, ctx: Context, sha256: str) -> Found:
    """``complete_from_record``'s work inside the caller's transaction (one commit where the caller writes too);
    hand what it returns to ``completed`` once that transaction has committed."""
    row = final_verdict(session, ctx, sha256)
    if row is None:
        return None, []
    return row.body, records.complete_checks_for(session, sha256, row.id)


def completed(ctx: Context, found: Found) -> dict[str, Any] | None:
    """After the commit: wake the waiting requests and cache the verdict; returns it (None: none recorded)."""
    body, ids = found
    if ids:
        ctx.clock.tick()
    if body is not None:
        ctx.cache.remember(url_hash=None, body=body)
    return body


def record_final(ctx: Context, sha256: str, verdict: Verdict, *, media: dict[str, Any] | None = None) -> list[str]:
    """Record a final verdict and complete the checks waiting on its content; returns their ids. ``media``: what
    the analysis learnt of the content (``records.record_media``'s arguments), kept in the same transaction: one
    commit per analysed file, not two. The commit waits for the disk only when it completes no check (a re-match's
    verdict): lost, nothing would redo it (server/db.py, redoable)."""
    with ctx.db.session(redoable=True) as session:
        if media is not None:
            records.record_media(session, **media)
        completed = records.complete_checks_for(session, sha256, records.record_verdict(session, verdict))
        if not completed:
            ctx.db.durable(session)
        # Valid credentials join the manifest repository; credentials that now fail leave it.
        repository.record_from_verdict(session, sha256, verdict.evidence, ctx.store.get,
                                       share=ctx.settings.share_manifests)
    if completed:
        ctx.clock.tick()
    metrics.verdict_recorded(verdict)
    ctx.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
    return completed


def hand_off(ctx: Context, sha256: str, verdict: Verdict, owner: str) -> None:
    """Send a verdict whose detection is due to the gpu queue, unless another hand-off of it is under way."""
    holder = ctx.cache.claim(detecting_key(sha256), owner, ttl_s=ctx.settings.stale_check_s)
    if holder is None or holder == owner:
        enqueue_detect(ctx.celery, sha256, partial_of(verdict))
