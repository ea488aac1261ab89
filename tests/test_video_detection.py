"""Detection on video keyframes: per-frame scores from the committed baseline, a p90 aggregate, worst frames,
one heat map, and batches that mix videos and images where one broken item never fails the others."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from server import models
from server.checks import records
from server.config import PIPELINE_VERSION, Settings
from server.migrate import upgrade
from server.services import Services
from server.verdicts import Level
from tests.clips import make_clip
from tests.conftest import env_for, settings_from
from tests.test_detect_stage import MODELS, jpeg_bytes, passing_validation, photo
from worker import jobs
from worker.detection import jobs as detect_jobs
from worker.detection import gate as detection
from server.detection import manifest as mf
from worker.detection.detectors.runtime import Result, runtime_for
from worker.pipeline.item import Item
from worker.stages.keyframes import VideoLimits, extract

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ctx(data_dir: Path) -> Services:
    settings = settings_from(env_for(data_dir, detect="true", models_dir=str(MODELS), detect_device="cpu"))
    upgrade(settings.sqlalchemy_url)
    return Services(settings)


def _handed_over(ctx: Services, data: bytes) -> tuple[str, dict]:
    """Store the bytes, run the cpu analysis, and return what it handed to the gpu queue."""
    sha = ctx.store.put(data)
    with ctx.db.session() as session:
        records.record_media(session, sha256=sha, mime="application/octet-stream", size=len(data))
        records.create_check(session, source="upload", sha256=sha)
    assert jobs.analyze_media(ctx, sha, owner="t") == jobs.DETECTING
    for path in sorted((ctx.settings.resolved_data_dir / "broker").glob("*.msg")):
        msg = json.loads(path.read_text())
        args = json.loads(base64.b64decode(msg["body"]))[0]
        if msg["headers"]["task"] == "credence.detect" and args[0] == sha:
            return sha, args[1]
    raise AssertionError("no detect task for the content")


def _verdict(ctx: Services, sha: str) -> dict:
    with ctx.db.session() as session:
        row = records.current_verdict(session, sha, ctx.detectors_stamp())
        assert row is not None
        return row.body


def test_video_frames_and_images_share_a_batch_and_a_broken_video_stays_alone(ctx: Services) -> None:
    clip = make_clip(seed=11, seconds=4.0, scenes=3)
    video_sha, video_partial = _handed_over(ctx, clip)
    image_sha, image_partial = _handed_over(ctx, jpeg_bytes(photo(4)))
    # A video whose stored copy no longer reads (damaged on disk after its cpu analysis).
    broken = clip[:48] + b"\x00" * 4000
    broken_sha = ctx.store.put(broken)
    broken_partial = {"evidence": [], "versions": {"pipeline": PIPELINE_VERSION, "detect": "pending"}, "timings": {}}
    with ctx.db.session() as session:
        records.record_media(session, sha256=broken_sha, mime="video/mp4", size=len(broken))
        broken_check = records.create_check(session, source="upload", sha256=broken_sha)

    outcomes = detect_jobs.detect_batch(ctx, [(video_sha, video_partial), (broken_sha, broken_partial),
                                              (image_sha, image_partial)])
    assert set(outcomes) == {video_sha, broken_sha, image_sha} and "error" not in outcomes.values()

    _info, frames = extract(clip, VideoLimits.from_settings(ctx.settings))
    video = _verdict(ctx, video_sha)
    [ev] = [e for e in video["evidence"] if e["stage"] == "detect"]
    d = ev["details"]
    assert ev["kind"] == "synthetic-score" and d["detector"] == "baseline" and d["aggregate"] == "p90"
    assert [f["t"] for f in d["frames"]] == [round(k.t, 3) for k in frames]  # one score per keyframe
    assert d["batch_size"] == len(frames) + 1  # the video's frames and the image in one forward pass

    # Each frame's score is the baseline's score of that keyframe on its own.
    rt = runtime_for(MODELS, "", "cpu", False)
    alone = [r[0].score for r in rt.detect([k.image for k in frames])]
    np.testing.assert_allclose([f["score"] for f in d["frames"]], alone, atol=2e-4)

    scores = [f["score"] for f in d["frames"]]
    assert ev["score"] == pytest.approx(float(np.quantile(scores, 0.9)), abs=1e-4)
    assert min(scores) <= ev["score"] <= max(scores)
    top = sorted(d["frames"], key=lambda f: -f["score"])[:3]
    assert d["worst"] == [f["t"] for f in top] and len(set(d["worst"])) == 3
    # The committed baseline has no validation record: experimental, whatever it scores, and never a level.
    assert d["band"] == "experimental" and ev["supports"] is None and d["validation"]["meets_bar"] is False
    assert video["level"] == Level.NO_EVIDENCE.value

    # Thumbnails: small JPEGs in the media store, the same files as the cpu stage's filmstrip.
    for f in d["frames"]:
        thumb = Image.open(io.BytesIO(ctx.store.get(f["thumb"])))
        assert thumb.format == "JPEG" and max(thumb.size) <= 240
    strip = next(e for e in video["evidence"] if e["kind"] == "keyframes")["details"]["frames"]
    assert [f["thumb"] for f in strip] == [f["thumb"] for f in d["frames"]]
    # One heat map, of the worst frame only.
    explained = next(f for f in d["frames"] if f["t"] == d["heatmap"]["t"])
    assert explained["score"] == top[0]["score"] and ctx.store.get(d["heatmap"]["sha256"])[:8] == PNG
    assert video["versions"]["detect"] == "ran" and detection.is_current(video["versions"], ctx.settings)
    assert len(json.dumps(video)) < 16000

    image = _verdict(ctx, image_sha)
    [img_ev] = [e for e in image["evidence"] if e["stage"] == "detect"]
    assert img_ev["kind"] == "synthetic-score" and "frames" not in img_ev["details"]
    assert img_ev["details"]["batch_size"] == len(frames) + 1
    assert "heatmap" not in img_ev["details"], "an image's heat map waits for its report to be opened"

    bad = _verdict(ctx, broken_sha)
    [bad_ev] = [e for e in bad["evidence"] if e["stage"] == "detect"]
    assert bad_ev["kind"] == "stage-error" and bad_ev["score"] is None and "video" in bad_ev["summary"]
    assert bad["versions"]["detect"] == "error" and bad["level"] == Level.NO_EVIDENCE.value
    with ctx.db.session() as session:
        assert session.get(models.Check, broken_check).status == "done"  # answered, not lost


def test_the_gate_treats_a_readable_video_like_an_image() -> None:
    clip = make_clip(seed=2, seconds=2.0)
    settings = Settings(models_dir=MODELS)
    _info, frames = extract(clip, VideoLimits())
    readable = Item(data=clip, settings=settings, mime="video/mp4", keyframes=frames)
    detection.gate(readable)
    assert readable.versions["detect"] == "pending"
    unreadable = Item(data=clip[:100], settings=settings, mime="video/mp4")
    detection.gate(unreadable)
    assert unreadable.versions["detect"] == "not-run"
    off = Item(data=clip, settings=Settings(models_dir=MODELS, detect=False), mime="video/mp4", keyframes=frames)
    detection.gate(off)
    assert off.versions["detect"] == "off" and "turned off" in off.evidence[-1].summary


def _entry(threshold: float = 0.8) -> mf.Entry:
    """A detector whose validation record meets the bar, so its scores may argue likely-synthetic."""
    return mf.Entry(name="b", architecture="credence-baseline", file="f", sha256="a" * 64, licence="l",
                    calibration={"threshold": threshold, "max_fpr": 0.01}, validation=passing_validation(threshold))


def test_aggregate_is_the_90th_percentile_and_frames_that_fail_are_left_out() -> None:
    scores = [0.1, 0.2, 0.95, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 0.05]
    frames = [(i * 0.5, Result("b", "image", score=s, crop_box=(0, 0, 9, 9))) for i, s in enumerate(scores)]
    frames.append((5.0, Result("b", "image", error="RuntimeError: boom")))
    ev = detection.video_evidence(_entry(), frames, [None] * len(frames), None, None, 11)
    assert ev.score == pytest.approx(float(np.quantile(scores, 0.9)), abs=1e-4) and ev.score != max(scores)
    assert ev.details["worst"] == [1.0, 4.0, 3.5] and ev.details["frame_errors"] == [5.0]
    assert len(ev.details["frames"]) == 10 and all(f["thumb"] is None for f in ev.details["frames"])
    assert ev.supports == Level.LIKELY_SYNTHETIC and "90th percentile of 10 keyframes" in ev.summary
    low = detection.video_evidence(_entry(0.99), frames, [None] * len(frames), None, None, 11)
    assert low.supports is None and low.details["band"] == "inconclusive" and "video is authentic" in low.summary
    failed = detection.video_evidence(_entry(), frames[-1:], [None], None, None, 1)
    assert failed.kind == "stage-error" and failed.score is None


def test_face_detectors_score_each_frame_by_its_strongest_face() -> None:
    def face(score: float | None) -> Result:
        found = [] if score is None else [{"box": [0, 0, 9, 9], "score": score}, {"box": [9, 9, 19, 19], "score": 0.01}]
        return Result("f", "face", score=score, faces=found)

    frames = [(0.0, face(0.2)), (1.0, face(None)), (2.0, face(0.9)), (3.0, face(0.4))]
    ev = detection.video_evidence(_entry(), frames, ["a" * 64, None, "b" * 64, None], None, None, 4)
    assert ev.kind == "face-manipulation-score" and ev.details["frames_without_face"] == [1.0]
    assert [f["t"] for f in ev.details["frames"]] == [0.0, 2.0, 3.0]
    assert ev.score == pytest.approx(float(np.quantile([0.2, 0.9, 0.4], 0.9)), abs=1e-4)
    assert ev.details["worst"] == [2.0, 3.0, 0.0] and ev.details["frames"][1]["thumb"] == "b" * 64
    none = detection.video_evidence(_entry(), [(0.0, face(None))], [None], None, None, 1)
    assert none.kind == "no-face" and none.score is None
