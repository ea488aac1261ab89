"""Keeping the media store bounded: bytes nobody can use are not kept, and the store has a budget."""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from server import models
from server.media_store import referenced
from worker.context import Context

log = logging.getLogger(__name__)


def drop_unusable(ctx: Context, sha256: str) -> bool:
    """Delete the bytes of content the analysis could say nothing about (unsupported or undecodable):
    its ``unavailable`` verdict is recorded and answers later checks of the same bytes, so keeping them
    only fills the disk (issue 15: random bytes behind an ``ftyp`` header). A bank entry's bytes stay."""
    with ctx.db.session() as session:
        banked = session.execute(
            select(models.BankEntry.id).where(models.BankEntry.sha256 == sha256).limit(1)).first()
    if banked is not None:
        return False
    return ctx.store.delete(sha256)


def evict_media(ctx: Context) -> dict[str, Any]:
    """The beat task's pass: measure the store and, over its budget, evict what nothing references."""
    budget = int(ctx.settings.media_store_max_bytes)

    def keep() -> set[str]:
        with ctx.db.session() as session:
            return referenced(session)

    usage = ctx.store.evict(budget, keep)
    if usage["evicted"]:
        log.info("media store over its budget: evicted %d files (%d bytes)", usage["evicted"], usage["freed"])
    if budget and usage["bytes"] > budget:
        log.warning("media store still over its budget after eviction: %d of %d bytes are referenced or new",
                    usage["bytes"], budget)
    return usage
