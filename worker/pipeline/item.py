"""What the rules work on and what they are: the ``Item`` and the ``Rule`` protocol.

In a module of their own so that the rules, the gate and the runner all import them from below: the
runner imports the ruleset, and nothing here imports either.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from server.config import PIPELINE_VERSION, Settings
from server.verdicts import Evidence, Verdict, decisive_level
from worker.stages.decode import Decoded
from worker.stages.hashes import PerceptualHashes

if TYPE_CHECKING:
    from worker.banks.matcher import BankMatcher
    from worker.stages.keyframes import Keyframe, VideoInfo
    from worker.stages.video_hashes import VideoHashes


@dataclass
class MediaFacts:
    """What the record keeps about the bytes beside the verdict (``records.record_media``).

    Rules fill it in as they learn each fact, so no job has to find them again in the evidence.
    """

    # Type and size of an image or video that decoded; all None when nothing did.
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    # An image's {sha256, pdq, pdq_quality, phash, dihedral} or a video's {sha256, md5, frames, partial}:
    # kept so bank changes re-match stored media without refetching.
    hashes: dict[str, Any] | None = None


@dataclass
class Analysis:
    """One analysis: the verdict, and the facts to store beside it."""

    verdict: Verdict
    facts: MediaFacts


@dataclass
class Item:
    """What the rules work on: the bytes, what earlier rules derived from them, and the findings."""

    data: bytes
    settings: Settings
    sha256: str = ""
    mime: str | None = None
    decoded: Decoded | None = None
    hashes: PerceptualHashes | None = None
    dihedral: list[str] | None = None
    matcher: BankMatcher | None = None  # absent when no bank database is at hand (e.g. a bare CLI check)
    video: VideoInfo | None = None
    keyframes: list[Keyframe] | None = None
    video_hashes: VideoHashes | None = None
    # The whole file's size when ``data`` is only the part fetched by range requests (a long video):
    # then file hashes describe the part and must never be matched as the whole.
    source_size: int | None = None
    evidence: list[Evidence] = field(default_factory=list)
    facts: MediaFacts = field(default_factory=MediaFacts)
    versions: dict[str, str] = field(default_factory=lambda: {"pipeline": PIPELINE_VERSION})
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.data).hexdigest()

    @property
    def decisive(self) -> bool:
        """Provenance or a bank already answered, so detection has nothing to add."""
        return decisive_level(self.evidence) is not None


class Rule(Protocol):
    name: str
    version: str

    def applies(self, item: Item) -> bool: ...

    def act(self, item: Item) -> None: ...
