"""Verdict types and fusion: the level table of DESIGN.md in one place.

Stages only add ``Evidence``; ``fuse`` alone decides the badge, so a new stage never has to know
how the others rank. The worker imports these types; the API only serialises them.
"""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from server.vocabulary import DetectionState, Stage


class Level(str, Enum):
    KNOWN_FAKE = "known-fake"
    TAMPERED = "tampered"
    AI_DECLARED = "ai-declared"
    VERIFIED = "verified"
    LIKELY_SYNTHETIC = "likely-synthetic"
    RECOVERED = "recovered"
    SIGNED_UNTRUSTED = "signed-untrusted"
    NO_EVIDENCE = "no-evidence"
    UNAVAILABLE = "unavailable"


# Highest applicable wins, ranked by how much each level's evidence proves (docs/verdicts.md). Written
# out rather than taken from the enum, so reordering members can never silently reorder verdicts.
# Trusted credentials (VERIFIED) outrank a detector's score: a signed statement by an accountable
# signer that the content is unchanged beats a statistical guess. RECOVERED (a stripped copy matching a stored
# original's trusted credentials) is never VERIFIED, since these bytes were not signed, and ranks below a
# detector's score on these very bytes: a near match survives crops and edits. UNAVAILABLE ranks last: it only
# shows when nothing else could be said.
PRIORITY: tuple[Level, ...] = (
    Level.KNOWN_FAKE,
    Level.TAMPERED,
    Level.AI_DECLARED,
    Level.VERIFIED,
    Level.LIKELY_SYNTHETIC,
    Level.RECOVERED,
    Level.SIGNED_UNTRUSTED,
    Level.NO_EVIDENCE,
    Level.UNAVAILABLE,
)

BADGES: dict[Level, tuple[str, str]] = {
    Level.KNOWN_FAKE: ("red", "Known fake"),
    Level.TAMPERED: ("orange", "Credentials broken"),
    Level.AI_DECLARED: ("purple", "Declared AI-made"),
    Level.VERIFIED: ("green", "Verified credentials"),
    Level.LIKELY_SYNTHETIC: ("amber", "Likely synthetic"),
    Level.RECOVERED: ("teal", "Credentials found for a matching original"),
    Level.SIGNED_UNTRUSTED: ("blue", "Signed, signer not trusted"),
    Level.NO_EVIDENCE: ("grey", "No evidence either way"),
    Level.UNAVAILABLE: ("none", "Could not check"),
}

NO_EVIDENCE_SUMMARY = (
    "No content credentials, known-fake match or AI declaration was found. "
    "This does not mean it is authentic."
)


# Levels that make detection pointless: a bank or the file's own provenance already answered. Strongest
# first (as in PRIORITY). The worker's gate skips detection for them; the desk says why it was skipped.
DECISIVE: tuple[Level, ...] = (Level.KNOWN_FAKE, Level.TAMPERED, Level.AI_DECLARED)


def detection_pending(versions: dict[str, str]) -> bool:
    """Whether the detectors have yet to answer: such a verdict is interim, never final. Shared by the
    worker (which sets it) and the API (which must not hand an interim verdict out as final)."""
    return versions.get(Stage.DETECT) == DetectionState.PENDING


class Evidence(BaseModel):
    """One finding of one stage. ``supports`` names the level it argues for, if any."""

    stage: str
    kind: str
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    supports: Level | None = None


class Verdict(BaseModel):
    level: Level
    label: str
    badge: str
    summary: str
    sha256: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def decisive_level(evidence: list[Evidence]) -> Level | None:
    """The strongest decisive level some evidence supports, or None when detection still has a say."""
    return next((level for level in DECISIVE if any(item.supports == level for item in evidence)), None)


def strongest(evidence: list[Evidence]) -> tuple[Level, list[Evidence]]:
    """The winning level and the evidence items that support it (highest score first)."""
    for level in PRIORITY:
        support = [item for item in evidence if item.supports == level]
        if support:
            support.sort(key=lambda item: -(item.score if item.score is not None else 1.0))
            return level, support
    return Level.NO_EVIDENCE, []


def fuse(
    evidence: list[Evidence],
    *,
    sha256: str | None,
    versions: dict[str, str],
    timings: dict[str, float] | None = None,
) -> Verdict:
    """Fold all evidence into one verdict whose summary cites the strongest item."""
    level, support = strongest(evidence)
    badge, label = BADGES[level]
    if level == Level.NO_EVIDENCE:
        summary = NO_EVIDENCE_SUMMARY
    else:
        summary = support[0].summary
        if len(support) > 1:
            summary += f" ({len(support) - 1} more finding{'s' if len(support) > 2 else ''} agree.)"
    return Verdict(
        level=level,
        label=label,
        badge=badge,
        summary=summary,
        sha256=sha256,
        evidence=list(evidence),
        versions=dict(versions),
        timings=dict(timings or {}),
    )


def unavailable(reason: str, *, stage: str, code: str, sha256: str | None, versions: dict[str, str]) -> Verdict:
    """A verdict for media we could not examine; the reason is what the reader sees."""
    item = Evidence(stage=stage, kind=code, summary=reason, supports=Level.UNAVAILABLE)
    return fuse([item], sha256=sha256, versions=versions)
