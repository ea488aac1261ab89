"""The analysis ruleset runner, shaped like Socorro's processor.

Each rule is a predicate and an action over one ``Item``; a rule that raises becomes a note on the
result and the others still run. Rules add evidence; ``server.verdicts.fuse`` alone decides the level.
The ruleset is an argument (``RULES`` from worker/pipeline/rules.py unless a caller names its own).
"""
from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from server.config import Settings
from server.verdicts import Evidence, fuse
from server.vocabulary import Kind
from worker.pipeline.item import Analysis, Item, Rule
from worker.pipeline.rules import RULES

if TYPE_CHECKING:
    from worker.banks.matcher import BankMatcher

log = logging.getLogger(__name__)
# Told (rule name, "start" | "end" | "skip", ms on "end") as the ruleset goes: the caller records progress,
# the runner stays free of where it goes (worker/jobs.py writes it for the desk).
RuleProgress = Callable[[str, str, float | None], None]


def _tell(progress: RuleProgress | None, name: str, event: str, ms: float | None = None) -> None:
    if progress is None:
        return
    try:
        progress(name, event, ms)
    except Exception:  # noqa: BLE001 - progress is never worth a lost analysis
        log.warning("progress callback failed for %s %s", name, event, exc_info=True)


def run_rules(item: Item, rules: Sequence[Rule], progress: RuleProgress | None = None) -> Item:
    for rule in rules:
        try:
            if not rule.applies(item):
                _tell(progress, rule.name, "skip")
                continue
            _tell(progress, rule.name, "start")
            started = time.perf_counter()
            try:
                rule.act(item)
            finally:
                item.timings[rule.name] = round((time.perf_counter() - started) * 1000, 3)
                _tell(progress, rule.name, "end", item.timings[rule.name])
            item.versions[rule.name] = rule.version
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: the whole analysis stops (worker/jobs.py says so in the verdict)
        except Exception as exc:  # noqa: BLE001 - a failing rule is a note, never a lost check
            log.exception("rule %s failed on %s", rule.name, item.sha256)
            item.evidence.append(Evidence(
                stage=rule.name, kind=Kind.STAGE_ERROR,
                summary=f"The {rule.name} step failed and was skipped ({type(exc).__name__}).",
                details={"error": str(exc)[:500]},
            ))
    return item


def analyze(data: bytes, settings: Settings, *, mime: str | None = None, rules: Sequence[Rule] = RULES,
            matcher: BankMatcher | None = None, source_size: int | None = None,
            progress: RuleProgress | None = None) -> Analysis:
    """Run every rule over the bytes: the fused verdict, and the facts the record keeps beside it.

    ``source_size`` is the full file's size when ``data`` is only the part of it that was fetched;
    ``progress`` hears each rule start, end or be skipped.
    """
    item = run_rules(Item(data=data, settings=settings, mime=mime, matcher=matcher, source_size=source_size), rules,
                     progress)
    verdict = fuse(item.evidence, sha256=item.sha256, versions=item.versions, timings=item.timings)
    return Analysis(verdict=verdict, facts=item.facts)


def warm(settings: Settings) -> float:
    """Run the ruleset once, without the record, on a made-up 512 x 512 JPEG; returns the seconds it took.

    Some rules load what they need on first use (pHash's FFT from SciPy, OpenCV for the watermark check, the
    c2pa library): a pool process's first image cost about 0.3 s more than the others, inside a reader's page
    (issue 17). Called in the worker's main process before the pool forks, every process starts with them."""
    started = time.perf_counter()
    pixels = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    analyze(buf.getvalue(), settings)
    return time.perf_counter() - started
