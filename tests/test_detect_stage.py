"""The detection stage in the pipeline: gate, loud failures, batching, bands, hand-off, CLI, training code."""
from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from server import models
from server.checks import records
from server.config import Settings
from server.migrate import upgrade
from server.services import Services
from server.verdicts import Evidence, Level
from tests.conftest import env_for, settings_from
from tests.helpers import ROOT, make_jpeg, training_data
from tests.images import tiles
from worker import jobs
from worker.detection import jobs as detect_jobs
from worker.detection import gate as detection
from server.detection import manifest as mf
from worker.detection.detectors import training
from worker.detection.detectors.nets.baseline import BaselineNet
from worker.detection.detectors.runtime import Result, Runtime
from worker.pipeline.item import Item
from worker.pipeline.runner import analyze, run_rules
from worker.pipeline.rules import RULES

MODELS = ROOT / "models"


def photo(seed: int, size: tuple[int, int] = (300, 260)) -> Image.Image:
    """A photo-like image (a crop of a sample photo), cropped (never resized) or tiled to ``size``."""
    pool = tiles()
    src = np.asarray(pool[seed % len(pool)])
    reps = (-(-size[1] // src.shape[0]), -(-size[0] // src.shape[1]), 1)
    return Image.fromarray(np.tile(src, reps)[:size[1], :size[0]])


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def passing_validation(at: float, **change: object) -> dict:
    """A validation record that meets the documented bar (server/detection/manifest.py, docs/verdicts.md)."""
    record = {"method": "leave-source-out", "roc_auc": 0.86, "threshold": at, "fpr_at_threshold": 0.008,
              "tpr_at_threshold": 0.41, "reals": 412, "fakes": 400,
              "real_sources": ["flickr-cc", "raise", "newsroom"],
              "held_out_sources": ["flickr-cc", "raise", "newsroom", "sdxl"], "date": "2026-12-01"}
    record.update(change)
    return record


def random_models(folder: Path, extra: list[dict] | None = None, threshold: float | None = 0.5) -> Path:
    """A models dir with a randomly initialised baseline (a real checkpoint file, real hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(BaselineNet().state_dict(), folder / "b.pt")
    entry = {"name": "rand", "architecture": "credence-baseline", "file": "b.pt", "sha256": mf.file_sha256(folder / "b.pt"),
             "licence": "test", "calibration": {} if threshold is None else {"threshold": threshold, "max_fpr": 0.01}}
    (folder / mf.MANIFEST).write_text(json.dumps({"detectors": [entry, *(extra or [])]}))
    return folder


# ---------------------------------------------------------------- the API never loads torch


def test_api_process_never_imports_torch_or_the_worker() -> None:
    code = ("import sys; from server.config import Settings; from server.app import create_app; import server.cli; "
            "import tempfile; create_app(Settings(data_dir=tempfile.mkdtemp(), models_dir='models')); "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'worker'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]


# ---------------------------------------------------------------- the gate


def test_the_committed_baseline_runs_by_default_and_detection_can_be_turned_off(monkeypatch) -> None:
    for name in ("CREDENCE_DETECT", "CREDENCE_MODELS_DIR", "CREDENCE_DETECTORS"):
        monkeypatch.delenv(name, raising=False)
    default = Settings()
    assert default.detect and detection.models_path(default) == MODELS  # `make run`: no CREDENCE_MODELS_DIR
    monkeypatch.setenv("CREDENCE_MODELS_DIR", "")
    assert detection.models_path(Settings()) == MODELS  # set but empty: the default too, not the current directory
    monkeypatch.delenv("CREDENCE_MODELS_DIR")
    assert analyze(make_jpeg(), default).verdict.versions["detect"] == "pending"

    off = analyze(make_jpeg(), Settings(detect=False)).verdict
    note = [e for e in off.evidence if e.stage == "detect"]
    assert [e.kind for e in note] == ["detection-not-run"] and "turned off" in note[0].summary
    assert off.versions["detect"] == "off" and off.versions["detectors"] == "off" and off.level == Level.NO_EVIDENCE

    monkeypatch.setattr(mf, "DEFAULT_MODELS", MODELS.parent / "no-such-models")  # an install without models/
    bare = analyze(make_jpeg(), Settings()).verdict
    assert [e.kind for e in bare.evidence if e.stage == "detect"] == ["detection-not-run"]
    assert bare.versions["detect"] == "not-configured" and bare.level == Level.NO_EVIDENCE


def test_a_verdict_made_with_other_detectors_is_not_current(tmp_path) -> None:
    settings = Settings(models_dir=random_models(tmp_path / "m"))
    made = analyze(make_jpeg(), settings).verdict.versions
    assert made["detectors"] == detection.configured_stamp(settings) and detection.is_current(made, settings)
    assert not detection.is_current(made, Settings(models_dir=MODELS))  # other models
    assert not detection.is_current(made, Settings(models_dir=tmp_path / "m", detect=False))
    assert detection.is_current({"pipeline": "3", "detect": "skipped"}, settings)  # never depended on detection
    entry = json.loads((tmp_path / "m" / mf.MANIFEST).read_text())
    entry["detectors"][0]["calibration"]["threshold"] = 0.9  # recalibrated: the bands may change
    (tmp_path / "m" / mf.MANIFEST).write_text(json.dumps(entry))
    assert not detection.is_current(made, settings)
    rt = Runtime(tmp_path / "m", heatmaps=False)
    versions: dict[str, str] = {}
    detection.apply(rt, rt.detect([photo(1)])[0], None, 1, [], versions)
    assert detection.is_current(versions, settings)  # what the gpu stage records is what the API compares


def test_decisive_evidence_skips_detection_and_says_so() -> None:
    class Declared:
        name, version = "declared", "1"

        def applies(self, item: Item) -> bool:
            return True

        def act(self, item: Item) -> None:
            item.evidence.append(Evidence(stage="x", kind="ai", summary="declared", supports=Level.AI_DECLARED))

    item = run_rules(Item(data=make_jpeg(), settings=Settings(models_dir=MODELS)), [*RULES[:-1], Declared(), RULES[-1]])
    skipped = [e for e in item.evidence if e.kind == "detection-skipped"]
    assert len(skipped) == 1 and skipped[0].details["level"] == "ai-declared" and "Declared AI-made" in skipped[0].summary
    assert item.versions["detect"] == "skipped"


def test_configured_detection_is_pending_and_a_broken_config_is_loud(tmp_path, caplog) -> None:
    assert analyze(make_jpeg(), Settings(models_dir=MODELS)).verdict.versions["detect"] == "pending"
    with caplog.at_level(logging.ERROR):
        verdict = analyze(make_jpeg(), Settings(models_dir=tmp_path)).verdict  # no manifest there
    assert verdict.versions["detect"] == "misconfigured"
    assert [e.kind for e in verdict.evidence if e.stage == "detect"] == ["detector-unavailable"]
    assert "DETECTION MISCONFIGURED" in caplog.text
    unknown = analyze(make_jpeg(), Settings(models_dir=MODELS, detectors="baseline,nope")).verdict
    assert "nope" in [e for e in unknown.evidence if e.stage == "detect"][0].details["reason"]


# ---------------------------------------------------------------- checkpoints: loud, never silent


def test_missing_file_and_wrong_hash_are_loud_and_the_rest_still_runs(tmp_path, caplog) -> None:
    folder = random_models(tmp_path / "m", extra=[
        {"name": "gone", "architecture": "cnndetection-resnet50", "file": "nope.pth", "sha256": "0" * 64, "licence": "x"},
        {"name": "tampered", "architecture": "credence-baseline", "file": "b.pt", "sha256": "f" * 64, "licence": "x"},
    ])
    with caplog.at_level(logging.ERROR):
        rt = Runtime(folder, heatmaps=False)
    assert [d.name for d in rt.detectors] == ["rand"]
    assert "missing" in rt.failed["gone"] and "SHA-256" in rt.failed["tampered"]
    assert caplog.text.count("DETECTOR UNAVAILABLE") == 2
    evidence: list[Evidence] = []
    versions: dict[str, str] = {}
    detection.apply(rt, rt.detect([photo(1)])[0], None, 1, evidence, versions)
    assert sorted(e.kind for e in evidence) == ["detector-unavailable", "detector-unavailable", "synthetic-score"]
    assert versions["detector:gone"] == "unavailable" and versions["detector:rand"].startswith("credence-baseline/")
    with pytest.raises(mf.ManifestError):
        Runtime(tmp_path / "empty")


def test_detector_threads_follow_the_setting(tmp_path) -> None:
    """CREDENCE_DETECT_THREADS sets the worker process's torch threads when its runtime is built (issue 17)."""
    before = torch.get_num_threads()
    try:
        detection.runtime(Settings(models_dir=random_models(tmp_path / "m"), detect_threads=before + 1))
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)


def test_a_gpu_worker_process_loads_its_detectors_before_its_first_batch(tmp_path, caplog) -> None:
    """worker_process_init preloads (issue 17): afterwards the first batch finds the runtime built; with detection
    off nothing loads, and a broken setup is a warning, never a worker that cannot start."""
    settings = Settings(models_dir=random_models(tmp_path / "m"))
    runtime_module = sys.modules[Runtime.__module__]
    runtime_module._RUNTIMES.clear()
    assert detect_jobs.preload(settings)
    loaded = list(runtime_module._RUNTIMES.values())
    assert len(loaded) == 1 and detection.runtime(settings) is loaded[0]
    runtime_module._RUNTIMES.clear()
    assert not detect_jobs.preload(Settings(models_dir=tmp_path / "m", detect=False))
    assert not runtime_module._RUNTIMES
    with caplog.at_level(logging.WARNING):
        assert not detect_jobs.preload(Settings(models_dir=tmp_path))  # no manifest there
    assert "detectors not preloaded" in caplog.text


# ---------------------------------------------------------------- batching, per-item errors, heat maps


def test_batch_scores_equal_single_scores_and_errors_stay_per_item(tmp_path, monkeypatch) -> None:
    rt = Runtime(random_models(tmp_path / "m"), heatmaps=True)
    images = [photo(0), photo(1, (224, 224)), photo(2, (100, 80)), photo(3, (640, 480))]
    batch = rt.detect(images)
    single = [rt.detect([img])[0][0].score for img in images]
    np.testing.assert_allclose([r[0].score for r in batch], single, rtol=1e-5, atol=1e-6)
    first = batch[0][0]
    assert first.crop_box == (38, 18, 262, 242)
    heat = Image.open(io.BytesIO(first.heatmap_png))
    assert heat.size == (224, 224) and first.heatmap["method"] == "grad-cam"
    assert batch[2][0].crop_box == (0, 0, 100, 80)  # small image: zero-padded, never resized

    det = rt.detectors[0]
    real_prepare = det.prepare
    monkeypatch.setattr(det, "prepare", lambda img: (_ for _ in ()).throw(ValueError("bad pixels"))
                        if img.size == (100, 80) else real_prepare(img))
    real_forward = det.model.forward

    def no_batches(x):  # a model that fails on any batch larger than one: items are retried alone
        if x.shape[0] > 1:
            raise RuntimeError("out of memory")
        return real_forward(x)

    monkeypatch.setattr(det.model, "forward", no_batches)
    again = rt.detect(images)
    assert "bad pixels" in again[2][0].error and again[2][0].score is None
    np.testing.assert_allclose([again[i][0].score for i in (0, 1, 3)], [single[i] for i in (0, 1, 3)], rtol=1e-5)


def test_bands_threshold_likely_synthetic_else_inconclusive_for_a_validated_detector() -> None:
    entry = mf.Entry(name="b", architecture="credence-baseline", file="f", sha256="a" * 64, licence="l",
                     calibration={"threshold": 0.8, "max_fpr": 0.01}, validation=passing_validation(0.8))
    high = detection.evidence_for(Result("b", "image", score=0.91, crop_box=(0, 0, 9, 9)), entry, None, 4)
    low = detection.evidence_for(Result("b", "image", score=0.3), entry, None, 4)
    assert high.supports == Level.LIKELY_SYNTHETIC and high.details["band"] == "likely-synthetic"
    assert high.summary == ("The image scores 0.91 on the b detector, at or above its threshold 0.80, validated on "
                            "412 real photos from sources it was not trained on (0.8% false positives, ROC-AUC 0.86): "
                            "likely synthetic.")
    assert high.details["validation"]["meets_bar"] is True and high.details["validation"]["record"]["reals"] == 412
    assert low.supports is None and low.details["band"] == "inconclusive" and "does not show" in low.summary
    faces = detection.evidence_for(Result("f", "face", score=0.95, faces=[{"box": [1, 2, 3, 4], "score": 0.95},
                                                                         {"box": [5, 6, 7, 8], "score": 0.2}]),
                                   entry, None, 2)
    assert faces.kind == "face-manipulation-score" and faces.supports == Level.LIKELY_SYNTHETIC
    assert "strongest of 2 faces" in faces.summary and len(faces.details["faces"]) == 2
    none = detection.evidence_for(Result("f", "face", score=None), entry, None, 2)
    assert none.kind == "no-face" and none.supports is None


def test_a_detector_without_a_validation_record_is_experimental_whatever_its_score() -> None:
    entry = mf.Entry(name="b", architecture="credence-baseline", file="f", sha256="a" * 64, licence="l",
                     calibration={"threshold": 0.8, "max_fpr": 0.01})
    for score in (0.99, 0.3):
        ev = detection.evidence_for(Result("b", "image", score=score), entry, None, 1)
        assert ev.supports is None and ev.details["band"] == "experimental" and ev.score == score
        assert "The b detector is experimental (it has no validation record" in ev.summary
        assert "likely synthetic" not in ev.summary.lower()
        assert ev.details["validation"] == {"meets_bar": False, "bar": mf.BAR_WORDS, "record": None,
                                            "shortfalls": ["no validation record"]}
    face = detection.evidence_for(Result("b", "face", score=0.99, faces=[{"box": [1, 2, 3, 4], "score": 0.99}]),
                                  entry, None, 1)
    assert face.supports is None and face.details["band"] == "experimental"
    raw = mf.Entry(name="u", architecture="npr-resnet50", file="f", sha256="a" * 64, licence="l")
    uncal = detection.evidence_for(Result("u", "image", score=0.99), raw, None, 1)
    assert uncal.supports is None and uncal.details["band"] == "experimental"


def test_a_record_below_the_bar_says_its_numbers_and_never_supports_a_level() -> None:
    weak = passing_validation(0.71, roc_auc=0.40, fpr_at_threshold=0.013, reals=80, real_sources=["a", "b"],
                              held_out_sources=["a", "b"])
    entry = mf.Entry(name="base", architecture="credence-baseline", file="f", sha256="a" * 64, licence="l",
                     calibration={"threshold": 0.71}, validation=weak)
    ev = detection.evidence_for(Result("base", "image", score=0.75), entry, None, 1)
    assert ev.supports is None and ev.details["band"] == "experimental"
    assert ("The image scores 0.75 on the base detector. The base detector is experimental (its validation on sources "
            "it was not trained on measured ROC-AUC 0.40 and 1.3% false positives at its threshold on 80 real photos "
            "from 2 sources, below the bar; the bar is ROC-AUC >= 0.80") in ev.summary
    assert ev.details["validation"]["record"]["roc_auc"] == 0.40
    assert len(ev.details["validation"]["shortfalls"]) == 4


# Each criterion of the bar, just on the wrong side of it, with everything else passing.
JUST_BELOW = {
    "roc_auc": {"roc_auc": 0.799},
    "fpr": {"fpr_at_threshold": 0.0101},
    "reals": {"reals": 299},
    "sources": {"real_sources": ["flickr-cc", "raise"]},
    "not-held-out": {"held_out_sources": ["flickr-cc", "raise", "sdxl"]},
    "method": {"method": "random-split"},
    "other-threshold": {"threshold": 0.75},
}


def test_the_bar_is_met_exactly_at_its_limits() -> None:
    at = passing_validation(0.8, roc_auc=0.80, fpr_at_threshold=0.01, reals=300,
                            real_sources=["a", "b", "c"], held_out_sources=["a", "b", "c"])
    entry = mf.Entry(name="b", architecture="a", file="f", sha256="a" * 64, licence="l",
                     calibration={"threshold": 0.8}, validation=at)
    assert mf.meets_bar(entry) and mf.bar_shortfalls(entry) == []
    assert detection.evidence_for(Result("b", "image", score=0.8), entry, None, 1).supports == Level.LIKELY_SYNTHETIC


@pytest.mark.parametrize("case", sorted(JUST_BELOW))
def test_a_record_just_below_the_bar_on_one_criterion_does_not_badge(case: str) -> None:
    entry = mf.Entry(name="b", architecture="a", file="f", sha256="a" * 64, licence="l",
                     calibration={"threshold": 0.8}, validation=passing_validation(0.8, **JUST_BELOW[case]))
    assert not mf.meets_bar(entry) and len(mf.bar_shortfalls(entry)) == 1
    ev = detection.evidence_for(Result("b", "image", score=0.99), entry, None, 1)
    assert ev.supports is None and ev.details["band"] == "experimental"


def test_the_committed_baseline_never_gives_likely_synthetic() -> None:
    base = {e.name: e for e in mf.read_manifest(MODELS)}["baseline"]
    assert not mf.meets_bar(base) and mf.bar_shortfalls(base) == ["no validation record"]
    ev = detection.evidence_for(Result("baseline", "image", score=0.99), base, None, 1)
    assert ev.supports is None and ev.details["band"] == "experimental"
    assert "baseline detector is experimental (it has no validation record" in ev.summary
    frames = [(float(t), Result("baseline", "image", score=0.97)) for t in range(4)]
    video = detection.video_evidence(base, frames, [None] * 4, None, None, 1)
    assert video.supports is None and video.details["band"] == "experimental"


def test_earning_the_badge_makes_older_verdicts_stale(tmp_path) -> None:
    settings = Settings(models_dir=random_models(tmp_path / "m"))
    made = analyze(make_jpeg(), settings).verdict.versions
    raw = json.loads((tmp_path / "m" / mf.MANIFEST).read_text())
    raw["detectors"][0]["validation"] = passing_validation(0.5)
    (tmp_path / "m" / mf.MANIFEST).write_text(json.dumps(raw) + " ")  # size changes: the stamp cache sees it
    assert not detection.is_current(made, settings)
    raw["detectors"][0]["validation"] = "yes"
    (tmp_path / "m" / mf.MANIFEST).write_text(json.dumps(raw))
    assert "validation must be an object" in str(detection.check_manifest(settings))


# ---------------------------------------------------------------- cpu -> gpu hand-off with the committed baseline


@pytest.fixture
def ctx(data_dir: Path) -> Services:
    settings = settings_from(env_for(data_dir, detect="true", models_dir=str(MODELS)))
    upgrade(settings.sqlalchemy_url)
    return Services(settings)


def _messages(ctx: Services, task: str) -> list[tuple[list, dict]]:
    out = []
    for path in sorted((ctx.settings.resolved_data_dir / "broker").glob("*.msg")):
        msg = json.loads(path.read_text())
        if msg["headers"]["task"] == task:
            out.append((json.loads(base64.b64decode(msg["body"])), msg["properties"]["delivery_info"]))
    return out


def test_analysis_hands_over_and_the_detect_job_makes_the_final_verdict(ctx: Services) -> None:
    data = jpeg_bytes(photo(5))
    sha = ctx.store.put(data)
    with ctx.db.session() as session:
        records.record_media(session, sha256=sha, mime="image/jpeg", size=len(data))
        check_id = records.create_check(session, source="upload", sha256=sha)
    assert jobs.analyze_media(ctx, sha, owner="t") == jobs.DETECTING
    with ctx.db.session() as session:
        assert session.get(models.Check, check_id).status == "pending"  # no verdict before detection
        assert records.current_verdict(session, sha, ctx.detectors_stamp()) is None
        assert session.get(models.Media, sha).pdq  # the cpu stage's findings are recorded
    [(body, delivery)] = _messages(ctx, "credence.detect")
    args = body[0]
    assert args[0] == sha and delivery["routing_key"] == "gpu"
    assert {e["kind"] for e in args[1]["evidence"]} >= {"decoded", "hashes"}

    # The committed baseline has no validation record: its score never gives a level.
    assert detect_jobs.detect_batch(ctx, [(args[0], args[1]), (args[0], args[1])]) == {sha: "no-evidence"}
    with ctx.db.session() as session:
        check = session.get(models.Check, check_id)
        assert check.status == "done"
        body = records.current_verdict(session, sha, ctx.detectors_stamp()).body
    kinds = [e["kind"] for e in body["evidence"]]
    assert "decoded" in kinds and "hashes" in kinds and "synthetic-score" in kinds
    score = [e for e in body["evidence"] if e["kind"] == "synthetic-score"][0]
    assert 0.0 <= score["score"] <= 1.0 and score["details"]["band"] == "experimental" and score["supports"] is None
    assert "heatmap" not in score["details"], "an image's heat map is made when its report is opened"
    assert body["versions"]["detect"] == "ran" and body["versions"]["detector:baseline"].startswith("credence-baseline/1/")
    assert "detect" in body["timings"] and len(json.dumps(body)) < 8000
    assert detect_jobs.detect_batch(ctx, [(args[0], args[1])]) == {sha: "cached"}  # a redelivery does nothing twice


def test_credence_check_runs_detection_in_process(tmp_path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(jpeg_bytes(photo(7)))
    env = env_for(tmp_path / "d", detect="true", models_dir=str(MODELS))
    run = subprocess.run([sys.executable, "-m", "server.cli", "check", str(path), "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    verdict = json.loads(run.stdout)
    assert [e["kind"] for e in verdict["evidence"] if e["stage"] == "detect"] == ["synthetic-score"]
    run = subprocess.run([sys.executable, "-m", "server.cli", "detectors", "list"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "baseline: credence-baseline" in run.stdout and ": ok" in run.stdout


# ---------------------------------------------------------------- training code (the full run is a CLI command)


def test_training_is_seeded_and_updates_the_weights() -> None:
    samples = training.list_samples(training_data())
    parts = training.split(samples)
    assert {k: len(v) for k, v in parts.items()} == {"train": 200, "calibration": 100, "test": 100}
    assert not {s.path for s in parts["train"]} & {s.path for s in parts["test"] + parts["calibration"]}
    crn = [s for s in parts["train"] if s.generator == "crn"]
    few = [s for s in crn if s.label == 0][:4] + [s for s in crn if s.label == 1][:4]
    cfg = training.TrainConfig(steps=4, batch=4, crop=32)
    a, b = training.train(few, cfg), training.train(few, cfg)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name  # same seed, same weights
    torch.manual_seed(0)
    fresh = BaselineNet().state_dict()
    assert not torch.equal(a.state_dict()["head.weight"], fresh["head.weight"])
    scores = training.score(a, [s.path for s in few[:3]], crop=64)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()


def test_metrics_auc_bootstrap_and_threshold() -> None:
    assert training.roc_auc([0.1, 0.2], [0.3, 0.4]) == 1.0 and training.roc_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert training.roc_auc([0.5, 0.5], [0.5]) == 0.5
    rng = np.random.default_rng(1)
    real, fake = rng.normal(0, 1, 60), rng.normal(1, 1, 50)
    brute = np.mean([1.0 if f > r else 0.5 if f == r else 0.0 for f in fake for r in real])
    assert abs(training.roc_auc(real, fake) - brute) < 1e-12
    lo, hi = training.bootstrap_auc(real, fake, reps=300)
    assert lo < training.roc_auc(real, fake) < hi and hi - lo < 0.35
    reals = rng.uniform(0, 1, 200)
    t = training.choose_threshold(reals)
    assert (reals >= t).sum() <= 2 and (reals >= t).sum() == 2 or t == 0.5
    assert training.choose_threshold(np.full(50, 0.1)) == 0.5  # never below 0.5
    assert training.rate_at(np.array([0.2, 0.9]), 0.9) == 0.5


def test_committed_baseline_matches_its_manifest() -> None:
    entries = {e.name: e for e in mf.read_manifest(MODELS)}
    base = entries["baseline"]
    paths = mf.verify(base, MODELS)
    assert paths["weights"].stat().st_size < 2_000_000 and 0.5 <= base.threshold <= 1.0
    assert base.calibration["max_fpr"] == 0.01 and "credence detectors train baseline" in base.source
    state = torch.load(paths["weights"], weights_only=True)
    BaselineNet().load_state_dict(state, strict=True)
