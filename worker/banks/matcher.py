"""Find what the banks know about one content. Images: exact SHA-256 first, then PDQ (all 8
orientations) and pHash near-duplicates. Videos: exact SHA-256 and MD5 first, then vPDQ (shares of
keyframes, both ways), then any keyframe that is a banked image (a video made of a known fake photo).
Only confirmed entries match."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import bindparam, or_, select

from server import models
from server.banks import service as banks
from server.db import Database
from worker.banks.index.bank_snapshot import DEFAULT_FRAME_THRESHOLD, SnapshotHolder
from worker.stages import video_match
from worker.stages.bank_match import BankHit, Dispute
from worker.stages.hashes import ORIENTATION_NAMES, PDQ_MIN_QUALITY, PerceptualHashes
from worker.stages.vpdq import turned

DEFAULT_MATCH_SHARE = 0.7  # Settings.vpdq_match_share's default

# entry id -> (method, distance, orientation variant, video shares)
Found = dict[str, tuple[str, int, int, "video_match.VideoMatch | None"]]


_ENTRIES = models.BankEntry.__table__
_EXACT = select(_ENTRIES.c.id).where(_ENTRIES.c.sha256 == bindparam("content"), _ENTRIES.c.status == "confirmed")


class BankMatcher:
    def __init__(self, db: Database, pdq_threshold: int, phash_threshold: int,
                 vpdq_frame_threshold: int = DEFAULT_FRAME_THRESHOLD,
                 vpdq_match_share: float = DEFAULT_MATCH_SHARE, index_dir: Path | None = None) -> None:
        self.db = db
        self.vpdq_match_share = vpdq_match_share
        self.holder = SnapshotHolder(db, pdq_threshold, phash_threshold, vpdq_frame_threshold, folder=index_dir)
        # The banks' generation the last match was made against: the verdict's stamp is the state it saw.
        self.generation: tuple[int, int] = (0, 0)

    def match(self, sha256: str, hashes: PerceptualHashes | None, dihedral: list[str] | None = None) -> list[BankHit]:
        found: Found = {}
        with self.db.reading() as session:
            snap = self.holder.current(session)
            exact = session.scalars(_EXACT, {"content": sha256}).all()
        self.generation = snap.state
        for entry_id in exact:
            found[entry_id] = ("sha256", 0, 0, None)
        if hashes is not None and hashes.pdq_usable:
            # Flat images (low PDQ quality) match by exact bytes only: their PDQ and pHash are
            # degenerate (every flat image's pHash is 8000000000000000) and would match each other.
            pdq_hits: dict[str, tuple[int, int]] = {}
            for variant, hex_hash in enumerate(dihedral or [hashes.pdq]):
                for entry_id, dist, quality in snap.search_pdq(hex_hash):
                    if quality >= PDQ_MIN_QUALITY and (entry_id not in pdq_hits or dist < pdq_hits[entry_id][0]):
                        pdq_hits[entry_id] = (dist, variant)
            for entry_id, (dist, variant) in pdq_hits.items():
                found.setdefault(entry_id, ("pdq", dist, variant, None))
            for entry_id, dist in snap.search_phash(hashes.phash):
                found.setdefault(entry_id, ("phash", dist, 0, None))
            # A still of a banked video: the picture is one of its keyframes (as is; turned stills are rare).
            frame_times: dict[str, float] = {}
            for video, pos, dist in snap.search_frame(hashes.pdq):
                entry_id = snap.video_ids[video]
                best = found.get(entry_id)
                if best is None or (best[0] == "video-frame" and dist < best[1]):
                    found[entry_id] = ("video-frame", dist, 0, None)
                    frame_times[entry_id] = round(float(snap.video_frames[video][pos].t), 3)
            return self._hits(found, frame_times)
        return self._hits(found)

    def match_video(self, sha256: str | None, md5: str | None,
                    frames: Sequence[video_match.FrameLike]) -> list[BankHit]:
        """A video's hits: as it is, then turned each of the other 7 ways (a mirrored or rotated copy) where
        its frames carry their orientations (stored frames do not), each entry once, as is first. File
        hashes go only with the first ask: a turned copy has no bytes of its own."""
        hits = self._match_video_once(sha256, md5, frames)
        seen = {hit.entry_id for hit in hits}
        for variant in range(1, len(ORIENTATION_NAMES)):
            query = turned(list(frames), variant)
            if not query:
                break
            for hit in self._match_video_once(None, None, query):
                if hit.entry_id not in seen:
                    seen.add(hit.entry_id)
                    hits.append(replace(hit, variant=variant))
        return hits

    def _match_video_once(self, sha256: str | None, md5: str | None,
                          frames: Sequence[video_match.FrameLike]) -> list[BankHit]:
        """One ask. ``sha256``/``md5`` None means only part of the file was read: skip exact. ``frames`` are
        its vPDQ frame hashes (vpdq.FrameHash or stored frames)."""
        found: Found = {}
        exact = [c for c in (models.BankEntry.sha256 == sha256 if sha256 else None,
                             models.BankEntry.md5 == md5 if md5 else None) if c is not None]
        with self.db.session() as session:
            snap = self.holder.current(session)
            rows = session.execute(select(models.BankEntry.id, models.BankEntry.sha256).where(
                or_(*exact), models.BankEntry.status == "confirmed")).all() if exact else []
        self.generation = snap.state
        for row in rows:
            found[row.id] = ("sha256" if sha256 and row.sha256 == sha256 else "md5", 0, 0, None)
        query = video_match.usable(frames)
        if query:
            pairs: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # video number -> pairs
            for qi, frame in enumerate(query):
                for video, pos, dist in snap.search_frame(frame.pdq):
                    pairs[video].append((qi, pos, dist))
            for video, video_pairs in pairs.items():
                result = video_match.tally(video_pairs, query, snap.video_frames[video])
                if result.matches(self.vpdq_match_share):
                    found.setdefault(snap.video_ids[video], ("vpdq", result.best_distance, 0, result))
            # A keyframe within the image threshold of a banked image: the video shows that picture.
            frame_times: dict[str, float] = {}
            for frame in query:
                for entry_id, dist, quality in snap.search_pdq(frame.pdq):
                    best = found.get(entry_id)
                    if quality >= PDQ_MIN_QUALITY and (entry_id not in found or
                                                       (best[0] == "frame-pdq" and dist < best[1])):
                        found[entry_id] = ("frame-pdq", dist, 0, None)
                        frame_times[entry_id] = round(float(frame.t), 3)
            return self._hits(found, frame_times)
        return self._hits(found)

    def _hits(self, found: Found, frame_times: dict[str, float] | None = None) -> list[BankHit]:
        """The found entries that are (still) confirmed, with what people need to see about them."""
        if not found:
            return []
        with self.db.session() as session:
            rows = session.execute(
                select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
                .where(models.BankEntry.id.in_(list(found)), models.BankEntry.status == "confirmed")
            ).all()
            disputes = banks.disputes_of(session, [entry.id for entry, _ in rows])
        hits = []
        for entry, bank in rows:
            method, dist, variant, video = found[entry.id]
            hits.append(BankHit(entry_id=entry.id, bank=bank.name, bank_kind=bank.kind, label=entry.label,
                                notes=entry.notes, method=method, distance=dist, variant=variant,
                                source_links=list(entry.source_links or []), source_url=entry.source_url,
                                video=video, frame_t=(frame_times or {}).get(entry.id),
                                disputes=tuple(Dispute(**d) for d in disputes.get(entry.id, []))))
        return hits
