"""vPDQ-compatible video matching (issue 20): copies of a banked clip as people make them are known fakes,
unrelated clips are not, and Credence's frame hashes and signals interoperate with Meta's own ``vpdq`` and
``threatexchange`` packages.

Every check goes through the ruleset with a real bank matcher (PostgreSQL), so the level asserted is what
the desk and the badge get. The interoperability tests need the ``vpdq`` package (a C++ build against
FFmpeg's libav* headers: ``apt-get install libavcodec-dev libavformat-dev libavdevice-dev libavutil-dev
libswscale-dev libswresample-dev libavfilter-dev``, then ``make`` builds it); without it they skip outside CI.
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.clips import edit, make_clip, reencode
from tests.conftest import env_for, settings_from
from tests.helpers import api_with_keys, need_module
from worker import jobs
from worker.banks import jobs as bank_jobs
from worker.pipeline.runner import analyze
from worker.stages import bank_match
from worker.stages.keyframes import VideoLimits, extract

ORIGINAL = {"seed": 61, "seconds": 4.0, "scenes": 2}  # 320x240, 25 fps, panning 2 px a frame
LONG = {"seed": 62, "seconds": 20.0, "scenes": 5}
UNRELATED_SEEDS = (71, 72, 73, 74, 75)


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    """Encoding is the slow part: made once. Copies as issue 20 lists them."""
    original, long = make_clip(**ORIGINAL), make_clip(**LONG)
    return {
        "original": original, "long": long,
        "re-encode": reencode(original, crf=28),
        "half size": reencode(original, size=(160, 120), crf=35),
        "WebM": reencode(original, fmt="webm"),
        "trimmed 1 s": edit(original, start=1.0),
        "12 fps": edit(original, fps=12),
        "2x speed": edit(original, speed=2.0),
        "mirrored": edit(original, turn=Image.Transpose.FLIP_LEFT_RIGHT),
        "rotated 90": edit(original, turn=Image.Transpose.ROTATE_90),
        "3 s excerpt of the 20 s clip": edit(long, start=8.0, seconds=3.0),
    }


COPIES = ("re-encode", "half size", "WebM", "trimmed 1 s", "12 fps", "2x speed", "mirrored", "rotated 90",
          "3 s excerpt of the 20 s clip")
# How the checked copy must be turned to look like the banked clip (hashes.ORIENTATION_NAMES): Pillow's
# ROTATE_90 turns a quarter anticlockwise, so three more quarters undo it.
TRANSFORM = {"mirrored": "flipped left to right", "rotated 90": "rotated 270°"}


@pytest.fixture
def env(data_dir: Path, pg_url: str, redis_url: str):
    return api_with_keys(settings_from(env_for(data_dir, rate_limit="10000/minute", database_url=pg_url, redis_url=redis_url)))


def _bank_upload(svc, call, bank: str, label: str, data: bytes) -> str:
    """Submit a video file, hash it as the bank job does, confirm it; returns the entry id."""
    made = call("POST", f"/api/v1/banks/{bank}/entries", "reporter",
                data={"label": label, "file": (io.BytesIO(data), "clip.mp4")}).get_json()
    assert bank_jobs.hash_entry(svc, made["id"]) == "ready"
    assert call("POST", f"/api/v1/entries/{made['id']}/review", "reviewer",
                json={"action": "confirm", "note": "debunked"}).status_code == 200
    return made["id"]


def _bank_evidence(verdict) -> list:
    return [e for e in verdict.evidence if e.stage == bank_match.STAGE]


def test_copies_of_a_banked_clip_are_known_fakes_and_unrelated_clips_are_not(env, clips) -> None:
    svc, call = env
    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    ids = {"original": _bank_upload(svc, call, "debunked", "Staged flood video", clips["original"]),
           "long": _bank_upload(svc, call, "debunked", "Staged rally video", clips["long"])}
    matcher = jobs.bank_matcher(svc)
    for name in COPIES:
        verdict = analyze(clips[name], svc.settings, matcher=matcher).verdict
        assert verdict.level == "known-fake", (name, verdict.summary)
        (match,) = _bank_evidence(verdict)
        d = match.details
        assert d["method"] == "vpdq" and d["entry_id"] == ids["long" if "20 s" in name else "original"], name
        assert d["transform"] == TRANSFORM.get(name, "as is"), (name, d["transform"])
        assert d["query_share"] >= svc.settings.vpdq_match_share and d["best_distance"] <= 31, (name, d)
        if name in TRANSFORM:  # the summary says how the copy was turned
            assert TRANSFORM[name] in match.summary, (name, match.summary)
    (cut,) = _bank_evidence(analyze(clips["3 s excerpt of the 20 s clip"], svc.settings, matcher=matcher).verdict)
    excerpt = cut.details
    assert excerpt["query_share"] == 1.0 and excerpt["entry_share"] == 0.15  # 3 of the 20 banked seconds
    assert cut.score == 1.0  # all of the excerpt is in the banked clip
    assert [p["entry_t"] for p in excerpt["pairs"]] == [8.0, 9.0, 10.0]  # found where it was cut from
    for seed in UNRELATED_SEEDS:
        verdict = analyze(make_clip(seed=seed, seconds=4.0, scenes=2), svc.settings, matcher=matcher).verdict
        assert verdict.level == "no-evidence" and not _bank_evidence(verdict), (seed, verdict.summary)


def test_a_still_shot_is_one_frame_with_its_time_range(tmp_path: Path) -> None:
    """Consecutive samples within a few bits of the last one kept fold into it (vPDQ's pruning): two still
    scenes of 3 s each are two frames, standing for 0-2 s and 3-5 s."""
    from server.config import Settings

    clip = make_clip(seed=63, seconds=6.0, scenes=2, pan=0)
    verdict = analyze(clip, Settings(data_dir=tmp_path)).verdict
    frames = next(e for e in verdict.evidence if e.kind == "video-hashes").details["frames"]
    assert [(f["t"], f.get("until")) for f in frames] == [(0.0, 2.0), (3.0, 5.0)]


# ---------------------------------------------------------------------------- Meta's vpdq and threatexchange

VPDQ_HOW = ("install FFmpeg's development headers (apt-get install pkg-config libavcodec-dev libavformat-dev "
            "libavutil-dev libswscale-dev ...) and run `make` again, or `.venv/bin/pip install vpdq`")


def _vpdq_features(data: bytes, suffix: str = ".mp4") -> list:
    vpdq = need_module("vpdq", VPDQ_HOW)
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        return vpdq.computeHash(fh.name)


def _te_signal(data: bytes) -> str:
    """What ``threatexchange hash video`` prints after ``vpdq ``: its VPDQSignal on the file."""
    need_module("vpdq", VPDQ_HOW)
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    with tempfile.NamedTemporaryFile(suffix=".mp4") as fh:
        fh.write(data)
        fh.flush()
        return VPDQSignal.hash_from_file(Path(fh.name))


@pytest.mark.parametrize("rate", [None, 12, 30000 / 1001])
def test_frame_hashes_are_vpdqs_bit_for_bit(rate: float | None) -> None:
    """The same frames (vpdq's period is int(fps) frames: 0.968 s at 29.97 fps), the same PDQ and quality."""
    clip = make_clip(seed=64, seconds=4.0, scenes=2)
    if rate is not None:
        clip = edit(clip, fps=rate)
    reference = _vpdq_features(clip)
    ours = extract(clip, VideoLimits())[0].sampled
    assert [(f.pdq, f.quality) for f in ours] == [(r.hex, r.quality) for r in reference]
    assert [f.t for f in ours] == pytest.approx([r.timestamp for r in reference], abs=1e-3)


def test_a_threatexchange_signal_imported_matches_copies(env, clips) -> None:
    svc, call = env
    line = "vpdq " + _te_signal(clips["original"])
    call("POST", "/api/v1/banks", "admin", json={"name": "te", "kind": "fake"})
    assert call("POST", "/api/v1/banks/te/import?format=te-lines", "admin",
                data=line.encode()).get_json()["created"] == 1  # an admin's import keeps it confirmed
    matcher = jobs.bank_matcher(svc)
    for name in ("re-encode", "trimmed 1 s"):
        verdict = analyze(clips[name], svc.settings, matcher=matcher).verdict
        assert verdict.level == "known-fake", (name, verdict.summary)
        assert [e.details["method"] for e in _bank_evidence(verdict)] == ["vpdq"]


def test_credences_exported_signal_is_matched_by_threatexchange(env, clips) -> None:
    svc, call = env
    need_module("vpdq", VPDQ_HOW)
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    call("POST", "/api/v1/banks", "admin", json={"name": "debunked", "kind": "fake"})
    _bank_upload(svc, call, "debunked", "Staged flood video", clips["original"])
    still = make_clip(seed=63, seconds=6.0, scenes=2, pan=0)  # exported pruned: 2 frames for 6 s
    _bank_upload(svc, call, "debunked", "Still video", still)
    lines = call("GET", "/api/v1/banks/debunked/export?format=te-lines", "reader").get_data(as_text=True).splitlines()
    exported = {len(json.loads(s)): s for kind, _, s in (ln.partition(" ") for ln in lines) if kind == "vpdq"}
    assert sorted(exported) == [2, 4]  # frames at 0-3 s; the still video's two scenes
    for name in ("re-encode", "trimmed 1 s"):
        result = VPDQSignal.compare_hash(_te_signal(clips[name]), exported[4])
        assert result.match and result.distance.query_match_percent == 100.0, (name, result)
    still_copy = VPDQSignal.compare_hash(_te_signal(reencode(still, crf=28)), exported[2])
    assert still_copy.match and still_copy.distance.compared_match_percent == 100.0, still_copy
