"""Bank work done by workers: hashing submitted entries (images and videos), and re-matching stored
media when a confirmation, retraction or dispute changes what matches (no refetch).

A re-match normally swaps only the bank evidence. When the known-fake match it loses had made the
pipeline skip detection, the stored bytes are analysed again instead, so what the match had skipped
runs now (detection on the gpu queue included) and no stale "skipped" note survives. Until the
detectors answer, the recorded verdict is an interim one marked ``versions["detect"] = "pending"``
(it replaces the known-fake one at once, and the gpu task replaces it in turn)."""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Row, or_, select
from sqlalchemy.orm import Session

from server import models
from server.banks import hash_scan
from server.checks import records
from server.config import Settings
from server.exchange.feed import public_actor
from server.db import stream_rows
from server.verdicts import Evidence, Level, Verdict, fuse
from server.vocabulary import Kind
from worker.detection import jobs as detect_jobs
from worker.detection import gate as detection
from worker.context import Context
from worker.fetch.common import FetchLimits, FetchRefused
from worker.fetch.media import fetch
from server.banks.hamming import brute_force, pack_hex
from worker.jobs import bank_matcher
from worker.pipeline.runner import analyze
from worker.settle import hand_off, record_final
from worker.stages import bank_match, hashes, video_match
from worker.stages.fingerprint import Fingerprint, FingerprintError, fingerprint

log = logging.getLogger(__name__)


def hash_entry(ctx: Context, entry_id: str) -> str:
    """Fill in an entry's hashes from its uploaded bytes or its source URL (through the guard), by the
    fingerprint rule every front end hashes a file with (worker.stages.fingerprint): an image's PDQ (as is:
    the matcher turns the query, not the entry) and pHash, or a video's MD5 and keyframe PDQs."""
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        if entry is None or entry.hash_state != "pending":
            return "skipped"
        sha256, url = entry.sha256, entry.source_url
    partial = False
    try:
        data = ctx.store.get(sha256) if sha256 else None
        if data is None:
            if not url:
                raise ValueError("nothing to hash: no stored file and no URL")
            fetched = fetch(url, FetchLimits.from_settings(ctx.settings))
            data = fetched.data
            sha256 = ctx.store.put(data)
            # A long video may be read in part (range requests); its file hashes would be of the part.
            source_size = getattr(fetched, "source_size", None)
            partial = source_size is not None and source_size != len(data)
        fp = fingerprint(data, ctx.settings)
    except (FetchRefused, FingerprintError) as exc:
        return _hash_failed(ctx, entry_id, exc.reason)
    except ValueError as exc:
        return _hash_failed(ctx, entry_id, str(exc))
    if fp.kind == "video":
        return _store_video(ctx, entry_id, fp, partial)
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.sha256, entry.pdq, entry.pdq_quality, entry.phash = sha256, fp.pdq, fp.pdq_quality, fp.phash
        entry.media_kind = "image"
        entry.hash_state, entry.hash_error = "ready", None
    return "ready"


def _store_video(ctx: Context, entry_id: str, fp: Fingerprint, partial: bool) -> str:
    """Keyframes and their PDQs, as the pipeline computes them for checked videos, so they compare."""
    if not any(f.usable for f in fp.frames) and partial:
        return _hash_failed(ctx, entry_id, "no usable keyframe in the part of the video that was read")
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.media_kind, entry.pdq, entry.pdq_quality, entry.phash = "video", None, None, None
        entry.sha256, entry.md5 = (None, None) if partial else (fp.sha256, fp.md5)
        entry.frame_pdqs = models.encode_frames(list(fp.frames))
        entry.hash_state, entry.hash_error = "ready", None
    return "ready"


def _hash_failed(ctx: Context, entry_id: str, reason: str) -> str:
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.hash_state, entry.hash_error = "failed", reason[:500]
    return "failed"


def affected_media(ctx: Context, entry: models.BankEntry) -> list[str]:
    """Stored media the entry matches now (or matched before): same bytes, or near in any orientation
    (images), or the same MD5 or enough shared keyframes both ways (videos).

    Stored hashes are scanned in chunks (exact brute force per chunk): a worker never holds the whole
    media table, however many millions of checks it has recorded."""
    if entry.media_kind == "video":
        return _affected_videos(ctx, entry)
    found: set[str] = set()
    pdq = pack_hex([entry.pdq], 32)[0] if entry.pdq else None
    phash = pack_hex([entry.phash], 8)[0] if entry.phash else None
    media = models.Media.__table__.c
    with ctx.db.session() as session:
        if entry.sha256:
            found.update(session.scalars(select(media.sha256).where(media.sha256 == entry.sha256)))
        if pdq is not None or phash is not None:
            stored = select(media.sha256, media.pdq_dihedral, media.phash).where(media.pdq.is_not(None))
            near = hash_scan.stored_orientations_filter(  # PostgreSQL: only near rows leave the database
                session, media.pdq_dihedral, entry.pdq, ctx.settings.pdq_threshold, media.phash, entry.phash,
                ctx.settings.phash_threshold)
            for rows in stream_rows(session, stored if near is None else stored.where(near)):
                found.update(_near_images(rows, pdq, phash, ctx.settings))
        if pdq is not None:
            for rows in stream_rows(session, _VIDEO_FRAMES):
                shas, stored = _usable_frames(rows)
                found.update(_videos_showing(shas, stored, pdq, ctx.settings.pdq_threshold))
    return sorted(found)


_VIDEO_FRAMES = select(models.Media.sha256, models.Media.frame_pdqs).where(models.Media.frame_pdqs.is_not(None))


def _near_images(rows: Sequence[Row], pdq: np.ndarray | None, phash: np.ndarray | None,
                 settings: Settings) -> set[str]:
    """The stored images of one chunk near the entry: PDQ in any of their 8 orientations, or pHash."""
    found: set[str] = set()
    if pdq is not None:
        variants = [(r.pdq_dihedral or r.pdq).split(",") for r in rows]  # rows without orientations: as is
        owners = np.repeat(np.arange(len(rows)), [len(vs) for vs in variants])
        hit_rows, _ = brute_force(pack_hex([v for vs in variants for v in vs], 32), pdq, settings.pdq_threshold)
        found.update(rows[i].sha256 for i in set(owners[hit_rows].tolist()))
    if phash is not None:
        hit_rows, _ = brute_force(pack_hex([r.phash for r in rows], 8), phash, settings.phash_threshold)
        found.update(rows[i].sha256 for i in hit_rows.tolist())
    return found


def _usable_frames(rows: Sequence[Row]) -> tuple[list[str], list[list[models.StoredFrame]]]:
    """Stored videos' usable keyframes, by sha256."""
    shas, stored = [], []
    for row in rows:
        try:
            frames = video_match.usable(models.decode_frames(row.frame_pdqs))
        except ValueError:
            frames = []
        shas.append(row.sha256)
        stored.append(frames)
    return shas, stored


def _frame_table(stored: list[list[models.StoredFrame]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All keyframes packed, with each row's video and each video's first row."""
    counts = [len(frames) for frames in stored]
    owners = np.repeat(np.arange(len(stored)), counts)
    starts = np.cumsum(counts) - counts
    return pack_hex([f.pdq for frames in stored for f in frames], 32), owners, starts


def _videos_showing(shas: list[str], stored: list[list[models.StoredFrame]], pdq: np.ndarray,
                    threshold: int) -> set[str]:
    """Stored videos with a keyframe within the image threshold of an image entry's PDQ."""
    packed, owners, _ = _frame_table(stored)
    hit_rows, _ = brute_force(packed, pdq, threshold)
    return {shas[int(owners[r])] for r in hit_rows.tolist()}


def _images_shown_in(session: Session, frames: list[models.StoredFrame], threshold: int) -> set[str]:
    """Stored images within the frame threshold of one of a video entry's keyframes (stills of it)."""
    found: set[str] = set()
    if not frames:
        return found
    media = models.Media.__table__.c
    queries = pack_hex([f.pdq for f in frames], 32)
    for rows in stream_rows(session, select(media.sha256, media.pdq).where(
            media.pdq.is_not(None), media.pdq_quality >= hashes.PDQ_MIN_QUALITY)):
        packed = pack_hex([r.pdq for r in rows], 32)
        columns = np.ascontiguousarray(packed.view(np.uint64).T)
        for query in queries:
            hit_rows, _ = brute_force(packed, query, threshold, columns)
            found.update(rows[r].sha256 for r in hit_rows.tolist())
    return found


def _affected_videos(ctx: Context, entry: models.BankEntry) -> list[str]:
    """Stored videos with the entry's bytes or MD5, or whose stored keyframes match it vPDQ-style:
    every stored keyframe is searched once per entry keyframe (brute force, exact, chunk by chunk),
    then the two-sided rule decides, as the matcher does."""
    found: set[str] = set()
    media = models.Media.__table__.c
    try:
        wanted = video_match.usable(models.decode_frames(entry.frame_pdqs))
    except ValueError:
        wanted = []
    with ctx.db.session() as session:
        exact = [c for c in (media.sha256 == entry.sha256 if entry.sha256 else None,
                             media.md5 == entry.md5 if entry.md5 else None) if c is not None]
        if exact:
            found.update(session.scalars(select(media.sha256).where(or_(*exact))))
        found.update(_images_shown_in(session, wanted, ctx.settings.vpdq_frame_threshold))
        if wanted:
            for rows in stream_rows(session, _VIDEO_FRAMES):
                found.update(_videos_matching(*_usable_frames(rows), wanted, ctx.settings))
    return sorted(found)


def _videos_matching(shas: list[str], stored: list[list[models.StoredFrame]],
                     wanted: list[models.StoredFrame], settings: Settings) -> set[str]:
    """The videos of one chunk that share enough keyframes with the entry, both ways."""
    packed, owners, starts = _frame_table(stored)
    if not len(packed):
        return set()
    columns = np.ascontiguousarray(packed.view(np.uint64).T)
    pairs: dict[int, list[tuple[int, int, int]]] = {}  # video -> (its frame, entry frame, distance)
    for ei, frame in enumerate(wanted):
        hit_rows, dist = brute_force(packed, pack_hex([frame.pdq], 32)[0], settings.vpdq_frame_threshold, columns)
        for r, d in zip(hit_rows.tolist(), dist.tolist()):
            video = int(owners[r])
            pairs.setdefault(video, []).append((r - int(starts[video]), ei, d))
    return {shas[video] for video, video_pairs in pairs.items()
            if video_match.tally(video_pairs, stored[video], wanted).matches(settings.vpdq_match_share)}


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


def rematch_removed(ctx: Context, hashes: dict) -> int:
    """After an entry is deleted: re-derive the bank evidence of the stored media its hashes touch
    (``hashes`` as server.banks.service.delete_entry returns them); returns how many changed."""
    gone = models.BankEntry(id=hashes.get("id"), media_kind=hashes.get("media_kind") or "image",
                            sha256=hashes.get("sha256"), pdq=hashes.get("pdq"), phash=hashes.get("phash"),
                            md5=hashes.get("md5"), frame_pdqs=hashes.get("frame_pdqs"))
    return sum(1 for sha256 in affected_media(ctx, gone) if rematch_media(ctx, sha256))


def rematch_media(ctx: Context, sha256: str) -> bool:
    """A new verdict from the stored evidence with fresh bank evidence; True if the level changed."""
    with ctx.db.session() as session:
        current = records.current_verdict(session, sha256, ctx.detectors_stamp())
        media = session.get(models.Media, sha256)
        if current is None or media is None or (media.pdq is None and media.frame_pdqs is None and not media.md5):
            return False
        body = current.body
        session.expunge(media)
    old_bank = [e for e in body["evidence"] if e["stage"] == bank_match.STAGE]
    kept = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != bank_match.STAGE]
    matcher = bank_matcher(ctx)
    if media.frame_pdqs is not None or media.md5:
        # A video: exact hashes only when the whole file was read (else they are of a part).
        whole = bool(media.md5) and (media.source_size is None or media.source_size == media.size)
        hits = matcher.match_video(sha256 if whole else None, media.md5 if whole else None,
                                   models.decode_frames(media.frame_pdqs))
    else:
        stored = hashes.PerceptualHashes(pdq=media.pdq, pdq_quality=media.pdq_quality or 0, phash=media.phash)
        hits = matcher.match(sha256, stored, media.pdq_dihedral.split(",") if media.pdq_dihedral else None)
    still_fake = any(h.bank_kind == "fake" for h in hits)
    retracted = bank_match.retraction_evidence(
        retractions(ctx, {e["details"].get("entry_id") for e in old_bank
                          if e["kind"] in (Kind.KNOWN_FAKE, Kind.BANK_ENTRY_RETRACTED)} - {h.entry_id for h in hits}))
    if not still_fake and skipped_for_known_fake(body):
        verdict = _reanalyze(ctx, sha256, media, retracted)
        if verdict is not None:
            log.info("re-analysed %s after a retraction: %s -> %s", sha256, body["level"], verdict.level.value)
            return verdict.level.value != body["level"]
    versions = {**body.get("versions", {}), "banks": "generation-%d" % matcher.generation[0]}
    verdict = fuse(kept + bank_match.evidence(hits) + retracted, sha256=sha256, versions=versions,
                   timings=body.get("timings"))
    with ctx.db.session() as session:
        records.record_verdict(session, verdict)
    ctx.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
    log.info("re-matched %s: %s -> %s", sha256, body["level"], verdict.level.value)
    return verdict.level.value != body["level"]


def skipped_for_known_fake(body: dict) -> bool:
    """The verdict's detection was skipped because a known-fake match had already answered."""
    return any(e["kind"] == Kind.DETECTION_SKIPPED and (e.get("details") or {}).get("level") == Level.KNOWN_FAKE.value
               for e in body.get("evidence", []))


def retractions(ctx: Context, entry_ids: set[str | None]) -> list[bank_match.Retraction]:
    """Which of these entries are retracted now, with when, by whom and why. "By whom" is this instance, as
    the feed says it: the verdict is public, the reviewer's login or key name is for the audit log."""
    wanted = sorted(i for i in entry_ids if i)
    if not wanted:
        return []
    with ctx.db.session() as session:
        rows = session.execute(
            select(models.BankEntry, models.Bank.name).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
            .where(models.BankEntry.id.in_(wanted), models.BankEntry.status == "retracted")).all()
        return [bank_match.Retraction(entry_id=e.id, bank=bank, label=e.label,
                                      at=e.reviewed_at.isoformat() if e.reviewed_at else None,
                                      by=public_actor(e.reviewed_by, ctx.settings.instance_name),
                                      note=e.review_note) for e, bank in rows]


def _reanalyze(ctx: Context, sha256: str, media: models.Media, retracted: list[Evidence]) -> Verdict | None:
    """The whole analysis again from the stored bytes (the banks as they are now), plus the retraction
    notes. Detection, when it is due, goes to the gpu queue behind an interim verdict. None: the bytes
    are gone, so the caller re-matches from the stored evidence instead."""
    data = ctx.store.get(sha256)
    if data is None:
        return None
    found = analyze(data, ctx.settings, matcher=bank_matcher(ctx), source_size=media.source_size).verdict
    verdict = fuse(found.evidence + retracted, sha256=sha256, versions=found.versions, timings=found.timings)
    if not detection.is_pending(verdict.versions):
        record_final(ctx, sha256, verdict)
        return verdict
    interim = fuse(verdict.evidence + [detect_jobs.rerun_note()], sha256=sha256, versions=verdict.versions,
                   timings=verdict.timings)
    with ctx.db.session() as session:
        records.record_verdict(session, interim)  # completes no check: they wait for the detectors
    ctx.cache.remember(url_hash=None, body=interim.model_dump(mode="json"))
    hand_off(ctx, sha256, verdict, owner=f"rematch:{sha256}:{interim.created_at.isoformat()}")
    return interim
