"""The video rules: keyframes and vPDQ's frames, their hashes, bank matching by file hash and vPDQ, and the
manifest repository's recovery by vPDQ frames.

A video never reaches the image rules (decode, hashes, bank match, watermark): everything after the
keyframes rule works from ``item.keyframes``, so its cost is bounded by ``VideoLimits`` however long the
upload. Provenance (C2PA) runs for videos in the shared ProvenanceRule. Only a recovered original's
credentials (soft_binding.frame_recovery_evidence) may support a level here, as an image's do.
"""
from __future__ import annotations


from server.media_store import MediaStore
from server.media_types import VIDEO_TYPES
from server.provenance import repository
from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from worker.pipeline.item import Item
from worker.stages import bank_match, soft_binding
from worker.stages.keyframes import VideoError, VideoInfo, VideoLimits, extract
from worker.stages.thumbnails import store_keyframes
from worker.stages.video_hashes import video_hashes
from worker.stages.vpdq import FrameHash

_CONTAINER_NAMES = {"video/mp4": "MP4", "video/quicktime": "QuickTime (MOV)", "video/webm": "WebM"}
_CAP_WORDS = {
    "duration": "first {m} s analysed",
    "time-budget": "decoding stopped at the time limit after {s} s",
    "damaged": "damaged after {s} s",
    "truncated": "the data ends after {s} s, before its declared length",
    "partial-fetch": "only the first {s} s were fetched from a larger file",
}


def is_partial(item: Item) -> bool:
    """Whether ``item.data`` is only part of the file (a long video read by range requests)."""
    return item.source_size is not None and item.source_size != len(item.data)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _summary(mime: str | None, info: VideoInfo, max_seconds: float) -> str:
    name = _CONTAINER_NAMES.get(mime or "", "Video")
    text = f"{name} video, {info.width}x{info.height}"
    if info.duration_s:
        text += f", {_seconds(info.duration_s)} s"
    notes = [_CAP_WORDS[c].format(s=_seconds(info.analysed_s), m=_seconds(max_seconds))
             for c in info.capped if c in _CAP_WORDS]
    return text + (f" ({'; '.join(notes)})" if notes else "") + "."


class VideoKeyframesRule:
    """Decode a bounded start of the video once; later video rules read ``item.video`` and ``item.keyframes``."""

    name, version = Stage.KEYFRAMES, "1"

    def applies(self, item: Item) -> bool:
        return item.mime in VIDEO_TYPES

    def act(self, item: Item) -> None:
        try:
            info, frames = extract(item.data, VideoLimits.from_settings(item.settings))
        except VideoError as exc:
            item.evidence.append(Evidence(stage=self.name, kind=exc.code, supports=Level.UNAVAILABLE,
                                          summary=f"Could not check: {exc.reason}.", details={"mime": item.mime}))
            return
        if is_partial(item):  # ending early is expected of a part, not a sign of damage
            info.capped = ["partial-fetch" if c == "truncated" else c for c in info.capped]
        item.video, item.keyframes = info, frames
        item.facts.mime, item.facts.width, item.facts.height = item.mime, info.width, info.height
        item.evidence.append(Evidence(
            stage=self.name, kind=Kind.DECODED, summary=_summary(item.mime, info, item.settings.video_max_seconds),
            details={"format": "video", "container": info.container, "codec": info.codec, "width": info.width,
                     "height": info.height, "duration_s": info.duration_s, "fps": info.fps,
                     "frames_decoded": info.frames_decoded, "analysed_s": info.analysed_s,
                     "capped": list(info.capped), "mime": item.mime, "bytes": len(item.data),
                     "source_bytes": item.source_size},
        ))


class VideoHashRule:
    """File MD5/SHA-256 and vPDQ's frame PDQs: the ecosystem's video hashes, kept for matching and the desk.

    Also writes the ``keyframes`` evidence (the filmstrip), which carries each keyframe's PDQ.
    """

    name, version = Stage.VIDEO_HASHES, "2"

    def applies(self, item: Item) -> bool:
        return item.keyframes is not None

    def act(self, item: Item) -> None:
        info = item.video
        hashes = video_hashes(item.data, item.keyframes, info.sampled if info else ())
        partial = is_partial(item)
        item.video_hashes = hashes
        store = MediaStore(item.settings.media_path) if item.settings.keep_thumbnails else None
        thumbs = store_keyframes([frame.image for frame in item.keyframes], store)
        item.evidence.append(Evidence(
            stage=Stage.KEYFRAMES, kind=Kind.KEYFRAMES,
            summary=f"{len(item.keyframes)} keyframes kept "
                    f"({sum(k.reason == 'scene' for k in item.keyframes)} at scene cuts).",
            details={"frames": [{"t": round(k.t, 3), "reason": k.reason, "thumb": thumb, "pdq": h.pdq,
                                 "pdq_quality": h.quality}
                                for k, h, thumb in zip(item.keyframes, hashes.keyframes, thumbs)],
                     "count": len(item.keyframes), "capped": list(info.capped) if info else []},
        ))
        usable = sum(h.usable for h in hashes.frames)
        summary = (f"Video hashes computed: vPDQ, the PDQ of {len(hashes.frames)} distinct frames sampled about "
                   f"once a second ({usable} usable for matching)")
        if partial:
            summary += (f"; only {len(item.data):,} of {item.source_size:,} bytes were fetched, so the file "
                        "hashes are of that part and cannot match the whole file exactly")
        found = {"sha256": hashes.sha256, "md5": None if partial else hashes.md5,
                 "frames": [_frame(h) for h in hashes.frames], "partial": partial}
        item.facts.hashes = found
        item.evidence.append(Evidence(stage=Stage.HASHES, kind=Kind.VIDEO_HASHES, summary=summary + ".",
                                      details=found))


def _frame(h: FrameHash) -> dict[str, object]:
    out: dict[str, object] = {"t": h.t, "pdq": h.pdq, "quality": h.quality}
    if h.until is not None:
        out["until"] = h.until  # consecutive samples within vpdq.PRUNE_DISTANCE of this one
    return out


class VideoBankMatchRule:
    """The identical file (SHA-256, MD5) or a near-duplicate (vPDQ, in any of 8 orientations) in any bank."""

    name, version = Stage.VIDEO_BANK_MATCH, "2"

    def applies(self, item: Item) -> bool:
        return item.matcher is not None and item.mime in VIDEO_TYPES

    def act(self, item: Item) -> None:
        whole = not is_partial(item)  # a part's file hashes must never match a whole file
        hashes = item.video_hashes
        hits = item.matcher.match_video(
            item.sha256 if whole else None,
            hashes.md5 if whole and hashes is not None else None,
            hashes.frames if hashes is not None else (),
        )
        item.versions["banks"] = "generation-%d" % item.matcher.generation[0]
        item.evidence.extend(bank_match.evidence(hits))


class VideoRecoveryRule:
    """The manifest repository for videos (docs/repository.md): a validly signed video leaves its store and declared
    bindings for the verdict's recording (its vPDQ frames are in ``video-hashes``); a video without credentials is
    looked up by its frames, against signed videos' frames and signed pictures' PDQs."""

    name, version = Stage.RECOVERY, "1"

    def applies(self, item: Item) -> bool:
        return item.matcher is not None and item.mime in VIDEO_TYPES and item.video_hashes is not None

    def act(self, item: Item) -> None:
        label = soft_binding.valid_manifest(item.evidence)
        if label is not None:
            put = MediaStore(item.settings.media_path).put
            item.evidence.append(soft_binding.record_video_bindings(item.data, item.mime, label, put))
        elif any(e.kind == Kind.C2PA_ABSENT for e in item.evidence):
            settings = item.settings
            with item.matcher.db.session() as session:
                found = repository.find_frames(session, item.video_hashes.frames, pdq_threshold=settings.pdq_threshold,
                                               frame_threshold=settings.vpdq_frame_threshold,
                                               exclude_sha256=item.sha256)
            if found is not None:
                item.evidence.append(soft_binding.frame_recovery_evidence(found, settings.vpdq_match_share))
