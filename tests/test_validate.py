"""`credence detectors validate` and `fit-probe`: figures checked against scikit-learn, the refusal below 300
reals, the record the gate reads, and a probe that loads and scores as the runtime will."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from server.cli.detectors import detectors_group
from server.detection import manifest as mf
from server.detection import validation as va
from server.verdicts import Level
from tests.helpers import ROOT, training_data
from worker.detection import gate as detection
from worker.detection import probe as pr
from worker.detection.detectors.registry import architecture
from worker.detection.detectors.runtime import Result, Runtime

MODELS = ROOT / "models"
REALS = {"crn": 8, "imle": 8}  # two real sources
FAKES = {"crn": 5, "gaugan": 5, "san": 5, "stargan": 5}  # several generators


def labelled_folder(root: Path, reals: dict[str, int] = REALS, fakes: dict[str, int] = FAKES) -> Path:
    """real/<source>/ and ai/<generator>/ of symlinks into the shared training crops (first n of each)."""
    crops = training_data("train", "cnndetection-crops")
    for cls, dst, wanted in (("real", "real", reals), ("fake", "ai", fakes)):
        for source, n in wanted.items():
            (root / dst / source).mkdir(parents=True)
            for path in sorted((crops / cls).glob(f"{source}_*.png"))[:n]:
                (root / dst / source / path.name).symlink_to(path)
    return root


def models_copy(tmp: Path) -> Path:
    out = tmp / "models"
    shutil.copytree(MODELS, out)
    return out


def invoke(*args: str) -> tuple[dict, str]:
    result = CliRunner().invoke(detectors_group, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout), result.stderr


def sk_auc(rows: list[dict]) -> float:
    return roc_auc_score([r["label"] for r in rows], [r["score"] for r in rows])


# ---------------------------------------------------------------- figures (no model)


def fake_samples(counts: dict[str, int], label: int) -> list[va.Sample]:
    return [va.Sample(Path(f"/x/{s}/{i}.png"), label, s) for s, n in counts.items() for i in range(n)]


def test_figures_agree_with_scikit_learn_and_count_the_thresholds() -> None:
    rng = np.random.default_rng(7)
    samples = fake_samples({"a": 40, "b": 35}, 0) + fake_samples({"g1": 30, "g2": 25}, 1)
    labels = np.array([s.label for s in samples])
    scores = np.round(np.where(labels == 1, rng.normal(0.65, 0.15, len(labels)), rng.normal(0.45, 0.15, len(labels))), 2)
    fig = va.figures(scores.tolist(), samples, reps=200, calibrated=0.6)
    assert fig["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-4)  # ties included (rounded scores)
    lo, hi = fig["ci95"]
    assert lo < fig["roc_auc"] < hi
    keys = np.array([s.key for s in samples])
    for p in fig["per_source"]:
        mine = keys == p["source"]
        other = labels != labels[mine][0]
        alone = roc_auc_score(labels[mine | other], scores[mine | other])
        without = roc_auc_score(labels[~mine], scores[~mine])
        assert p["auc_alone"] == pytest.approx(alone, abs=1e-4) and p["auc_without"] == pytest.approx(without, abs=1e-4)
    real, fake = scores[labels == 0], scores[labels == 1]
    for row in fig["at_thresholds"]:
        t = row["threshold"]
        assert row["false_positives"] == int((real >= t).sum()) and row["true_positives"] == int((fake >= t).sum())
    assert {r["name"] for r in fig["at_thresholds"]} >= {"0.5", "calibrated", "fpr<=1%", "fpr<=5%"}
    m = fig["max_fpr"]
    assert m["false_positives"] == 0 and (real >= m["threshold"]).sum() == 0  # 75 reals: 1% allows none
    assert m["reals"] == 75 and m["supported"] is False and "cannot show a 1% false-positive rate" in m["words"]


def test_the_one_percent_threshold_needs_300_reals_and_is_checked_on_unseen_sources() -> None:
    rng = np.random.default_rng(3)
    samples = fake_samples({"a": 120, "b": 110, "c": 100}, 0) + fake_samples({"g": 200}, 1)
    labels = np.array([s.label for s in samples])
    scores = np.where(labels == 1, rng.uniform(0.3, 1.0, len(labels)), rng.uniform(0.0, 0.9, len(labels)))
    fig = va.figures(scores.tolist(), samples, reps=0)
    m = fig["max_fpr"]
    real = scores[labels == 0]
    assert m["supported"] is True and m["reals"] == 330 and "cannot" not in m["words"]
    assert (real >= m["threshold"]).sum() == 3 == m["false_positives"]  # floor(1% of 330)
    assert (real > np.sort(real)[-4]).sum() == 3 and m["threshold"] <= np.sort(real)[-3]  # the lowest such
    # each real source against the threshold chosen on the two others, counted here independently
    keys = np.array([s.key for s in samples])
    fp = 0
    for src in ("real/a", "real/b", "real/c"):
        rest = np.sort(scores[(labels == 0) & (keys != src)])[::-1]
        edge = rest[int(0.01 * len(rest))]
        fp += int((scores[keys == src] > edge).sum())
    assert m["held_out_false_positives"] == fp and m["held_out_fpr"] == pytest.approx(fp / 330)
    fewer = va.figures(scores[30:].tolist(), samples[30:], reps=0)["max_fpr"]
    assert fewer["reals"] == 300 and fewer["supported"] is True
    fewest = va.figures(scores[31:].tolist(), samples[31:], reps=0)["max_fpr"]
    assert fewest["reals"] == 299 and fewest["supported"] is False


def test_a_saved_record_that_meets_the_bar_gives_the_badge_and_one_below_does_not(tmp_path) -> None:
    """The gate follows the record: the same detector, saved twice with different figures."""
    models = models_copy(tmp_path)
    rng = np.random.default_rng(5)
    samples = fake_samples({"a": 110, "b": 110, "c": 110}, 0) + fake_samples({"g1": 150, "g2": 150}, 1)
    labels = np.array([s.label for s in samples])
    good = np.clip(np.where(labels == 1, rng.normal(0.85, 0.08, len(labels)), rng.normal(0.3, 0.1, len(labels))), 0, 1)
    fig = va.figures(good.tolist(), samples, reps=0)
    rec = va.record(fig, "d" * 64, tmp_path)
    mf.save_validation(models, "baseline", rec, va.calibration(fig, "d" * 64))
    entry = next(e for e in mf.read_manifest(models) if e.name == "baseline")
    assert mf.bar_shortfalls(entry) == [] and entry.threshold == rec["threshold"]
    high = detection.evidence_for(Result("baseline", "image", score=0.99, crop_box=(0, 0, 1, 1)), entry, None, 1)
    assert high.details["band"] == "likely-synthetic" and high.supports == Level.LIKELY_SYNTHETIC
    assert high.details["validation"]["record"]["reals"] == 330
    # the same figures from a detector trained on one of those real sources: not held out, no badge
    trained = mf.Entry(**{**entry.__dict__, "trained_on": ["b"]})
    rec_b = va.record(fig, "d" * 64, tmp_path, trained.trained_on)
    assert "b" not in rec_b["held_out_sources"]
    assert mf.bar_shortfalls(mf.Entry(**{**trained.__dict__, "validation": rec_b})) == [
        "not every source it was measured on was held out of training"]
    # a weaker measurement saved over it takes the badge away
    weak = np.where(labels == 1, rng.uniform(0, 1, len(labels)), rng.uniform(0, 1, len(labels)))
    fig = va.figures(weak.tolist(), samples, reps=0)
    mf.save_validation(models, "baseline", va.record(fig, "e" * 64, tmp_path), va.calibration(fig, "e" * 64))
    entry = next(e for e in mf.read_manifest(models) if e.name == "baseline")
    low = detection.evidence_for(Result("baseline", "image", score=0.99, crop_box=(0, 0, 1, 1)), entry, None, 1)
    assert low.details["band"] == "experimental" and low.supports is None and "below" in low.summary


def test_the_probe_fit_matches_scikit_learn_logistic_regression() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, (90, 6)) * [1, 2, 3, 0.5, 1, 4] + [0, 1, -2, 0, 3, 0]
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 1, 90) > 0.8).astype(int)
    strength = 0.01
    probe = pr.fit(x, y, strength)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    sk = LogisticRegression(C=1 / (strength * len(x)), class_weight="balanced", tol=1e-10, max_iter=10_000).fit(z, y)
    ours_z = probe.weight * x.std(axis=0)  # the probe's weights back on the standardised scale
    assert np.allclose(ours_z, sk.coef_[0], atol=1e-4)
    assert np.allclose(probe.logits(x), sk.decision_function(z), atol=1e-4)


# ---------------------------------------------------------------- end to end on the shared data


def test_validate_the_committed_baseline_end_to_end(tmp_path) -> None:
    data = labelled_folder(tmp_path / "data")
    models = models_copy(tmp_path)
    committed = (MODELS / mf.MANIFEST).read_bytes()
    report, progress = invoke("validate", "--data", str(data), "--detector", "baseline", "--models-dir", str(models),
                              "--batch", "16", "--bootstrap", "200", "--device", "cpu", "--save", "--json")
    assert "16/36 images" in progress and "36/36 images" in progress  # batched, with progress on stderr
    block = report["detectors"][0]
    rows = block["scores"]
    assert len(rows) == 36 and all(r["score"] is not None for r in rows) and not block["skipped"]
    fig = block["figures"]
    assert fig["real_sources"] == ["crn", "imle"] and fig["ai_sources"] == ["crn", "gaugan", "san", "stargan"]
    assert fig["reals"] == 16 and fig["fakes"] == 20
    assert fig["roc_auc"] == pytest.approx(sk_auc(rows), abs=1e-4)
    for p in fig["per_source"]:
        label = 1 if p["source"].startswith("ai/") else 0
        sub = [r for r in rows if r["source"] == p["source"] or r["label"] != label]
        assert p["auc_alone"] == pytest.approx(sk_auc(sub), abs=1e-4)
    # the scores are the runtime's (what the worker would put in a verdict)
    rt = Runtime(models, "baseline", "cpu", heatmaps=False)
    from PIL import Image
    first = [data / rows[i]["path"] for i in (0, 30)]
    got = [rt.detect([Image.open(p).convert("RGB")])[0][0].score for p in first]
    assert got == pytest.approx([rows[0]["score"], rows[30]["score"]], abs=1e-5)
    # 16 reals: a threshold is given, but never called a 1% one
    m = fig["max_fpr"]
    assert m["supported"] is False and "16 reals cannot show a 1% false-positive rate" in m["words"]
    # saved: the record the gate reads, with the data digest computed here independently
    digest = hashlib.sha256()
    for r in sorted(rows, key=lambda r: (r["label"], r["source"].split("/", 1)[1], r["path"])):
        content = hashlib.sha256((data / r["path"]).read_bytes()).hexdigest()
        digest.update(f"{r['source']}\t{r['path']}\t{content}\n".encode())
    entry = next(e for e in mf.read_manifest(models) if e.name == "baseline")
    assert entry.validation["data_digest"] == digest.hexdigest() == report["data_digest"]
    assert entry.validation["roc_auc"] == fig["roc_auc"] and entry.threshold == entry.validation["threshold"]
    assert entry.validation["reals"] == 16 and entry.validation["threshold_supported"] is False
    assert not mf.meets_bar(entry) and block["meets_bar"] is False
    assert any("fewer than 300" in s for s in block["shortfalls"])
    ev = detection.evidence_for(Result("baseline", "image", score=0.999, crop_box=(0, 0, 1, 1)), entry, None, 1)
    assert ev.details["band"] == "experimental" and ev.supports is None
    assert (MODELS / mf.MANIFEST).read_bytes() == committed  # --models-dir: the repository's manifest untouched


def test_validate_refuses_a_folder_without_sources(tmp_path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ai" / "g").mkdir(parents=True)
    result = CliRunner().invoke(detectors_group, ["validate", "--data", str(tmp_path)])
    assert result.exit_code == 1 and "no images under" in result.stderr


def test_fit_probe_end_to_end(tmp_path) -> None:
    data = labelled_folder(tmp_path / "data", {"crn": 8, "imle": 8, "san": 8}, FAKES)
    models = models_copy(tmp_path)
    report, _ = invoke("fit-probe", "--data", str(data), "--detector", "baseline", "--models-dir", str(models),
                       "--bootstrap", "100", "--device", "cpu", "--json")
    entry = next(e for e in mf.read_manifest(models) if e.name == "baseline-probe")
    assert entry.architecture == "credence-baseline+probe" and entry.backbone_file == "baseline/baseline.pt"
    assert mf.verify(entry, models)["weights"] == models / "baseline-probe" / "probe.pt"
    assert "inherit" in entry.licence and entry.trained_on == ["crn", "gaugan", "imle", "san", "stargan"]
    rows = report["scores"]
    assert len(rows) == 44
    # the record describes the out-of-source scores, checked with scikit-learn
    assert entry.validation["method"] == "leave-source-out"
    assert entry.validation["roc_auc"] == pytest.approx(sk_auc(rows), abs=1e-4)
    assert entry.threshold == entry.validation["threshold"] and not mf.meets_bar(entry)  # 24 reals
    # the runtime loads base + probe as one network and scores as the fitted probe does
    rt = Runtime(models, "baseline-probe", "cpu", heatmaps=False)
    assert not rt.failed
    from PIL import Image
    got = rt.detect([Image.open(data / rows[i]["path"]).convert("RGB") for i in (0, 20, 40)])
    assert [g[0].score for g in got] == pytest.approx([rows[i]["fitted"] for i in (0, 20, 40)], abs=1e-4)
    # fixed seeds, deterministic fit: a second run writes the same weights
    again, _ = invoke("fit-probe", "--data", str(data), "--models-dir", str(models), "--name", "again",
                      "--bootstrap", "0", "--device", "cpu", "--json")
    a = torch.load(models / "baseline-probe" / "probe.pt", weights_only=True)
    b = torch.load(models / "again" / "probe.pt", weights_only=True)
    assert torch.equal(a["weight"], b["weight"]) and torch.equal(a["bias"], b["bias"])


def test_fit_probe_needs_two_sources_of_each_class(tmp_path) -> None:
    data = labelled_folder(tmp_path / "data", {"crn": 4}, {"crn": 4, "san": 4})
    result = CliRunner().invoke(detectors_group, ["fit-probe", "--data", str(data), "--models-dir",
                                                  str(models_copy(tmp_path)), "--device", "cpu"])
    assert result.exit_code == 1 and "real images from at least 2 sources" in result.stderr


def test_only_one_logit_single_file_detectors_take_a_probe() -> None:
    assert architecture("credence-baseline+probe").output == "sigmoid"
    with pytest.raises(ValueError, match="cannot take a probe"):
        architecture("deepfakebench-xception+probe")
    with pytest.raises(ValueError, match="cannot take a probe"):
        architecture("universalfakedetect-clip-vit-l14+probe")


def test_trained_on_must_be_a_list(tmp_path) -> None:
    models = models_copy(tmp_path)
    raw = json.loads((models / mf.MANIFEST).read_text())
    raw["detectors"][0]["trained_on"] = "crn"
    (models / mf.MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(mf.ManifestError, match="trained_on"):
        mf.read_manifest(models)


# ---------------------------------------------------------------- the desk shows the record next to the score


@pytest.fixture
def desk(data_dir: Path):
    from tests.test_desk import make_app

    return make_app(data_dir)


def test_the_desk_shows_each_detectors_validation_record(desk) -> None:
    from server.checks import records
    from server.verdicts import Evidence, fuse
    from tests.images import jpeg_bytes, photo
    from tests.test_desk import _check_id, login, upload

    app, svc = desk
    client = app.test_client()
    login(client, "rex")
    sha = upload(svc, client, jpeg_bytes(photo(3, (300, 200))), "v.jpg")
    rng = np.random.default_rng(5)
    samples = fake_samples({"archive": 110, "flickr": 110, "wire": 110}, 0) + fake_samples({"sdxl": 300}, 1)
    labels = np.array([s.label for s in samples])
    scores = np.clip(np.where(labels == 1, rng.normal(0.85, 0.08, len(labels)), rng.normal(0.3, 0.1, len(labels))), 0, 1)
    fig = va.figures(scores.tolist(), samples, reps=0)
    base = next(e for e in mf.read_manifest(MODELS) if e.name == "baseline")
    validated = mf.Entry(**{**base.__dict__, "name": "validated", "calibration": va.calibration(fig, "d" * 64),
                            "validation": va.record(fig, "d" * 64, Path("/data"), today=dt.date(2026, 12, 6))})
    assert mf.meets_bar(validated)
    found = [detection.evidence_for(Result(e.name, "image", score=0.97, crop_box=(0, 0, 1, 1)), e, None, 1)
             for e in (validated, base)]
    with svc.db.session() as session:
        body = records.current_verdict(session, sha, svc.detectors_stamp()).body
    evidence = [Evidence.model_validate(e) for e in body["evidence"] if e["stage"] != "detect"] + found
    with svc.db.session() as session:
        verdict_id = records.record_verdict(session, fuse(evidence, sha256=sha, versions={**body["versions"], "detect": "ran"},
                                                          timings=body["timings"]))
        records.complete_check(session, _check_id(svc, sha), verdict_id)
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert "Validated 2026-12-06 (leave-source-out) on 330 real photos from archive, flickr, wire" in page
    assert f"ROC-AUC {fig['roc_auc']:.2f}" in page and "Meets the bar" in page
    assert "No validation record on images from sources it was not trained on." in page
    assert "is no evidence for any level" in page
