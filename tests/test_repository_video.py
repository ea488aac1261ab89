"""The manifest repository for videos (docs/repository.md, "Videos"): a validly signed MP4 is kept with its vPDQ
frames, and a video without credentials is looked up by its frames against signed videos and signed pictures.

Real c2pa-python signing with a test CA, real clips made and re-encoded with PyAV, the real ruleset and database.
"""
from __future__ import annotations

import hashlib
import json
import io
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import select

from server import models
from server.app import create_app
from server.config import Settings
from server.db import Database
from server.media_store import MediaStore
from server.migrate import upgrade
from server.provenance import repository
from server.verdicts import Evidence, Level, Verdict, fuse
from tests.c2pa_kit import capture_manifest, sign
from tests.clips import make_clip, reencode, scene_frames
from tests.helpers import SHARED_TRUST
from tests.images import jpeg_bytes, photo
from tests.test_recovery import Repository, check, conforms, trusted_ca
from worker.pipeline.item import Item
from worker.pipeline.rules import RULES
from worker.pipeline.runner import run_rules
from worker.stages import soft_binding

SIZE = (160, 120)


def clip_of(pictures: list[np.ndarray], fps: int = 10) -> bytes:
    """An MP4 showing these RGB frames in order (as tests/clips.py writes its clips)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def panning(seed: int, seconds: int, fps: int = 10) -> list[np.ndarray]:
    picture = scene_frames(seed, 1, *SIZE, block=8)[0]
    return [np.roll(picture, i * 2, axis=1) for i in range(seconds * fps)]


class Kit:
    """Signed once for the module: a camera's clip (MP4 and MOV) and a camera's photo, with a trusted test root."""

    def __init__(self, folder: Path) -> None:
        ca, self.root = trusted_ca(folder, "Video Recovery Test")
        camera = ca.leaf("Test Camera 7", "Acme Photo")
        self.clip = make_clip(seed=31, seconds=4, fps=10, size=SIZE, scenes=2, block=8)
        self.video, self.store = sign(self.clip, camera, capture_manifest("clip.mp4"), mime="video/mp4")
        mov = make_clip(seed=31, seconds=2, fps=10, size=SIZE, scenes=2, fmt="mov", block=8)
        self.mov, self.mov_store = sign(mov, camera, capture_manifest("clip.mov"), mime="video/quicktime")
        self.picture = photo(1, size=SIZE)
        self.photo, _ = sign(jpeg_bytes(photo(1)), camera, capture_manifest("photo.jpg"))

    def settings(self, folder: Path) -> Settings:
        return Settings(detect=False, data_dir=folder / "data",
                        trust_anchors_path=str(SHARED_TRUST / "C2PA-TRUST-LIST.pem"),
                        trust_tsa_anchors_path=str(SHARED_TRUST / "C2PA-TSA-TRUST-LIST.pem"),
                        trust_user_anchors_path=str(self.root))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("video-recovery"))


@pytest.fixture
def local(kit: Kit, tmp_path: Path) -> tuple[Settings, Repository]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    return kit.settings(tmp_path), Repository(Database(url))


def one(verdict: Verdict, kind: str) -> Evidence:
    found = [e for e in verdict.evidence if e.kind == kind]
    assert len(found) == 1, [(e.kind, e.summary) for e in verdict.evidence]
    return found[0]


def stored(db: Database) -> list[models.ProvenanceManifest]:
    with db.session() as session:
        return list(session.scalars(select(models.ProvenanceManifest)).all())


# --------------------------------------------------------------------------- the store in an MP4 or MOV

def test_the_store_is_read_from_the_c2pa_uuid_box(kit: Kit) -> None:
    assert soft_binding.manifest_store(kit.video, "video/mp4") == kit.store  # what the Builder wrote
    assert soft_binding.manifest_store(kit.mov, "video/quicktime") == kit.mov_store
    assert soft_binding.manifest_store(kit.video, "video/mp4", limit=1000) is None  # bounded
    assert soft_binding.manifest_store(kit.clip, "video/mp4") is None  # never signed
    assert soft_binding.manifest_store(kit.video[:40], "video/mp4") is None  # cut inside the box
    assert soft_binding.manifest_store(b"\x00\x00\x00\x04uuid" + kit.video, "video/mp4") is None  # impossible size


# --------------------------------------------------------------------------- filling and recovering

def test_a_signed_video_is_kept_with_its_frames_and_a_stripped_reencode_recovers_it(
        kit: Kit, local: tuple[Settings, Repository]) -> None:
    settings, matcher = local
    verdict = check(kit.video, settings, matcher)
    assert verdict.level == Level.VERIFIED, verdict.summary
    [row] = stored(matcher.db)
    assert (row.sha256, row.mime, row.state) == (hashlib.sha256(kit.video).hexdigest(), "video/mp4", "trusted")
    assert row.signer["organisation"] == "Acme Photo" and row.store == kit.store
    assert row.pdq is None and row.iscc is None  # a video has no picture-wide PDQ or ISCC Image-Code
    frames = one(verdict, "video-hashes").details["frames"]
    kept = [f._asdict() for f in models.decode_frames(row.frame_pdqs)]
    assert kept == [{"t": f["t"], "pdq": f["pdq"], "quality": f["quality"]} for f in frames]
    assert sum(f["quality"] >= 50 for f in kept) >= 3  # the lookup below has frames to work with

    copy = reencode(kit.video, size=(128, 96), crf=32)  # what a platform makes of an upload: no C2PA box left
    assert len(copy) < len(kit.video) and soft_binding.manifest_store(copy, "video/mp4") is None
    verdict = check(copy, settings, matcher)
    one(verdict, "c2pa-absent")
    assert verdict.level == Level.RECOVERED, verdict.summary
    found = one(verdict, "credentials-recovered")
    d = found.details
    assert d["original_sha256"] == row.sha256 and d["signer"]["organisation"] == "Acme Photo"
    assert d["binding"] == "vpdq" and d["frames"]["original"] == "video"
    assert d["frames"]["matched"] == d["frames"]["of"] >= 3 and d["distance"] <= settings.vpdq_frame_threshold
    assert "look like frames of a video signed by Acme Photo (Test Camera 7)" in found.summary
    assert "not that this video is unedited" in found.summary
    assert len(stored(matcher.db)) == 1  # the copy carries no credentials: nothing new is kept


def test_a_video_showing_a_signed_photo_finds_the_photo(kit: Kit, local: tuple[Settings, Repository]) -> None:
    settings, matcher = local
    assert check(kit.photo, settings, matcher).level == Level.VERIFIED
    still = np.asarray(kit.picture.convert("RGB"))
    # The photo for a second among three seconds of other footage: it speaks for that second only.
    verdict = check(clip_of([still] * 10 + panning(41, 3)), settings, matcher)
    found = one(verdict, "credentials-recovered")
    assert found.supports is None and verdict.level != Level.RECOVERED, verdict.summary
    assert found.details["binding"] == "pdq" and found.details["frames"]["original"] == "image"
    assert found.details["frames"]["t"] == 0 and found.details["frames"]["matched"] == 1
    assert found.details["frames"]["of"] > 1
    assert found.summary.startswith("Part of this video looks like signed content")
    assert "a picture signed by Acme Photo (Test Camera 7)" in found.summary
    assert "not for the rest of this video" in found.summary
    # A video that is only the photo: most of it looks like the signed picture.
    verdict = check(clip_of([still] * 20), settings, matcher)
    assert verdict.level == Level.RECOVERED, verdict.summary
    assert one(verdict, "credentials-recovered").details["binding"] == "pdq"


def test_the_resolution_api_finds_a_stripped_video_by_content_only_when_most_of_it_matches(
        kit: Kit, local: tuple[Settings, Repository]) -> None:
    settings, matcher = local
    check(kit.video, settings, matcher)
    check(kit.photo, settings, matcher)
    client = create_app(settings.model_copy(update={"database_url": matcher.db.url})).test_client()
    labels = {r.mime: r.label for r in stored(matcher.db)}

    def by_content(data: bytes) -> dict:
        return conforms(client.post("/c2pa/v1/matches/byContent", data=data, content_type="video/mp4"),
                        "c2pa.softBindingQueryResult")

    [match] = by_content(reencode(kit.video, size=(128, 96), crf=32))["matches"]
    assert match["manifestId"] == labels["video/mp4"] and 80 < match["similarityScore"] <= 100
    still = np.asarray(kit.picture.convert("RGB"))
    assert by_content(clip_of([still] * 20))["matches"][0]["manifestId"] == labels["image/jpeg"]
    # The signed photo for one second of four: a frame of it, not this video's manifest.
    assert by_content(clip_of([still] * 10 + panning(41, 3))) == {"matches": []}
    assert by_content(make_clip(seed=77, seconds=4, fps=10, size=SIZE, scenes=2, block=8)) == {"matches": []}
    assert client.post("/c2pa/v1/matches/byContent", data=b"not a video",
                       content_type="video/mp4").status_code == 415


def test_an_unrelated_video_recovers_nothing(kit: Kit, local: tuple[Settings, Repository]) -> None:
    settings, matcher = local
    check(kit.video, settings, matcher)
    check(kit.photo, settings, matcher)
    verdict = check(make_clip(seed=77, seconds=4, fps=10, size=SIZE, scenes=2, block=8), settings, matcher)
    one(verdict, "c2pa-absent")
    assert not [e for e in verdict.evidence if e.kind == "credentials-recovered"]
    assert verdict.level != Level.RECOVERED


def test_a_video_whose_credentials_now_fail_is_forgotten(kit: Kit, local: tuple[Settings, Repository]) -> None:
    settings, matcher = local
    check(kit.video, settings, matcher)
    without_root = settings.model_copy(update={"trust_user_anchors_path": ""})
    assert check(kit.video, without_root, matcher).level == Level.SIGNED_UNTRUSTED
    assert [r.state for r in stored(matcher.db)] == ["valid"]  # kept, valid but untrusted here now
    at = kit.video.index(b"mdat") + 200  # a byte of the media data: the BMFF hash no longer matches
    tampered = kit.video[:at] + bytes([kit.video[at] ^ 0x55]) + kit.video[at + 1:]
    item = run_rules(Item(data=tampered, settings=settings, matcher=matcher), RULES)
    verdict = fuse(item.evidence, sha256=item.sha256, versions=item.versions)
    assert verdict.level == Level.TAMPERED, verdict.summary
    with matcher.db.session() as session:  # as a re-check of the kept content whose credentials now fail records it
        repository.record_from_verdict(session, hashlib.sha256(kit.video).hexdigest(), verdict.evidence,
                                       lambda sha: None)
    assert stored(matcher.db) == []


# --------------------------------------------------------------------------- export and import

def test_export_carries_the_frames_and_old_files_still_import(kit: Kit, local: tuple[Settings, Repository],
                                                             tmp_path: Path) -> None:
    settings, matcher = local
    check(kit.video, settings, matcher)
    media = MediaStore(settings.media_path)
    with matcher.db.session() as session:
        lines = list(repository.export_lines(session, media.get))
    record = json.loads(lines[1])
    [row] = stored(matcher.db)
    assert record["frames"] == [f._asdict() for f in models.decode_frames(row.frame_pdqs)]
    assert record["pdq"] is None and repository.check_record(record) == []
    assert repository.check_record({**record, "frames": [{"t": -1, "pdq": "0" * 64, "quality": 90}]})
    assert repository.check_record({**record, "frames": [{"t": 1, "pdq": "xyz", "quality": 90}]})
    assert repository.check_record({**record, "frames": "not a list"})
    assert repository.check_record({**record, "frames": None}) != []  # then it has no soft binding at all
    old = {k: v for k, v in record.items() if k != "frames"}  # a file written before frames were exported
    assert repository.check_record({**old, "pdq": "0f" * 32, "pdq_quality": 90}) == []

    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    db = Database(other)
    with db.session() as session:
        imported = repository.import_lines(session, "".join(lines).encode(), media.put, actor="cli:test")
    assert imported.created == 1
    [copy] = stored(db)
    assert copy.frame_pdqs == row.frame_pdqs and copy.origin == "import by cli:test"


# --------------------------------------------------------------------------- the lookup's ranking

def flipped(pdq: str, bits: int) -> str:
    """``pdq`` with its first ``bits`` bits inverted: exactly that Hamming distance away."""
    value = int(pdq, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{value:064x}"


def test_the_lookup_prefers_most_frames_matched_then_the_nearest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rank.db'}"
    upgrade(url)
    db = Database(url)
    rng = np.random.default_rng(5)
    a, b, c = (bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(3))

    def record(n: int, **fields: object) -> dict:
        return {"sha256": f"{n:064x}", "label": f"urn:c2pa:{n}", "state": "trusted", "signer": {"organisation": f"S{n}"},
                **fields}

    frame = models.StoredFrame
    with db.session() as session:
        for rec in (record(1, frames=[{"t": 0.0, "pdq": a, "quality": 90}, {"t": 1.0, "pdq": b, "quality": 90}]),
                    record(2, frames=[{"t": 5.0, "pdq": flipped(a, 3), "quality": 90}]),
                    record(3, frames=[{"t": 0.0, "pdq": flipped(a, 1), "quality": 10}]),  # flat: never searched
                    record(4, pdq=flipped(a, 1), pdq_quality=90),  # a picture
                    record(5, frames=[{"t": 0.0, "pdq": c, "quality": 20}])):  # no usable frame at all
            assert repository.check_record(rec) == []
            repository.store_record(session, rec, lambda data: "", origin="import by test")

    def find(*frames: models.StoredFrame) -> repository.FrameRecovery | None:
        with db.session() as session:
            return repository.find_frames(session, frames, pdq_threshold=31, frame_threshold=31)

    both = find(frame(0.0, a, 90), frame(1.0, b, 90))
    assert (both.signer["organisation"], both.frames_matched, both.frames, both.distance) == ("S1", 2, 2, 0)
    assert (both.binding, both.original_t, both.original_frames) == ("vpdq", 0.0, 2)
    one_frame = find(frame(3.0, a, 90), frame(4.0, c, 90))  # S1 at 0 bits beats the picture at 1 and S2 at 3
    assert (one_frame.signer["organisation"], one_frame.distance, one_frame.t, one_frame.frames) == ("S1", 0, 3.0, 2)
    picture = find(frame(2.0, flipped(a, 1), 90))
    assert (picture.signer["organisation"], picture.binding, picture.original_t) == ("S4", "pdq", None)
    assert find(frame(0.0, c, 90)) is None  # S5's only frame is too flat to be searched
    assert find(frame(0.0, a, 40)) is None  # nor is a copy's flat frame
