"""Detector heat maps on demand (issue 17): the fresh path scores an image without one; a signed-in person who
opens its report asks a worker for it (``credence.heatmap``), and the report and its PDF then show it. Bounded
like the forensic views: pixel cap, decode budget, time limits, a failure written as the result."""
from __future__ import annotations

import base64
import io
import json
import re

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from server.detection import heatmaps
from tests.helpers import ROOT
from tests.images import jpeg_bytes, photo
from tests.test_desk import login, make_app, upload
from worker.detection import jobs as detect_jobs
from worker.detection.detectors.runtime import Runtime

MODELS = ROOT / "models"
PNG = b"\x89PNG\r\n\x1a\n"


def messages(svc, task: str) -> list[list]:
    """The args of every ``task`` message waiting in the embedded broker."""
    out = []
    for path in sorted((svc.settings.resolved_data_dir / "broker").glob("*.msg")):
        msg = json.loads(path.read_text())
        if msg["headers"]["task"] == task:
            out.append(json.loads(base64.b64decode(msg["body"]))[0])
    return out


def scored(svc, client, seed: int) -> str:
    """An uploaded image taken through the cpu and gpu stages, as a worker would; returns its sha256."""
    sha = upload(svc, client, jpeg_bytes(photo(seed, (400, 300))), f"p{seed}.jpg")
    [(_, partial)] = [args for args in messages(svc, "credence.detect") if args[0] == sha]
    assert detect_jobs.detect_batch(svc, [(sha, partial)]) == {sha: "no-evidence"}
    return sha


def test_the_report_asks_for_the_heat_map_and_shows_it_once_made(data_dir) -> None:
    app, svc = make_app(data_dir, detect="true", models_dir=str(MODELS))
    client = app.test_client()
    login(client, "rosa")
    sha = scored(svc, client, 3)
    assert messages(svc, "credence.heatmap") == [], "the fresh path makes none and asks for none"
    stored_before = {p.name for p in svc.store.root.rglob("*") if p.is_file()}

    anonymous = app.test_client().get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-heatmap="pending"' not in anonymous and messages(svc, "credence.heatmap") == [], \
        "only a signed-in person's visit costs a heat map"
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-heatmap="pending"' in page and "heat map is being made" in page
    assert messages(svc, "credence.heatmap") == [[sha]]
    [exported] = client.get(f"/desk/media/{sha}/export.json").get_json()["detection"]
    assert "heatmap" not in exported["details"] and exported["heatmap_sha"] is None

    assert detect_jobs.explain_stored(svc, sha) == "done"
    assert detect_jobs.explain_stored(svc, sha) == "cached", "idempotent"
    result = heatmaps.read_result(svc.store, sha, svc.detectors_stamp())
    heat_sha = result["heatmap"]["sha256"]
    assert result["detector"] == "baseline" and heat_sha not in stored_before
    picture = svc.store.get(heat_sha)
    assert picture[:8] == PNG and Image.open(io.BytesIO(picture)).size == (224, 224)
    assert result["heatmap"]["box"] == [88, 38, 312, 262], "the detector's centre crop of a 400 x 300 image"

    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert f'href="/desk/blob/{heat_sha}" x="88.0" y="38.0" width="224.0" height="224.0"' in page
    assert "Show the detector's heat map" in page and "Heat map of the region" in page
    assert 'data-heatmap="pending"' not in page
    assert len(messages(svc, "credence.heatmap")) == 1, "a made heat map is not asked for again"
    exported = client.get(f"/desk/media/{sha}/export.json").get_json()["detection"]
    assert [e["details"]["heatmap"]["sha256"] for e in exported] == [heat_sha]

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(client.get(f"/desk/media/{sha}/export.pdf").data))
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in reader.pages))
    assert "Heat map" in text and sum(len(p.images) for p in reader.pages) >= 2

    # An evicted picture: the result is as good as missing, and the next visit asks again.
    svc.store.delete(heat_sha)
    assert 'data-heatmap="pending"' in client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert len(messages(svc, "credence.heatmap")) == 2
    assert detect_jobs.explain_stored(svc, sha) == "done"


def test_the_heat_map_job_is_bounded_and_says_why(data_dir, monkeypatch) -> None:
    app, svc = make_app(data_dir, detect="true", models_dir=str(MODELS))
    client = app.test_client()
    login(client, "rosa")
    sha = scored(svc, client, 4)

    from worker import tasks

    assert tasks.heatmap.name == "credence.heatmap"
    assert tasks.heatmap.soft_time_limit == svc.settings.analysis_soft_limit_s
    assert tasks.heatmap.time_limit == svc.settings.analysis_hard_limit_s

    small, small_svc = make_app(data_dir, detect="true", models_dir=str(MODELS), max_pixels="10000")
    other = small.test_client()
    login(other, "rosa")
    page = other.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-heatmap="failed"' in page and "pixel cap" in page, "refused before any worker is asked"
    assert messages(svc, "credence.heatmap") == []
    assert detect_jobs.explain_stored(small_svc, sha) == "refused", "the job decodes within the cap too"
    assert "could not be decoded" in heatmaps.read_result(svc.store, sha, svc.detectors_stamp())["error"]
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'data-heatmap="failed"' in page and "could not be decoded" in page, "a failure is shown, not retried"
    heatmaps.result_path(svc.store, sha).unlink()

    def slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(Runtime, "explain", slow)
    assert detect_jobs.explain_stored(svc, sha) == "timeout"
    assert "took longer than" in heatmaps.read_result(svc.store, sha, svc.detectors_stamp())["error"]
    heatmaps.result_path(svc.store, sha).unlink()

    svc.store.delete(sha)
    assert detect_jobs.explain_stored(svc, sha) == "missing"
    assert "gone" in heatmaps.read_result(svc.store, sha, svc.detectors_stamp())["error"]


def test_heat_maps_turned_off_are_neither_asked_for_nor_made(data_dir) -> None:
    app, svc = make_app(data_dir, detect="true", models_dir=str(MODELS), detect_heatmaps="false")
    client = app.test_client()
    login(client, "rosa")
    sha = scored(svc, client, 5)
    page = client.get(f"/desk/media/{sha}").get_data(as_text=True)
    assert 'id="detection"' in page and "data-heatmap=" not in page
    assert messages(svc, "credence.heatmap") == []
    assert detect_jobs.explain_stored(svc, sha) == "unavailable"
