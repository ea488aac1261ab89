"""Turn bank hits into evidence: a confirmed fake is decisive, a registered original is news.

Images match by SHA-256, PDQ or pHash; videos by SHA-256, MD5 or vPDQ (shares of keyframes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from server.verdicts import Evidence, Level
from worker.stages.hashes import ORIENTATION_NAMES
from worker.stages.video_match import VideoMatch

BITS = {"sha256": 1, "md5": 1, "pdq": 256, "phash": 64, "vpdq": 256, "frame-pdq": 256, "video-frame": 256}
EXACT = ("sha256", "md5")
STAGE = "bank-match"


@dataclass(frozen=True)
class BankHit:
    entry_id: str
    bank: str
    bank_kind: str  # fake | original
    label: str
    notes: str
    method: str  # sha256 | pdq | phash | video-frame (images; the last: a banked video's keyframe) |
    #              md5 | vpdq | frame-pdq (videos; the last: a keyframe is a banked image)
    distance: int  # vpdq: the best frame distance
    variant: int = 0  # index into ORIENTATION_NAMES for PDQ matches
    source_links: list[str] = field(default_factory=list)
    source_url: str | None = None
    video: VideoMatch | None = None  # vpdq: the shares behind the match
    frame_t: float | None = None  # frame-pdq / video-frame: when the matching keyframe is shown (seconds)


def _how(hit: BankHit) -> str:
    if hit.method in EXACT:
        return "the identical file" + (" (MD5)" if hit.method == "md5" else "")
    if hit.video is not None:
        v = hit.video
        return (f"{v.query_share:.0%} of this video's keyframes and {v.entry_share:.0%} of the banked video's; "
                f"best PDQ distance {v.best_distance} of 256")
    if hit.method in ("frame-pdq", "video-frame"):
        whose = "the" if hit.method == "frame-pdq" else "the banked video's"
        return f"{whose} keyframe at {hit.frame_t:g} s, PDQ distance {hit.distance} of 256"
    how = f"{hit.method.upper() if hit.method == 'pdq' else 'pHash'} distance {hit.distance} of {BITS[hit.method]}"
    if hit.variant:
        how += f", {ORIENTATION_NAMES[hit.variant]}"
    return how


def score(hit: BankHit) -> float:
    """Similarity in [0, 1]: 1 for identical bytes, 1 - distance/bits for perceptual matches,
    the smaller of the two shares for a video (vPDQ)."""
    if hit.method in EXACT:
        return 1.0
    if hit.video is not None:
        return round(min(hit.video.query_share, hit.video.entry_share), 4)
    return round(1 - hit.distance / BITS[hit.method], 4)


def evidence(hits: list[BankHit]) -> list[Evidence]:
    out = []
    for hit in sorted(hits, key=lambda h: -score(h)):
        details = {"entry_id": hit.entry_id, "bank": hit.bank, "bank_kind": hit.bank_kind, "label": hit.label,
                   "notes": hit.notes, "method": hit.method, "distance": hit.distance,
                   "transform": ORIENTATION_NAMES[hit.variant], "source_links": hit.source_links}
        if hit.video is not None:
            details.update(hit.video.details())
        if hit.frame_t is not None:
            details["frame_t"] = hit.frame_t
        # A video near-duplicate says how many keyframes agree: "N of M keyframes match ...".
        frames = f"{hit.video.query_matched} of {hit.video.query_frames} keyframes match" if hit.video else ""
        if hit.method == "frame-pdq":
            frames = "A keyframe of this video matches"
        elif hit.method == "video-frame":
            frames = "Matches a keyframe of"
        if hit.bank_kind == "fake":
            what = f"{frames} a confirmed fake" if frames else "Matches a confirmed fake"
            out.append(Evidence(stage=STAGE, kind="known-fake", supports=Level.KNOWN_FAKE, score=score(hit),
                                summary=f"{what} in “{hit.bank}”: {hit.label} ({_how(hit)}).", details=details))
        else:
            source = hit.source_links[0] if hit.source_links else (hit.source_url or hit.bank)
            word = f"{frames}" if frames else ("Identical to" if hit.method in EXACT else "Near duplicate of")
            out.append(Evidence(stage=STAGE, kind="near-original", score=score(hit),
                                summary=f"{word} a registered original: {hit.label} ({source}; {_how(hit)}).",
                                details=details))
    return out
