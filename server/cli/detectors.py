"""``credence detectors ...``: list and check the configured detectors, train and evaluate the baseline,
validate any detector on labelled data (and save the record that earns its badge), fit a probe.

Imported by the CLI only (never by the API); torch is imported inside the commands that need it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from server.config import get_settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = REPO / "models"
TRAIN_COMMAND = ".venv/bin/credence detectors train baseline"


def _models_dir(option: str | None) -> Path:
    """The option, else the folder detection uses (CREDENCE_MODELS_DIR, else the repository's models/)."""
    from server.detection.manifest import models_path

    if option:
        return Path(option).expanduser().resolve()
    return models_path(get_settings()) or DEFAULT_MODELS


@click.group("detectors")
def detectors_group() -> None:
    """Synthetic-media detectors: checkpoints, the baseline's training and evaluation."""


@detectors_group.command("list")
@click.option("--models-dir", default=None, help="Default: CREDENCE_MODELS_DIR, else the repository's models/.")
@click.option("--load", is_flag=True, help="Also load every checkpoint (imports torch) and report the device.")
def list_cmd(models_dir: str | None, load: bool) -> None:
    """Each manifest entry with its file check (exists, SHA-256); exit 1 if any is unusable."""
    from server.detection import manifest as mf

    folder = _models_dir(models_dir)
    settings = get_settings()
    try:
        entries = mf.read_manifest(folder)
        stamp = mf.stamp_of(mf.select(entries, settings.detectors))
    except mf.ManifestError as exc:
        raise click.ClickException(str(exc)) from exc
    state = "on" if settings.detect else "off (CREDENCE_DETECT=false)"
    click.echo(f"{folder}: detection {state}; verdicts made with it record detectors version {stamp}")
    bad = 0
    for entry in entries:
        try:
            mf.verify(entry, folder)
            state = "ok"
        except mf.DetectorUnavailable as exc:
            state, bad = f"UNAVAILABLE: {exc.reason}", bad + 1
        threshold = entry.threshold
        click.echo(f"{entry.name}: {entry.architecture} v{entry.version}, threshold "
                   f"{threshold if threshold is not None else 'none (uncalibrated)'}, licence {entry.licence}: {state}")
    if load:
        from worker.detection.detectors.runtime import Runtime

        rt = Runtime(folder, settings.detectors, settings.detect_device, heatmaps=False)
        click.echo(json.dumps(rt.describe(), indent=2))
        bad += len(rt.failed)
    if bad:
        sys.exit(1)


@detectors_group.group("train")
def train_group() -> None:
    """Train a detector the project owns."""


@train_group.command("baseline")
@click.option("--out", "out_dir", default=None, help="Folder for the weights (default: models/baseline).")
@click.option("--data", "data_dir", default=None, help="Default: CREDENCE_TRAINING_DATA_DIR (../shared/data/synthetic-images).")
@click.option("--steps", type=int, default=None, help="Training steps (default: the recorded recipe).")
def train_baseline(out_dir: str | None, data_dir: str | None, steps: int | None) -> None:
    """Train the baseline with fixed seeds, calibrate its threshold, write weights + manifest entry."""
    import dataclasses

    from server.detection import manifest as mf
    from worker.detection.detectors import training

    out = Path(out_dir).resolve() if out_dir else DEFAULT_MODELS / "baseline"
    data = Path(data_dir).resolve() if data_dir else get_settings().training_data_dir
    cfg = training.TrainConfig() if steps is None else dataclasses.replace(training.TrainConfig(), steps=steps)
    result = training.train_baseline(out, data, cfg, log=click.echo)
    models_root = out.parent
    entry = {
        "name": "baseline", "architecture": "credence-baseline", "version": "1",
        "file": str(result["weights"].relative_to(models_root)), "sha256": mf.file_sha256(result["weights"]),
        "preprocessing": {"crop": training.EVAL_CROP},
        "licence": "weights: Credence (trained on CNNDetection crops, CC BY-NC-SA 4.0: research and non-commercial use)",
        "source": f"{TRAIN_COMMAND} (seed {cfg.seed}, {cfg.steps} steps, {result['train_seconds']} s)",
        "calibration": result["calibration"],
        "trained_on": sorted({s.generator for s in training.list_samples(data)}),  # never held out in validation
        "notes": "GAN-era training data; weak on other sources. Scores below the threshold are inconclusive.",
    }
    mf.write_entry(models_root, entry)
    training.save_json(out / "training.json", {k: v for k, v in result.items() if k != "weights"})
    click.echo(f"wrote {result['weights']} and the manifest entry in {models_root / mf.MANIFEST}")


@detectors_group.command("evaluate")
@click.option("--models-dir", default=None, help="Default: CREDENCE_MODELS_DIR, else the repository's models/.")
@click.option("--data", "data_dir", default=None, help="Default: CREDENCE_TRAINING_DATA_DIR (../shared/data/synthetic-images).")
@click.option("--no-logo", is_flag=True, help="Skip leave-one-generator-out (it trains one model per generator).")
@click.option("--bootstrap", type=int, default=2000, show_default=True, help="Bootstrap resamples for the 95% CIs.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--save", is_flag=True, help="Also write it to <models>/baseline/evaluation.json.")
def evaluate(models_dir: str | None, data_dir: str | None, no_logo: bool, bootstrap: int, as_json: bool,
             save: bool) -> None:
    """The baseline: held-out ROC-AUC (95% CI), FPR at its threshold, leave-one-generator-out."""
    from server.detection import manifest as mf
    from worker.detection.detectors import training

    folder = _models_dir(models_dir)
    entry = next((e for e in mf.read_manifest(folder) if e.name == "baseline"), None)
    if entry is None or entry.threshold is None:
        raise click.ClickException(f"no calibrated baseline in {folder / mf.MANIFEST}; run {TRAIN_COMMAND}")
    paths = mf.verify(entry, folder)
    data = Path(data_dir).resolve() if data_dir else get_settings().training_data_dir
    report = training.evaluate_baseline(paths["weights"], entry.threshold, data, logo=not no_logo, reps=bootstrap,
                                        log=lambda m: click.echo(m, err=True))
    if save:
        training.save_json(paths["weights"].parent / "evaluation.json", report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    held = report["held_out"]
    click.echo(f"held-out test split ({held['n_real']} real, {held['n_fake']} fake): ROC-AUC {held['auc']:.3f} "
               f"[95% CI {held['ci95'][0]:.3f}-{held['ci95'][1]:.3f}]")
    click.echo(f"threshold {report['threshold']:.4f}: FPR {held['fpr_at_threshold']:.1%} "
               f"({held['false_positives']}/{held['n_real']} reals), TPR {held['tpr_at_threshold']:.1%}")
    click.echo("per generator (held-out AUC): " + ", ".join(f"{g} {a:.2f}" for g, a in report["per_generator_held_out"].items()))
    if "stylegan3_faces" in report:
        sg = report["stylegan3_faces"]
        click.echo(f"StyleGAN3 faces (never seen): {sg['detected_at_threshold']:.1%} of {sg['n']} above the threshold, "
                   f"median score {sg['median_score']:.2f}")
    logo = report.get("leave_one_generator_out")
    if logo:
        pooled = logo["pooled"]
        click.echo(f"leave-one-generator-out: mean AUC {logo['mean_auc']:.3f}; pooled {pooled['auc']:.3f} "
                   f"[95% CI {pooled['ci95'][0]:.3f}-{pooled['ci95'][1]:.3f}]")
        for gen, block in logo["per_generator"].items():
            click.echo(f"  {gen}: {block['auc']:.3f} [{block['ci95'][0]:.3f}-{block['ci95'][1]:.3f}]")


def _progress(done: int, total: int) -> None:
    click.echo(f"  {done}/{total} images", err=True)


def _auc(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [95% CI {ci[0]:.3f}-{ci[1]:.3f}]" if ci else "")


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _show_figures(name: str, fig: dict, block: dict) -> None:
    """The figures of one detector, in the order an operator reads them."""
    click.echo(f"{name}: {fig['reals']} real ({', '.join(fig['real_sources'])}), {fig['fakes']} AI "
               f"({', '.join(fig['ai_sources'])})")
    click.echo(f"  ROC-AUC {_auc(fig['roc_auc'], fig['ci95'])} ({fig['bootstrap']} bootstrap resamples)")
    click.echo("  leave-one-source-out (source alone vs the other class / everything without it):")
    for p in fig["per_source"]:
        click.echo(f"    {p['source']} ({p['n']}): {_auc(p['auc_alone'], p['ci95_alone'])} / "
                   f"{_auc(p['auc_without'], None)}")
    click.echo("  at candidate thresholds:")
    for t in fig["at_thresholds"]:
        click.echo(f"    {t['name']:>12} {t['threshold']:.4f}: FPR {_rate(t['fpr'])} ({t['false_positives']}/{t['reals']}), "
                   f"TPR {_rate(t['tpr'])} ({t['true_positives']}/{t['fakes']})")
    m = fig["max_fpr"]
    click.echo(f"  threshold for <= {m['max_fpr']:.0%} false positives: {m['threshold']:.4f} ({m['words']}); "
               f"on real sources it was not chosen on: FPR {_rate(m['held_out_fpr'])}")
    if block.get("skipped"):
        click.echo(f"  left out: {len(block['skipped'])} image(s) that could not be scored")
    badge = "meets the bar: its score may give a badge" if block["meets_bar"] else \
        "does NOT meet the bar (" + "; ".join(block["shortfalls"]) + "): its score stays experimental"
    click.echo(f"  with this record it {badge}")


@detectors_group.command("validate")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled images: real/<source>/... and ai/<generator>/... (docs/detection.md).")
@click.option("--detector", "names", default=None, help="Manifest name(s), comma-separated. Default: CREDENCE_DETECTORS, else all.")
@click.option("--models-dir", default=None, help="Default: CREDENCE_MODELS_DIR, else the repository's models/.")
@click.option("--batch", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option("--bootstrap", type=int, default=2000, show_default=True, help="Bootstrap resamples for the 95% CIs.")
@click.option("--device", default=None, help="Torch device. Default: CREDENCE_DETECT_DEVICE, else CUDA when present.")
@click.option("--save", is_flag=True, help="Write the validation record and its threshold into the manifest entry.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report (with every image's score) as JSON.")
def validate(data_dir: str, names: str | None, models_dir: str | None, batch: int, bootstrap: int,
             device: str | None, save: bool, as_json: bool) -> None:
    """Measure detectors on your own labelled sources; --save records it, which earns (or denies) the badge."""
    from server.detection import manifest as mf
    from server.detection.validation import DataError
    from worker.detection.validate import validate_folder

    settings = get_settings()
    folder = _models_dir(models_dir)
    click.echo(f"validating on {data_dir} with the detectors of {folder}", err=True)
    try:
        report = validate_folder(folder, Path(data_dir), settings.detectors if names is None else names, batch,
                                 bootstrap, settings.detect_device if device is None else device, save, _progress)
    except (DataError, mf.ManifestError, mf.DetectorUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"data {report['data']} ({report['images']} images, digest {report['data_digest'][:12]})")
    for block in report["detectors"]:
        _show_figures(block["detector"], block["figures"], block)
        if block["saved"]:
            click.echo(f"  saved: validation record and threshold {block['record']['threshold']:.4f} in "
                       f"{folder / mf.MANIFEST}")


@detectors_group.command("fit-probe")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Labelled images: real/<source>/... and ai/<generator>/..., >= 2 sources of each.")
@click.option("--detector", "base", default="baseline", show_default=True, help="The frozen detector whose features the probe reads.")
@click.option("--name", default="", help="The new manifest entry's name (default: <detector>-probe).")
@click.option("--models-dir", default=None, help="Default: CREDENCE_MODELS_DIR, else the repository's models/.")
@click.option("--batch", type=int, default=32, show_default=True, help="Images per forward pass.")
@click.option("--bootstrap", type=int, default=2000, show_default=True, help="Bootstrap resamples for the 95% CIs.")
@click.option("--device", default=None, help="Torch device. Default: CREDENCE_DETECT_DEVICE, else CUDA when present.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report (with every image's score) as JSON.")
def fit_probe(data_dir: str, base: str, name: str, models_dir: str | None, batch: int, bootstrap: int,
              device: str | None, as_json: bool) -> None:
    """Fit a linear probe on a frozen detector's features from your data, write it, validate it leave-source-out.

    The probe's weights inherit the licence of the data they were fitted on.
    """
    from server.detection import manifest as mf
    from server.detection.validation import DataError
    from worker.detection.validate import fit_probe as fit

    settings = get_settings()
    folder = _models_dir(models_dir)
    try:
        report = fit(folder, Path(data_dir), base, name, batch, bootstrap,
                     settings.detect_device if device is None else device, progress=_progress)
    except (DataError, ValueError, mf.ManifestError, mf.DetectorUnavailable) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"wrote {report['weights']} and the manifest entry {report['detector']} in {folder / mf.MANIFEST} "
               f"(L2 strength {report['strength']:g}, chosen leave-one-source-out)")
    click.echo("figures: each source scored by a probe fitted without it; the record and threshold are these")
    _show_figures(report["detector"], report["figures"], report)
