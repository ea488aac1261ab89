"""Turn bank hits into evidence: a confirmed fake is decisive, a registered original is news.

Images match by SHA-256, PDQ or pHash; videos by SHA-256, MD5 or vPDQ (shares of frames sampled once a second).

A confirmed entry that a peer disputes still argues ``known-fake``: it is confirmed here, and the
dispute is another newsroom's opinion, not a decision. The evidence says who disputes it and why,
so every place that shows the match (desk, PDF, exports, the extension) shows the dispute too. A
known-fake entry that matched before and has since been retracted leaves a note that argues for
nothing: which entry, when and by whom, so a changed verdict explains itself (docs/banks.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from worker.stages.hashes import ORIENTATION_NAMES
from worker.stages.video_match import VideoMatch

BITS = {"sha256": 1, "md5": 1, "pdq": 256, "phash": 64, "vpdq": 256, "frame-pdq": 256, "video-frame": 256}
EXACT = ("sha256", "md5")
STAGE = Stage.BANK_MATCH


@dataclass(frozen=True)
class Dispute:
    """Another instance's dispute of an entry (its opinion on the exchange feed)."""

    by: str
    reason: str
    at: str | None = None  # ISO 8601

    def as_dict(self) -> dict[str, str | None]:
        return {"by": self.by, "reason": self.reason, "at": self.at}


@dataclass(frozen=True)
class Retraction:
    """A known-fake entry a content matched before it was retracted."""

    entry_id: str
    bank: str
    label: str
    at: str | None  # ISO 8601
    by: str | None
    note: str | None


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
    disputes: tuple[Dispute, ...] = ()


def _how(hit: BankHit) -> str:
    if hit.method in EXACT:
        return "the identical file" + (" (MD5)" if hit.method == "md5" else "")
    if hit.video is not None:
        v = hit.video
        how = (f"{v.query_share:.0%} of this video's sampled frames and {v.entry_share:.0%} of the banked "
               f"video's; best PDQ distance {v.best_distance} of 256")
        return how + (f", {ORIENTATION_NAMES[hit.variant]}" if hit.variant else "")
    if hit.method in ("frame-pdq", "video-frame"):
        whose = "the" if hit.method == "frame-pdq" else "the banked video's"
        return f"{whose} frame at {hit.frame_t:g} s, PDQ distance {hit.distance} of 256"
    how = f"{hit.method.upper() if hit.method == 'pdq' else 'pHash'} distance {hit.distance} of {BITS[hit.method]}"
    if hit.variant:
        how += f", {ORIENTATION_NAMES[hit.variant]}"
    return how


def score(hit: BankHit) -> float:
    """Similarity in [0, 1]: 1 for identical bytes, 1 - distance/bits for perceptual matches, and for a video
    (vPDQ) the share of the checked video's frames that match, the share the match rule weighs (an excerpt
    of a banked clip is wholly in it)."""
    if hit.method in EXACT:
        return 1.0
    if hit.video is not None:
        return round(hit.video.query_share, 4)
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
        disputed = ""
        if hit.disputes:
            details["disputed"] = True
            details["disputes"] = [d.as_dict() for d in hit.disputes]
            disputed = " " + disputed_words(hit.disputes)
        # A video near-duplicate says how many of its sampled frames agree: "N of M sampled frames match ...".
        frames = f"{hit.video.query_matched} of {hit.video.query_frames} sampled frames match" if hit.video else ""
        if hit.method == "frame-pdq":
            frames = "A frame of this video matches"
        elif hit.method == "video-frame":
            frames = "Matches a frame of"
        if hit.bank_kind == "fake":
            what = f"{frames} a confirmed fake" if frames else "Matches a confirmed fake"
            out.append(Evidence(stage=STAGE, kind=Kind.KNOWN_FAKE, supports=Level.KNOWN_FAKE, score=score(hit),
                                summary=f"{what} in “{hit.bank}”: {hit.label} ({_how(hit)}).{disputed}",
                                details=details))
        else:
            source = hit.source_links[0] if hit.source_links else (hit.source_url or hit.bank)
            word = f"{frames}" if frames else ("Identical to" if hit.method in EXACT else "Near duplicate of")
            out.append(Evidence(stage=STAGE, kind=Kind.NEAR_ORIGINAL, score=score(hit),
                                summary=f"{word} a registered original: {hit.label} ({source}; {_how(hit)}).{disputed}",
                                details=details))
    return out


def disputed_words(disputes: tuple[Dispute, ...] | list[Dispute]) -> str:
    """'This entry is disputed by beta: “it is real”.' Never hides who, never drops a reason."""
    parts = [f"{d.by}: “{d.reason}”" if d.reason else f"{d.by} (no reason given)" for d in disputes]
    return f"This entry is disputed by {'; '.join(parts)}."


RETRACTED_KIND = Kind.BANK_ENTRY_RETRACTED


def retraction_evidence(retractions: list[Retraction]) -> list[Evidence]:
    """Notes for known-fake entries this content matched before their retraction; they support no level."""
    out = []
    for r in retractions:
        when = f" on {r.at[:10]}" if r.at else ""
        who = f" by {r.by}" if r.by else ""
        why = f" (“{r.note}”)" if r.note else ""
        out.append(Evidence(
            stage=STAGE, kind=RETRACTED_KIND,
            summary=(f"A known-fake entry this matched (bank “{r.bank}”, entry {r.entry_id}: {r.label}) was retracted"
                     f"{when}{who}{why}; it no longer counts as evidence."),
            details={"entry_id": r.entry_id, "bank": r.bank, "label": r.label, "retracted_at": r.at,
                     "retracted_by": r.by, "note": r.note}))
    return out
