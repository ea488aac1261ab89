"""A worker's lease on the checks it is working for, renewed by a heartbeat while the work runs.

The sweeper re-enqueues a pending check only when its lease has run out (``checks.updated_at`` older than
``stale_check_s``), so a slow analysis is never started a second time while its worker is alive, and a
dead worker's check comes back within one lease. The lease lives in the database, which the sweeper reads
in embedded and Redis deployments alike; with Redis the work's lock key is renewed with it, so no second
worker claims the same bytes while the first still holds them.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType

from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError

from server import models
from server.checks import records
from worker.context import Context
from worker.timer import BACKGROUND, Call

log = logging.getLogger(__name__)


def renew(ctx: Context, *, sha256: str | None = None, check_id: str | None = None,
          lock_key: str | None = None, older_than_s: float = 0.0) -> int:
    """Push the lease of the pending checks waiting on ``sha256`` (or the one ``check_id``) one term on; with
    ``older_than_s`` only leases at least that old (a lease renewed moments ago is left as it is, and a
    transaction that changes nothing commits without a write)."""
    checks = records.CHECKS.c  # a Core statement: the ORM's bulk-update bookkeeping cost more than the write
    conditions = []
    if sha256:
        conditions.append(checks.sha256 == sha256)
    if check_id:
        conditions.append(checks.id == check_id)
    touched = 0
    if conditions:
        now = models.utcnow()
        stale = [checks.updated_at <= now - timedelta(seconds=older_than_s)] if older_than_s > 0 else []
        with ctx.db.one_statement(redoable=True) as session:
            touched = session.execute(
                update(records.CHECKS).where(checks.status == "pending", or_(*conditions), *stale)
                .values(updated_at=now)
            ).rowcount or 0
    if lock_key:
        ctx.cache.extend(lock_key, ctx.settings.stale_check_s)
    return touched


class Heartbeat:
    """Renews a lease every quarter of ``stale_check_s`` (from the process's background timer thread,
    worker/timer.py), for as long as the block runs.

    The thread keeps beating while native code (c2pa, a decoder) holds the task's thread: the work is alive
    then, and the task's hard time limit, not the sweeper, is what bounds it. A renewal that fails is logged
    and tried again at the next beat; the lease then simply runs out if the database stays away.
    ``renewed``: the caller has just renewed the lease itself, so the first beat waits a full term.
    """

    def __init__(self, ctx: Context, *, sha256: str | None = None, check_id: str | None = None,
                 lock_key: str | None = None, renewed: bool = False) -> None:
        self.ctx = ctx
        self.target = {"sha256": sha256, "check_id": check_id, "lock_key": lock_key}
        self.every_s = max(0.2, ctx.settings.stale_check_s / 4)
        self.renewed = renewed
        self.running = False
        self._next: Call | None = None

    def _beat(self, older_than_s: float = 0.0, *, lock: bool = True) -> None:
        try:
            target = self.target if lock else {**self.target, "lock_key": None}
            renew(self.ctx, **target, older_than_s=older_than_s)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("lease renewal failed (%s); retrying at the next beat", exc)

    def _tick(self) -> None:
        if not self.running:
            return
        try:
            self._beat()
        finally:  # an unexpected error is logged by the timer; the next beat is still made
            if self.running:
                self._next = BACKGROUND.call_in(self.every_s, self._tick)

    def __enter__(self) -> Heartbeat:
        if not self.renewed:
            # The work usually starts right after its lease was renewed (the check made, fetched, its bytes
            # recorded): only a lease older than half a beat is renewed now, sparing a write on the fresh path.
            # The work's lock is not extended now: it was taken with a full term just before (analyze_media).
            self._beat(older_than_s=self.every_s / 2, lock=False)
        self.running = True
        self._next = BACKGROUND.call_in(self.every_s, self._tick)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.running = False  # a renewal under way finishes (one more is harmless) and plans no next one
        BACKGROUND.cancel(self._next)
