"""The analysis ruleset runner, shaped like Socorro's processor.

Each rule is a predicate and an action over one ``Item``; a rule that raises becomes a note on the
result and the others still run. Rules add evidence; ``server.verdicts.fuse`` alone decides the level.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from celery.exceptions import SoftTimeLimitExceeded

from server.config import PIPELINE_VERSION, Settings
from server.verdicts import Evidence, Level, Verdict, fuse
from worker.stages.decode import Decoded
from worker.stages.hashes import PerceptualHashes

if TYPE_CHECKING:
    from worker.banks.matcher import BankMatcher
    from worker.stages.keyframes import Keyframe, VideoInfo
    from worker.stages.video_hashes import VideoHashes

log = logging.getLogger(__name__)

# Levels that make detection pointless: provenance or a bank already answered.
DECISIVE = frozenset({Level.KNOWN_FAKE, Level.TAMPERED, Level.AI_DECLARED})


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
    versions: dict[str, str] = field(default_factory=lambda: {"pipeline": PIPELINE_VERSION})
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.data).hexdigest()

    @property
    def decisive(self) -> bool:
        return any(item.supports in DECISIVE for item in self.evidence)


class Rule(Protocol):
    name: str
    version: str

    def applies(self, item: Item) -> bool: ...

    def act(self, item: Item) -> None: ...


def run_rules(item: Item, rules: Sequence[Rule]) -> Item:
    for rule in rules:
        try:
            if not rule.applies(item):
                continue
            started = time.perf_counter()
            try:
                rule.act(item)
            finally:
                item.timings[rule.name] = round((time.perf_counter() - started) * 1000, 3)
            item.versions[rule.name] = rule.version
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: the whole analysis stops (worker/jobs.py says so in the verdict)
        except Exception as exc:  # noqa: BLE001 - a failing rule is a note, never a lost check
            log.exception("rule %s failed on %s", rule.name, item.sha256)
            item.evidence.append(Evidence(
                stage=rule.name, kind="stage-error",
                summary=f"The {rule.name} step failed and was skipped ({type(exc).__name__}).",
                details={"error": str(exc)[:500]},
            ))
    return item


def analyze(data: bytes, settings: Settings, *, mime: str | None = None,
            rules: Sequence[Rule] | None = None, matcher: BankMatcher | None = None,
            source_size: int | None = None) -> Verdict:
    """Run every rule over the bytes and fuse the evidence into a verdict.

    ``source_size`` is the full file's size when ``data`` is only the part of it that was fetched.
    """
    from worker.pipeline.rules import RULES

    item = run_rules(Item(data=data, settings=settings, mime=mime, matcher=matcher, source_size=source_size),
                     RULES if rules is None else rules)
    return fuse(item.evidence, sha256=item.sha256, versions=item.versions, timings=item.timings)
