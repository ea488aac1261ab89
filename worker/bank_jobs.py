"""Bank work done by workers: hashing submitted entries (images and videos), and re-matching stored
media when a confirmation or retraction changes what matches (no refetch, no detection rerun)."""
from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import or_, select

from server import models, records
from server.media_types import VIDEO_TYPES, sniff
from server.verdicts import Evidence, fuse
from worker.context import Context
from worker.fetcher import FetchLimits, FetchRefused, fetch
from worker.index.hamming import brute_force, pack_hex
from worker.jobs import bank_matcher
from worker.stages import bank_match, hashes, video_match
from worker.stages.decode import DecodeError, decode
from worker.stages.keyframes import VideoError, VideoLimits, extract
from worker.stages.video_hashes import video_hashes

log = logging.getLogger(__name__)


def hash_entry(ctx: Context, entry_id: str) -> str:
    """Fill in an entry's hashes from its uploaded bytes or its source URL (through the guard):
    an image's PDQ and pHash, or a video's MD5 and keyframe PDQs."""
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
        if sniff(data[:512]) in VIDEO_TYPES:
            return _hash_video(ctx, entry_id, data, partial)
        h = hashes.compute(decode(data, ctx.settings.max_pixels).image)
    except (FetchRefused, DecodeError, VideoError) as exc:
        return _hash_failed(ctx, entry_id, exc.reason)
    except ValueError as exc:
        return _hash_failed(ctx, entry_id, str(exc))
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.sha256, entry.pdq, entry.pdq_quality, entry.phash = sha256, h.pdq, h.pdq_quality, h.phash
        entry.media_kind = "image"
        entry.hash_state, entry.hash_error = "ready", None
    return "ready"


def _hash_video(ctx: Context, entry_id: str, data: bytes, partial: bool) -> str:
    """Keyframes and their PDQs, as the pipeline computes them for checked videos, so they compare."""
    _, frames = extract(data, VideoLimits.from_settings(ctx.settings))
    vh = video_hashes(data, frames)
    if not any(f.usable for f in vh.frames) and partial:
        return _hash_failed(ctx, entry_id, "no usable keyframe in the part of the video that was read")
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.media_kind, entry.pdq, entry.pdq_quality, entry.phash = "video", None, None, None
        entry.sha256, entry.md5 = (None, None) if partial else (vh.sha256, vh.md5)
        entry.frame_pdqs = models.encode_frames(vh.frames)
        entry.hash_state, entry.hash_error = "ready", None
    return "ready"


def _hash_failed(ctx: Context, entry_id: str, reason: str) -> str:
    with ctx.db.session() as session:
        entry = session.get(models.BankEntry, entry_id)
        entry.hash_state, entry.hash_error = "failed", reason[:500]
    return "failed"


def affected_media(ctx: Context, entry: models.BankEntry) -> list[str]:
    """Stored media the entry matches now (or matched before): same bytes, or near in any orientation
    (images), or the same MD5 or enough shared keyframes both ways (videos)."""
    if entry.media_kind == "video":
        return _affected_videos(ctx, entry)
    found: set[str] = set(_videos_showing(ctx, entry.pdq) if entry.pdq else ())
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


def _stored_video_frames(ctx: Context) -> tuple[list[str], list[list[models.StoredFrame]]]:
    """Every stored video's usable keyframes, by sha256."""
    with ctx.db.session() as session:
        rows = session.execute(select(models.Media.sha256, models.Media.frame_pdqs)
                               .where(models.Media.frame_pdqs.is_not(None))).all()
    shas, stored = [], []
    for row in rows:
        try:
            frames = video_match.usable(models.decode_frames(row.frame_pdqs))
        except ValueError:
            frames = []
        shas.append(row.sha256)
        stored.append(frames)
    return shas, stored


def _videos_showing(ctx: Context, pdq: str) -> list[str]:
    """Stored videos with a keyframe within the image threshold of an image entry's PDQ."""
    shas, stored = _stored_video_frames(ctx)
    flat = [f.pdq for frames in stored for f in frames]
    if not flat:
        return []
    owners = np.repeat(np.arange(len(shas)), [len(frames) for frames in stored])
    hit_rows, _ = brute_force(pack_hex(flat, 32), pack_hex([pdq], 32)[0], ctx.settings.pdq_threshold)
    return sorted({shas[int(owners[r])] for r in hit_rows.tolist()})


def _images_shown_in(ctx: Context, frames: list[models.StoredFrame]) -> set[str]:
    """Stored images within the frame threshold of one of a video entry's keyframes (stills of it)."""
    if not frames:
        return set()
    with ctx.db.session() as session:
        rows = session.execute(select(models.Media.sha256, models.Media.pdq).where(
            models.Media.pdq.is_not(None), models.Media.pdq_quality >= hashes.PDQ_MIN_QUALITY)).all()
    if not rows:
        return set()
    packed = pack_hex([r.pdq for r in rows], 32)
    columns = np.ascontiguousarray(packed.view(np.uint64).T)
    found: set[str] = set()
    for frame in frames:
        hit_rows, _ = brute_force(packed, pack_hex([frame.pdq], 32)[0], ctx.settings.vpdq_frame_threshold, columns)
        found.update(rows[r].sha256 for r in hit_rows.tolist())
    return found


def _affected_videos(ctx: Context, entry: models.BankEntry) -> list[str]:
    """Stored videos with the entry's bytes or MD5, or whose stored keyframes match it vPDQ-style:
    every stored keyframe is searched once per entry keyframe (brute force, exact), then the two-sided
    rule decides, as the matcher does."""
    found: set[str] = set()
    with ctx.db.session() as session:
        exact = [c for c in (models.Media.sha256 == entry.sha256 if entry.sha256 else None,
                             models.Media.md5 == entry.md5 if entry.md5 else None) if c is not None]
        if exact:
            found.update(session.scalars(select(models.Media.sha256).where(or_(*exact))))
    try:
        wanted = video_match.usable(models.decode_frames(entry.frame_pdqs))
    except ValueError:
        wanted = []
    found.update(_images_shown_in(ctx, wanted))
    shas, stored = _stored_video_frames(ctx) if wanted else ([], [])
    flat = [f.pdq for frames in stored for f in frames]
    if not flat:
        return sorted(found)
    owners = np.repeat(np.arange(len(shas)), [len(frames) for frames in stored])
    starts = np.concatenate([[0], np.cumsum([len(frames) for frames in stored])[:-1]])
    packed = pack_hex(flat, 32)
    columns = np.ascontiguousarray(packed.view(np.uint64).T)
    pairs: dict[int, list[tuple[int, int, int]]] = {}  # media row -> (its frame, entry frame, distance)
    for ei, frame in enumerate(wanted):
        hit_rows, dist = brute_force(packed, pack_hex([frame.pdq], 32)[0], ctx.settings.vpdq_frame_threshold, columns)
        for r, d in zip(hit_rows.tolist(), dist.tolist()):
            media = int(owners[r])
            pairs.setdefault(media, []).append((r - int(starts[media]), ei, d))
    for media, media_pairs in pairs.items():
        if video_match.tally(media_pairs, stored[media], wanted).matches(ctx.settings.vpdq_match_share):
            found.add(shas[media])
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
        current = records.current_verdict(session, sha256, ctx.detectors_stamp())
        media = session.get(models.Media, sha256)
        if current is None or media is None or (media.pdq is None and media.frame_pdqs is None and not media.md5):
            return False
        body = current.body
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
    versions = {**body.get("versions", {}), "banks": "generation-%d" % matcher.generation[0]}
    verdict = fuse(kept + bank_match.evidence(hits), sha256=sha256, versions=versions, timings=body.get("timings"))
    with ctx.db.session() as session:
        records.record_verdict(session, verdict)
    ctx.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
    log.info("re-matched %s: %s -> %s", sha256, body["level"], verdict.level.value)
    return verdict.level.value != body["level"]
