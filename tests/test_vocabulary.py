"""One vocabulary (server/vocabulary.py): the words the worker writes are the words the desk reads."""
from __future__ import annotations

from pathlib import Path

from server import models
from server.config import Settings
from server.detection import manifest as mf
from server.desk.service import DETECTION_STATES, check_status
from server.verdicts import DECISIVE, Level, Verdict
from server.vocabulary import DetectionState, Kind, Stage
from tests.c2pa_kit import make_ca, sign
from tests.clips import make_clip
from tests.helpers import make_jpeg, make_png
from worker.pipeline.rules import RULES
from worker.pipeline.runner import analyze
from worker.stages import bank_match, c2pa_explain

SETTINGS = Settings(max_pixels=50_000_000, detect=False)


def detection_stage(verdict: Verdict) -> dict:
    """The desk's detection stage for a finished check of this verdict."""
    check = models.Check(id="c" * 32, source="upload", status="done", sha256=verdict.sha256)
    status = check_status(check, verdict.model_dump(mode="json"), "x.jpg")
    return next(s for s in status["stages"] if s["key"] == "detection")


def test_the_desk_says_when_detection_is_turned_off() -> None:
    verdict = analyze(make_jpeg(), SETTINGS).verdict
    assert verdict.versions["detect"] == "off"
    stage = detection_stage(verdict)
    assert (stage["state"], stage["note"]) == ("skipped", "detection is turned off on this server")


def test_the_desk_has_words_for_every_detection_state() -> None:
    assert set(DETECTION_STATES) == set(DetectionState)
    for state, (shown, note) in DETECTION_STATES.items():
        assert shown in {"done", "skipped", "failed", "running"}, state
        assert note != "no detector ran", state


def test_no_detector_configured_is_not_called_turned_off(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(mf, "DEFAULT_MODELS", tmp_path / "no-such-models")  # an install without models/
    verdict = analyze(make_jpeg(), Settings(max_pixels=50_000_000, models_dir="")).verdict
    assert verdict.versions["detect"] == "not-configured"
    assert detection_stage(verdict)["note"] == "no detector is configured on this server"


def test_decisive_levels_are_the_ones_above_verified_strongest_first() -> None:
    assert DECISIVE == (Level.KNOWN_FAKE, Level.TAMPERED, Level.AI_DECLARED)


def test_every_rule_is_named_in_the_vocabulary() -> None:
    assert {rule.name for rule in RULES} <= set(Stage)
    assert bank_match.STAGE == Stage.BANK_MATCH and c2pa_explain.STAGE == Stage.C2PA
    assert bank_match.RETRACTED_KIND == Kind.BANK_ENTRY_RETRACTED


def test_what_the_pipeline_writes_is_in_the_vocabulary(tmp_path: Path) -> None:
    settings = Settings(max_pixels=50_000_000, detect=False, data_dir=tmp_path / "data")
    signed, _store = sign(make_jpeg(), make_ca("Vocabulary").leaf("Newsroom", "Example News"))
    samples = [make_jpeg(), make_png(), b"<html><body>x</body></html>", make_png()[:40],
               make_clip(seed=1, seconds=1, fps=10, size=(160, 120)), signed]
    seen = set()
    for data in samples:
        verdict = analyze(data, settings).verdict
        assert verdict.versions.get("detect") in set(DetectionState) | {None}
        for item in verdict.evidence:
            assert item.stage in set(Stage), item
            # An unavailable item's kind is its refusal's code, which says why in its own words.
            assert item.kind in set(Kind) or item.supports == Level.UNAVAILABLE, item
            seen.add(item.kind)
    assert {Kind.DECODED, Kind.HASHES, Kind.KEYFRAMES, Kind.VIDEO_HASHES, Kind.DETECTION_NOT_RUN} <= seen
    assert seen & {k for k in Kind if k.startswith("c2pa-") and k != Kind.C2PA_ABSENT}
