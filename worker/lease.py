"""A worker's lease on the checks it is working for, renewed by a heartbeat while the work runs.

The sweeper re-enqueues a pending check only when its lease has run out (``checks.updated_at`` older than
``stale_check_s``), so a slow analysis is never started a second time while its worker is alive, and a
dead worker's check comes back within one lease. The lease lives in the database, which the sweeper reads
in embedded and Redis deployments alike; with Redis the work's lock key is renewed with it, so no second
worker claims the same bytes while the first still holds them.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from types import TracebackType

from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError

from server import models
from worker.context import Context

log = logging.getLogger(__name__)


def renew(ctx: Context, *, sha256: str | None = None, check_id: str | None = None,
          lock_key: str | None = None, older_than_s: float = 0.0) -> int:
    """Push the lease of the pending checks waiting on ``sha256`` (or the one ``check_id``) one term on; with
    ``older_than_s`` only leases at least that old (a lease renewed moments ago is left as it is, and a
    transaction that changes nothing commits without a write)."""
    conditions = []
    if sha256:
        conditions.append(models.Check.sha256 == sha256)
    if check_id:
        conditions.append(models.Check.id == check_id)
    touched = 0
    if conditions:
        now = models.utcnow()
        stale = [models.Check.updated_at <= now - timedelta(seconds=older_than_s)] if older_than_s > 0 else []
        with ctx.db.session() as session:
            touched = session.execute(
                update(models.Check).where(models.Check.status == "pending", or_(*conditions), *stale)
                .values(updated_at=now)
            ).rowcount or 0
    if lock_key:
        ctx.cache.extend(lock_key, ctx.settings.stale_check_s)
    return touched


class _Keeper:
    """One thread per process renews every running Heartbeat's lease when it is due.

    A thread per task cost a thread start and a join on every fetch and analysis, each a wait for the
    scheduler on a busy machine (issue 17's profile); one long-lived thread costs neither. It is made on first
    use in each process, and again in a forked child, where the parent's thread does not exist.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, Heartbeat]] = {}
        self._thread: threading.Thread | None = None

    def add(self, beat: Heartbeat) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="credence-lease", daemon=True)
                self._thread.start()
            self._due[id(beat)] = (time.monotonic() + beat.every_s, beat)
            self._cond.notify()

    def remove(self, beat: Heartbeat) -> None:
        with self._cond:
            self._due.pop(id(beat), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                ready = [beat for due, beat in self._due.values() if due <= now]
                if not ready:
                    soonest = min((due for due, _ in self._due.values()), default=now + 60.0)
                    self._cond.wait(timeout=max(0.01, soonest - now))
                    continue
                for beat in ready:
                    self._due[id(beat)] = (now + beat.every_s, beat)
            for beat in ready:  # outside the lock: a block may end meanwhile (one more renewal is harmless)
                try:
                    beat._beat()
                except Exception:  # noqa: BLE001 - the one thread must outlive any renewal, or no lease is kept
                    log.exception("lease renewal failed unexpectedly; retrying at the next beat")


_keeper = _Keeper()


def _fresh_keeper() -> None:
    global _keeper
    _keeper = _Keeper()  # the parent's lock may have been held at the fork, and its thread is not here


os.register_at_fork(after_in_child=_fresh_keeper)


class Heartbeat:
    """Renews a lease every quarter of ``stale_check_s`` (from the process's one lease thread), for as long as
    the block runs.

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

    def _beat(self, older_than_s: float = 0.0) -> None:
        try:
            renew(self.ctx, **self.target, older_than_s=older_than_s)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("lease renewal failed (%s); retrying at the next beat", exc)

    def __enter__(self) -> Heartbeat:
        if not self.renewed:
            # The work usually starts right after its lease was renewed (the check made, fetched, its bytes
            # recorded): only a lease older than half a beat is renewed now, sparing a write on the fresh path.
            self._beat(older_than_s=self.every_s / 2)
        _keeper.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _keeper.remove(self)
