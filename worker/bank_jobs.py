"""Bank work done by workers: hashing submitted entries, and re-matching stored media when a
confirmation or retraction changes what matches (no refetch, no detection rerun)."""
from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import select

from server import models, records
from server.verdicts import Evidence, fuse
from worker.context import Context
from worker.fetcher import FetchLimits, FetchRefused, fetch
from worker.index.hamming import brute_force, pack_hex
from worker.jobs import bank_matcher
from worker.stages import bank_match, hashes
from worker.stages.decode import DecodeError, decode

log = logging.getLogger(__name__)


def hash_entry(ctx: Context, entry_id: str) -> str:
    """Fill in an entry's hashes from its uploaded bytes or its source URL (through the guard)."""
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        if entry is None or entry.hash_state != "pending":
            return "skipped"
        sha256, url = entry.sha256, entry.source_url
    try:
        data = ctx.store.get(sha256) if sha256 else None
        if data is None:
            if not url:
                raise ValueError("nothing to hash: no stored file and no URL")
            data = fetch(url, FetchLimits.from_settings(ctx.settings)).data
            sha256 = ctx.store.put(data)
        h = hashes.compute(decode(data, ctx.settings.max_pixels).image)
    except (FetchRefused, DecodeError) as exc:
        return _hash_failed(ctx, entry_id, exc.reason)
    except ValueError as exc:
        return _hash_failed(ctx, entry_id, str(exc))
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.sha256, entry.pdq, entry.pdq_quality, entry.phash = sha256, h.pdq, h.pdq_quality, h.phash
        entry.hash_state, entry.hash_error = "ready", None
    return "ready"


def _hash_failed(ctx: Context, entry_id: str, reason: str) -> str:
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.hash_state, entry.hash_error = "failed", reason[:500]
    return "failed"


def affected_media(ctx: Context, entry: models.BankEntry) -> list[str]:
    """Stored media the entry matches now (or matched before): same bytes or near in any orientation."""
    found: set[str] = set()
    with ctx.db.session() as session:
        if entry.sha256:
            found.update(session.scalars(select(models.Media.sha256).where(models.Media.sha256 == entry.sha256)))
        rows = session.execute(select(models.Media.sha256, models.Media.pdq_dihedral, models.Media.phash)
                               .where(models.Media.pdq.is_not(None))).all()
    if not rows:
        return sorted(found)
    if entry.pdq:
        variants = [r.pdq_dihedral.split(",") for r in rows]
        flat = pack_hex([v for vs in variants for v in vs], 32)
        owners = np.repeat(np.arange(len(rows)), [len(vs) for vs in variants])
        hit_rows, _ = brute_force(flat, pack_hex([entry.pdq], 32)[0], ctx.settings.pdq_threshold)
        found.update(rows[i].sha256 for i in set(owners[hit_rows].tolist()))
    if entry.phash:
        hit_rows, _ = brute_force(pack_hex([r.phash for r in rows], 8), pack_hex([entry.phash], 8)[0],
                                  ctx.settings.phash_threshold)
        found.update(rows[i].sha256 for i in hit_rows.tolist())
    return sorted(found)


def rematch_entry(ctx: Context, entry_id: str) -> int:
    """Re-derive the bank evidence of every stored media the entry touches; returns how many changed."""
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        if entry is None:
            return 0
        session.expunge(entry)
    changed = 0
    for sha256 in affected_media(ctx, entry):
        if rematch_media(ctx, sha256):
            changed += 1
    return changed


def rematch_media(ctx: Context, sha256: str) -> bool:
    """A new verdict from the stored evidence with fresh bank evidence; True if the level changed."""
    with ctx.db.session() as session:
        current = records.current_verdict(session, sha256)
        media = session.get(models.Media, sha256)
        if current is None or media is None or media.pdq is None:
            return False
        body = current.body
    kept = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != bank_match.STAGE]
    stored = hashes.PerceptualHashes(pdq=media.pdq, pdq_quality=media.pdq_quality or 0, phash=media.phash)
    matcher = bank_matcher(ctx)
    hits = matcher.match(sha256, stored, media.pdq_dihedral.split(",") if media.pdq_dihedral else None)
    versions = {**body.get("versions", {}), "banks": "generation-%d" % matcher.generation[0]}
    verdict = fuse(kept + bank_match.evidence(hits), sha256=sha256, versions=versions, timings=body.get("timings"))
    with ctx.db.session() as session:
        records.record_verdict(session, verdict)
    ctx.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
    log.info("re-matched %s: %s -> %s", sha256, body["level"], verdict.level.value)
    return verdict.level.value != body["level"]
