"""Video through the whole ruleset: real clips made with PyAV, signed for real with c2pa-python.

Every case goes through ``worker.pipeline.runner.analyze`` (no Celery, database or banks), so the level and
the evidence asserted are what the desk and the badge would get.
"""
from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import av
import c2pa
import numpy as np
import pdqhash
import psutil
import pytest
from PIL import Image

from server.config import Settings
from server.db import Database
from server.media_store import MediaStore
from server.migrate import upgrade
from server.verdicts import Evidence, Level, Verdict
from tests.c2pa_kit import SigningCA, capture_manifest, make_ca, sign
from tests.clips import audio_only_mp4, empty_mp4, faststart, make_clip
from tests.helpers import SHARED_TRUST, shared_trust, make_png
from worker.pipeline.runner import analyze

MIMES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
AI_INTENT = (c2pa.C2paBuilderIntent.CREATE, c2pa.C2paDigitalSourceType.TRAINED_ALGORITHMIC_MEDIA)
IMAGE_STEPS = {"decode", "hashes", "bank-match", "ai-metadata", "watermark"}


def settings_for(folder: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"data_dir": folder / "data"}
    values.update(overrides)
    return Settings(**values)


def one(verdict: Verdict, kind: str) -> Evidence:
    found = [e for e in verdict.evidence if e.kind == kind]
    assert len(found) == 1, (kind, [(e.kind, e.summary) for e in verdict.evidence])
    return found[0]


def assert_no_stage_error(verdict: Verdict) -> None:
    assert not [e for e in verdict.evidence if e.kind == "stage-error"], verdict.evidence


def junk(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(size)


def mdat_payload(data: bytes) -> int:
    """An offset well inside the mdat box's payload (the coded frames)."""
    at = data.find(b"mdat")
    assert at > 0
    size = int.from_bytes(data[at - 4:at], "big")
    return at + 4 + (size - 8) // 2


def bits_apart(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def reference_pdqs(clip: bytes, numbers: list[int]) -> list[str]:
    """Meta's pdqhash of the given frames (by number), decoded to RGB24 at their own size, as vpdq hashes them."""
    out = {}
    with av.open(io.BytesIO(clip)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n in numbers:
                bits, _quality = pdqhash.compute(frame.to_ndarray(format="rgb24"))
                out[n] = np.packbits(bits.astype(np.uint8)).tobytes().hex()
    return [out[n] for n in numbers]


def flip(data: bytes, at: int, count: int = 4) -> bytes:
    out = bytearray(data)
    for i in range(count):
        out[at + i] ^= 0xFF
    return bytes(out)


# --------------------------------------------------------------------------- plain clips


@pytest.mark.parametrize("fmt", ["mp4", "mov", "webm"])
def test_plain_clip_is_no_evidence_with_keyframes_and_hashes(tmp_path: Path, fmt: str) -> None:
    clip = make_clip(seed=11, seconds=3, fps=25, size=(320, 240), scenes=3, fmt=fmt)
    settings = settings_for(tmp_path)
    verdict = analyze(clip, settings).verdict
    assert verdict.level == Level.NO_EVIDENCE, verdict.summary
    assert_no_stage_error(verdict)

    decoded = one(verdict, "decoded")
    d = decoded.details
    assert d["format"] == "video" and d["mime"] == MIMES[fmt] and d["bytes"] == len(clip)
    assert (d["width"], d["height"], d["fps"]) == (320, 240, 25.0)
    assert d["duration_s"] == pytest.approx(3.0, abs=0.05) and d["frames_decoded"] == 75
    assert d["codec"] == ("vp9" if fmt == "webm" else "h264") and d["capped"] == []
    assert decoded.summary.startswith({"mp4": "MP4", "mov": "QuickTime (MOV)", "webm": "WebM"}[fmt] + " video, 320x240")

    # Scene cuts found where the clip changes scene (frames 25 and 50 of 75: 1.0 s and 2.0 s), and nowhere else.
    strip = one(verdict, "keyframes")
    assert strip.stage == "keyframes"
    frames = strip.details["frames"]
    assert strip.details["count"] == len(frames) and strip.details["capped"] == []
    assert frames[0]["t"] == 0 and frames[0]["reason"] == "first"
    cuts = [f["t"] for f in frames if f["reason"] == "scene"]
    assert cuts == pytest.approx([1.0, 2.0], abs=0.041)
    assert {f["reason"] for f in frames} == {"first", "scene", "uniform"}
    assert [f["t"] for f in frames] == sorted(f["t"] for f in frames)
    assert len(frames) <= settings.video_max_keyframes
    media = MediaStore(settings.media_path)
    for frame in frames:
        assert len(frame["pdq"]) == 64 and frame["pdq_quality"] >= 50
        stored = media.get(frame["thumb"])
        assert stored is not None and stored[:3] == b"\xff\xd8\xff"
        assert max(Image.open(io.BytesIO(stored)).size) == 240
    # Distinct scenes hash far apart.
    assert bin(int(frames[0]["pdq"], 16) ^ int(frames[-1]["pdq"], 16)).count("1") > 80

    hashes = one(verdict, "video-hashes")
    assert hashes.stage == "hashes"
    assert hashes.details["sha256"] == hashlib.sha256(clip).hexdigest() == verdict.sha256
    assert hashes.details["md5"] == hashlib.md5(clip).hexdigest() and hashes.details["partial"] is False
    # vPDQ's frames, what banks match: one per second of media time (frames 0, 25 and 50), each Meta's PDQ
    # of the frame as decoded. Keyframes are chosen by content and share only the first frame with them.
    sampled = hashes.details["frames"]
    assert [f["t"] for f in sampled] == [0.0, 1.0, 2.0]
    assert max(bits_apart(f["pdq"], ref) for f, ref in zip(sampled, reference_pdqs(clip, [0, 25, 50]))) <= 1
    assert sampled[0]["pdq"] == frames[0]["pdq"] and all(f["quality"] >= 50 for f in sampled)

    # The image path never runs on a video.
    assert not IMAGE_STEPS & set(verdict.versions), verdict.versions
    assert {"keyframes", "video-hashes", "c2pa"} <= set(verdict.versions)
    provenance = one(verdict, "c2pa-absent")
    if fmt == "webm":
        assert "WebM is not a format that carries Content Credentials" in provenance.summary
    else:
        assert provenance.summary == "No Content Credentials (C2PA) in this file."


def test_thumbnails_off_keeps_no_files(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, keep_thumbnails=False)
    verdict = analyze(make_clip(seed=2, seconds=1, fps=10, size=(160, 120)), settings).verdict
    frames = one(verdict, "keyframes").details["frames"]
    assert frames and all(f["thumb"] is None for f in frames)
    media = Path(settings.media_path)
    assert not [p for p in media.rglob("*") if p.is_file()] if media.exists() else True


def test_a_failed_thumbnail_costs_neither_the_hashes_nor_the_filmstrip(tmp_path: Path, monkeypatch) -> None:
    def full_disk(self: MediaStore, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MediaStore, "put", full_disk)
    verdict = analyze(make_clip(seed=2, seconds=1, fps=10, size=(160, 120)), settings_for(tmp_path)).verdict
    assert_no_stage_error(verdict)
    frames = one(verdict, "keyframes").details["frames"]
    assert frames and all(f["thumb"] is None for f in frames) and all(f["pdq"] for f in frames)
    assert [f["t"] for f in one(verdict, "video-hashes").details["frames"]] == [0.0]  # a 1 s clip: one second


def test_a_videos_facts_come_back_with_its_verdict(tmp_path: Path) -> None:
    clip = make_clip(seed=3, seconds=1, fps=10, size=(160, 120))
    facts = analyze(clip, settings_for(tmp_path)).facts
    assert (facts.mime, facts.width, facts.height) == ("video/mp4", 160, 120)
    assert facts.hashes["sha256"] == hashlib.sha256(clip).hexdigest()
    assert facts.hashes["md5"] == hashlib.md5(clip).hexdigest() and facts.hashes["partial"] is False
    assert facts.hashes["frames"] and {"t", "pdq", "quality"} == set(facts.hashes["frames"][0])
    part = analyze(clip, settings_for(tmp_path), source_size=len(clip) * 40).facts
    assert part.hashes["md5"] is None and part.hashes["partial"] is True  # a part's MD5 is never stored


def test_partial_fetch_never_claims_the_whole_files_hashes(tmp_path: Path) -> None:
    clip = make_clip(seed=3, seconds=1, fps=10, size=(160, 120))
    verdict = analyze(clip, settings_for(tmp_path), source_size=len(clip) * 40).verdict
    hashes = one(verdict, "video-hashes")
    assert hashes.details["partial"] is True and hashes.details["md5"] is None
    assert hashes.details["sha256"] == hashlib.sha256(clip).hexdigest()
    assert f"only {len(clip):,} of {len(clip) * 40:,} bytes were fetched" in hashes.summary
    assert one(verdict, "decoded").details["source_bytes"] == len(clip) * 40


def test_a_fetched_part_ending_early_is_not_called_damage(tmp_path: Path) -> None:
    clip = faststart(make_clip(seed=3, seconds=4, fps=10, size=(160, 120)))
    part = clip[:len(clip) // 2]
    decoded = one(analyze(part, settings_for(tmp_path), source_size=len(clip)).verdict, "decoded")
    assert decoded.details["capped"] == ["partial-fetch"]
    assert "were fetched from a larger file" in decoded.summary
    assert one(analyze(part, settings_for(tmp_path)).verdict, "decoded").details["capped"] == ["truncated"]


class RecordingMatcher:
    """A bank matcher with no banks that records how it was asked: the rules' wiring, not matching, is under test.
    Its database (an empty manifest repository) is what the recovery rule looks a video without credentials up in."""

    generation = (7,)

    def __init__(self, db: Database) -> None:
        self.video_calls: list[tuple] = []
        self.db = db

    def match(self, *args: object) -> list:
        raise AssertionError("the image matcher must not see a video")

    def match_video(self, sha256, md5, frames) -> list:
        self.video_calls.append((sha256, md5, frames))
        return []


def test_video_bank_match_gets_file_hashes_only_for_the_whole_file(tmp_path: Path) -> None:
    clip = make_clip(seed=4, seconds=1, fps=10, size=(160, 120))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    whole, part = RecordingMatcher(Database(url)), RecordingMatcher(Database(url))
    verdict = analyze(clip, settings_for(tmp_path), matcher=whole).verdict
    analyze(clip, settings_for(tmp_path), matcher=part, source_size=len(clip) * 2).verdict
    assert_no_stage_error(verdict)
    # Asked once, with the frames' 8 orientations (the matcher also asks for a mirrored or rotated copy:
    # tests/test_vpdq.py) and the file hashes only when the whole file was read.
    [(sha256, md5, frames)] = whole.video_calls
    assert sha256 == hashlib.sha256(clip).hexdigest() and md5 == hashlib.md5(clip).hexdigest()
    assert [f.pdq for f in frames] == [f["pdq"] for f in one(verdict, "video-hashes").details["frames"]]
    assert all(len(set(f.orientations)) == 8 and f.orientations[0] == f.pdq for f in frames)
    assert verdict.versions["banks"] == "generation-7" and "video-bank-match" in verdict.versions
    [(sha256, md5, frames)] = part.video_calls
    assert sha256 is None and md5 is None and frames


# --------------------------------------------------------------------------- signed clips


class Kit:
    def __init__(self, ca: SigningCA, folder: Path) -> None:
        self.folder = folder
        self.root_file = folder / "test-root.pem"
        self.root_file.write_bytes(ca.root_pem)
        self.camera = ca.leaf("Test Camera 7", "Acme Photo")
        self.clips = {fmt: make_clip(seed=21, seconds=2, fps=10, size=(160, 120), scenes=2, fmt=fmt)
                      for fmt in ("mp4", "mov")}
        self.signed = {fmt: sign(clip, self.camera, capture_manifest(f"clip.{fmt}"), mime=MIMES[fmt])[0]
                       for fmt, clip in self.clips.items()}
        self.ai, _ = sign(make_clip(seed=22, seconds=2, fps=10, size=(160, 120)), self.camera,
                          {"title": "generated.mp4", "claim_generator_info": [{"name": "VidGen", "version": "2"}]},
                          mime="video/mp4", intent=AI_INTENT)

    def settings(self, *, user_root: bool = False) -> Settings:
        return settings_for(self.folder,
                            trust_anchors_path=str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
                            trust_tsa_anchors_path=str(SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"),
                            trust_user_anchors_path=str(self.root_file) if user_root else "")


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    shared_trust()
    return Kit(make_ca(), tmp_path_factory.mktemp("video-provenance"))


@pytest.mark.parametrize("fmt", ["mp4", "mov"])
def test_signed_clip_is_untrusted_then_verified_with_the_root_as_anchor(kit: Kit, fmt: str) -> None:
    verdict = analyze(kit.signed[fmt], kit.settings()).verdict
    assert verdict.level == Level.SIGNED_UNTRUSTED, verdict.summary
    assert verdict.summary.startswith("Signed by Acme Photo (Test Camera 7), not on your trust list")
    assert one(verdict, "c2pa-untrusted").details["title"] == f"clip.{fmt}"
    one(verdict, "decoded"), one(verdict, "keyframes")   # the video was analysed too
    verdict = analyze(kit.signed[fmt], kit.settings(user_root=True)).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary
    assert "signed by Acme Photo (Test Camera 7)" in verdict.summary
    assert_no_stage_error(verdict)


def test_signed_clip_changed_in_its_media_data_is_tampered(kit: Kit) -> None:
    signed = kit.signed["mp4"]
    verdict = analyze(flip(signed, mdat_payload(signed)), kit.settings(user_root=True)).verdict
    assert verdict.level == Level.TAMPERED, verdict.summary
    assert verdict.summary.startswith("Content Credentials broken") and "changed after signing" in verdict.summary
    failures = one(verdict, "c2pa-invalid").details["failures"]
    assert [f["code"] for f in failures] == ["assertion.bmffHash.mismatch"]
    assert_no_stage_error(verdict)


def test_ai_declared_clip(kit: Kit) -> None:
    verdict = analyze(kit.ai, kit.settings(user_root=True)).verdict
    assert verdict.level == Level.AI_DECLARED, verdict.summary
    ai = one(verdict, "ai-c2pa")
    assert ai.details["declarations"][0]["value"] == "trainedAlgorithmicMedia"
    assert one(verdict, "c2pa-trusted").details["title"] == "generated.mp4"


# --------------------------------------------------------------------------- bad input


def test_bad_video_is_unavailable_with_a_reason(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    mp4 = make_clip(seed=5, seconds=2, fps=10, size=(160, 120))
    webm = make_clip(seed=5, seconds=2, fps=10, size=(160, 120), fmt="webm")
    header = mp4[:int.from_bytes(mp4[:4], "big")]          # the ftyp box alone
    moov_first = faststart(mp4)
    at = moov_first.find(b"mdat") + 4
    assert 0 < moov_first.find(b"moov") < at
    cases = {
        "truncated": (mp4[:len(mp4) // 2], "truncated-video", "cut short before its index"),
        "ftyp then junk": (header + junk(50_000), "undecodable-video", "not a playable video"),
        "ftyp then a PNG": (header + make_png(64, 48), "undecodable-video", "not a playable video"),
        "frames are junk": (moov_first[:at] + junk(len(moov_first) - at), "undecodable-video",
                            "no frame of the video could be decoded"),
        "webm header then junk": (webm[:200] + junk(50_000), "undecodable-video", "cannot be read as one"),
        "audio only": (audio_only_mp4(), "no-video-stream", "no video stream (audio only)"),
        "no frames": (empty_mp4(), "no-video-stream", "no video stream"),
    }
    for name, (data, code, words) in cases.items():
        verdict = analyze(data, settings).verdict
        assert verdict.level == Level.UNAVAILABLE, (name, verdict.summary)
        reason = one(verdict, code)
        assert reason.summary.startswith("Could not check: ") and words in reason.summary, (name, reason.summary)
        assert_no_stage_error(verdict)
        assert not IMAGE_STEPS & set(verdict.versions), (name, verdict.versions)


def test_huge_frames_are_refused_before_decoding(tmp_path: Path) -> None:
    clip = make_clip(seed=6, seconds=1, fps=10, size=(320, 240))
    verdict = analyze(clip, settings_for(tmp_path, video_max_pixels=320 * 240 - 1)).verdict
    assert verdict.level == Level.UNAVAILABLE
    assert "the video is 320x240, more pixels per frame than allowed" in one(verdict, "too-many-pixels").summary


@pytest.mark.parametrize("fmt", ["webm", "faststart mp4"])
def test_cut_short_after_the_index_says_how_much_was_read(tmp_path: Path, fmt: str) -> None:
    clip = make_clip(seed=7, seconds=4, fps=10, size=(160, 120), fmt="webm" if fmt == "webm" else "mp4")
    if fmt != "webm":
        clip = faststart(clip)
    verdict = analyze(clip[:len(clip) // 2], settings_for(tmp_path)).verdict
    assert verdict.level == Level.NO_EVIDENCE
    decoded = one(verdict, "decoded")
    assert decoded.details["capped"] == ["truncated"]
    assert 0 < decoded.details["analysed_s"] < 3.5 and decoded.details["duration_s"] == pytest.approx(4.0, abs=0.1)
    assert "before its declared length" in decoded.summary
    assert one(verdict, "keyframes").details["capped"] == ["truncated"]


def test_junk_cannot_outlast_the_time_budget(tmp_path: Path) -> None:
    # A WebM header then 100 MB of junk: FFmpeg's demuxer scans it all for a sync marker (about 0.3 s
    # here), so a 0.05 s budget only holds if the deadline reaches inside FFmpeg's reads.
    data = make_clip(seed=8, seconds=1, fps=10, size=(64, 48), fmt="webm")[:300] + junk(100_000_000)
    started = time.monotonic()
    verdict = analyze(data, settings_for(tmp_path, video_max_decode_s=0.05)).verdict
    elapsed = time.monotonic() - started
    assert one(verdict, "video-timeout").summary.startswith("Could not check: opening the video took longer")
    assert verdict.level == Level.UNAVAILABLE
    assert elapsed < 0.05 + 1.0 + 0.4  # plus hashing 100 MB for the item's sha256


# --------------------------------------------------------------------------- long video


@pytest.fixture(scope="module")
def long_clip() -> bytes:
    """Ten minutes at 640x360 (2 fps, 40 scenes): 1200 frames, 830 MB if every frame were kept."""
    return make_clip(seed=9, seconds=600, fps=2, size=(640, 360), scenes=40, fmt="mp4", preset="ultrafast")


class PeakRss:
    """Samples this process's resident memory in a thread: FFmpeg's and Pillow's buffers included."""

    def __enter__(self) -> "PeakRss":
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    @property
    def grew_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def test_long_clip_reads_only_max_seconds(tmp_path: Path, long_clip: bytes) -> None:
    verdict = analyze(long_clip, settings_for(tmp_path)).verdict   # defaults: 120 s, 32 keyframes
    decoded = one(verdict, "decoded")
    d = decoded.details
    assert d["duration_s"] == pytest.approx(600, abs=1) and d["capped"] == ["duration"]
    assert 119 <= d["analysed_s"] <= 120 and d["frames_decoded"] <= 241
    assert "(first 120 s analysed)" in decoded.summary
    strip = one(verdict, "keyframes").details
    assert strip["capped"] == ["duration"] and strip["count"] <= 32
    assert max(f["t"] for f in strip["frames"]) <= 120
    # Scenes last 15 s: the 8 cuts up to 120 s (inclusive) are all found.
    cuts = [f["t"] for f in strip["frames"] if f["reason"] == "scene"]
    assert cuts == pytest.approx([15 * i for i in range(1, 9)], abs=0.51)
    # vPDQ's frames come from the same bounded read: none past 120 s, each scene's start among them.
    sampled = one(verdict, "video-hashes").details["frames"]
    assert max(f.get("until", f["t"]) for f in sampled) <= 120
    assert {15.0 * i for i in range(9)} <= {f["t"] for f in sampled}


def test_long_clip_keeps_few_keyframes_in_bounded_memory(tmp_path: Path, long_clip: bytes) -> None:
    settings = settings_for(tmp_path, video_max_seconds=10_000, video_max_keyframes=8, keep_thumbnails=False)
    with PeakRss() as rss:
        verdict = analyze(long_clip, settings).verdict
    d = one(verdict, "decoded").details
    assert d["capped"] == [] and d["frames_decoded"] == 1200
    frames = one(verdict, "keyframes").details["frames"]
    assert len(frames) == 8 and sum(f["reason"] == "scene" for f in frames) >= 4
    assert rss.grew_mb < 250, rss.grew_mb


def test_long_clip_stops_at_the_time_budget(tmp_path: Path, long_clip: bytes) -> None:
    settings = settings_for(tmp_path, video_max_seconds=10_000, video_max_decode_s=0.3)
    started = time.monotonic()
    verdict = analyze(long_clip, settings).verdict
    elapsed = time.monotonic() - started
    d = one(verdict, "decoded").details
    assert d["capped"] == ["time-budget"] and 0 < d["analysed_s"] < 590
    assert "decoding stopped at the time limit" in one(verdict, "decoded").summary
    assert one(verdict, "keyframes").details["capped"] == ["time-budget"]
    assert verdict.level == Level.NO_EVIDENCE
    assert elapsed < 0.3 + 2.0, elapsed   # the budget plus hashing and thumbnails of the kept frames
