"""Videos through the guarded fetcher: their own cap, and range requests for files over it.

Everything runs against tests.helpers.MediaServer on 127.0.0.1 (exempted through ``allow_networks``
the way tests/test_fetcher.py does); clips are real H.264 MP4 and VP9 WebM made with PyAV, so
"playable" means keyframes.extract decodes them.
"""
from __future__ import annotations

import io
import ipaddress
import struct
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests.clips import make_clip
from tests.helpers import MediaServer, make_png
from worker.fetch import isobmff
from worker.fetch.common import FetchLimits, FetchRefused, Fetched
from worker.fetch.media import fetch
from worker.stages.keyframes import VideoLimits, extract

pytestmark = pytest.mark.timeout(60)

LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)
PAD = 32 * 1024 * 1024  # a "large" file: far more than any socket buffer holds


def limits(**overrides: object) -> FetchLimits:
    values: dict[str, object] = {
        "max_bytes": 4096, "timeout_s": 10.0, "max_redirects": 3, "max_pixels": 50_000_000,
        "allow_networks": LOOPBACK_ONLY, "video_max_bytes": 1 << 20, "video_head_bytes": 60_000,
    }
    values.update(overrides)
    return FetchLimits(**values)  # type: ignore[arg-type]


def boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, size) of the top-level boxes of a whole file."""
    walked, crossing, _ = isobmff.walk_prefix(data, len(data))
    assert crossing is None
    return [(b.kind, b.start, b.size) for b in walked]


def with_free_before_moov(data: bytes, pad: int) -> bytes:
    """The same movie with a ``free`` box of ``pad`` bytes between mdat and moov (offsets unchanged)."""
    moov_at = next(start for kind, start, _ in boxes(data) if kind == b"moov")
    return data[:moov_at] + struct.pack(">I4s", pad, b"free") + bytes(pad - 8) + data[moov_at:]


def faststart(data: bytes, path: Path) -> bytes:
    """The same packets remuxed with moov before mdat (FFmpeg moves it in a second pass over a real file)."""
    with av.open(io.BytesIO(data)) as src, av.open(str(path), "w", format="mp4",
                                                   options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return path.read_bytes()


def first_frame(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def mp4() -> bytes:
    """Eight seconds, moov at the end as PyAV writes it: ftyp, free, mdat, moov."""
    data = make_clip(seed=3, seconds=8, fmt="mp4", scenes=3)
    assert [kind for kind, _, _ in boxes(data)] == [b"ftyp", b"free", b"mdat", b"moov"]
    return data


@pytest.fixture(scope="module")
def webm() -> bytes:
    return make_clip(seed=4, seconds=8, fmt="webm", scenes=3)


@pytest.fixture
def media() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


def refused(url: str, lim: FetchLimits) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        fetch(url, lim)
    assert info.value.reason and info.value.code
    return info.value


def ranges_asked(media: MediaServer, path: str) -> list[str]:
    return [r for p, r in media.ranges_seen if p == path and r is not None]


# --------------------------------------------------------------------------- under the cap: whole

def test_small_mp4_is_fetched_whole_under_the_video_cap(media: MediaServer, mp4: bytes) -> None:
    assert len(mp4) > 4096  # over the image cap: the video cap applies because the bytes say video
    url = media.add("/small.mp4", mp4, "application/octet-stream", ranges="bytes")
    got = fetch(url, limits())
    assert isinstance(got, Fetched)
    assert (got.data, got.mime, got.source_size) == (mp4, "video/mp4", None)
    assert ranges_asked(media, "/small.mp4") == []


def test_video_without_a_length_under_the_cap_is_fetched_whole(media: MediaServer, webm: bytes) -> None:
    url = media.add("/stream.webm", webm, "video/webm", length=False)
    got = fetch(url, limits())
    assert (got.data, got.mime, got.source_size) == (webm, "video/webm", None)


def test_headers_do_not_buy_the_video_cap(media: MediaServer) -> None:
    # An image labelled video/mp4 is still an image: the image cap applies.
    png = make_png(300, 300, seed=1) + bytes(8000)
    url = media.add("/fake.mp4", png, "video/mp4", ranges="bytes")
    exc = refused(url, limits())
    assert exc.code == "too-large" and "4,096" in exc.reason


def test_non_video_over_the_image_cap_is_refused_as_before(media: MediaServer) -> None:
    url = media.add("/big.png", make_png(8, 8) + bytes(10_000), "image/png", ranges="bytes")
    exc = refused(url, limits())
    assert exc.code == "too-large" and "declared" in exc.reason and "4,096" in exc.reason
    assert ranges_asked(media, "/big.png") == []
    url = media.add("/big.html", b"<!DOCTYPE html><html><body>" + b"x" * 10_000, "video/mp4", ranges="bytes")
    assert refused(url, limits()).code == "not-media"


# --------------------------------------------------------------------------- MP4 over the cap

def test_large_mp4_is_read_by_range_requests_and_plays(media: MediaServer, mp4: bytes) -> None:
    big = with_free_before_moov(mp4, PAD)
    url = media.add("/big.mp4", big, "video/mp4", ranges="bytes")
    lim = limits(video_head_bytes=len(mp4) // 2)  # the head ends inside mdat
    got = fetch(url, lim)

    assert got.mime == "video/mp4" and got.source_size == len(big)
    asked = ranges_asked(media, "/big.mp4")
    assert asked and all(r.startswith("bytes=") for r in asked)
    assert len(asked) <= 4  # a header after mdat, the free box's end, moov's header... and moov
    # What came back: the head, and the index cut to the samples inside it; nothing of the padding.
    assert media.bytes_sent["/big.mp4"] < 12 * 1024 * 1024 < len(big)  # the first answer was hung up on
    assert [(kind, start) for kind, start, _ in boxes(got.data)] == [
        (b"ftyp", 0), (b"free", 32), (b"mdat", 40), (b"moov", lim.video_head)]
    assert got.data[48:lim.video_head] == big[48:lim.video_head]
    assert struct.unpack(">I4s", got.data[40:48]) == (lim.video_head - 40, b"mdat")
    moov_size = boxes(mp4)[-1][2]
    assert lim.video_head < len(got.data) <= lim.video_head + moov_size

    info, frames = extract(got.data, VideoLimits())
    assert frames and frames[0].t == 0.0
    assert 0 < info.analysed_s < 8.0  # the start plays; samples past the head are simply missing
    assert "damaged" not in info.capped  # the index lists only samples inside the head: no garbage decoded
    np.testing.assert_array_equal(first_frame(got.data), first_frame(mp4))


def test_mp4_over_a_low_cap_without_padding(media: MediaServer, mp4: bytes) -> None:
    url = media.add("/low.mp4", mp4, "video/mp4", ranges="bytes")
    got = fetch(url, limits(video_max_bytes=len(mp4) - 1, video_head_bytes=len(mp4) // 2))
    assert got.source_size == len(mp4) and len(got.data) < len(mp4)
    info, frames = extract(got.data, VideoLimits())
    assert frames and 0 < info.analysed_s < 8.0


def test_mp4_with_a_64_bit_mdat_size(media: MediaServer, mp4: bytes) -> None:
    # ftyp(32) free(8) mdat(8+n) -> ftyp(32) mdat(16+n, size 1 + 64-bit size): sample offsets unchanged.
    (_, _, ftyp), (_, _, free), (_, mdat_at, mdat_size) = boxes(mp4)[:3]
    assert (ftyp, free, mdat_at) == (32, 8, 40)
    wide = mp4[:32] + struct.pack(">I4sQ", 1, b"mdat", mdat_size + 8) + mp4[48:]
    url = media.add("/wide.mp4", wide, "video/mp4", ranges="bytes")
    got = fetch(url, limits(video_max_bytes=len(wide) - 1, video_head_bytes=len(wide) // 2))
    assert struct.unpack(">I4sQ", got.data[32:48]) == (1, b"mdat", len(wide) // 2 - 32)
    assert extract(got.data, VideoLimits())[1]


def test_faststart_mp4_plays_from_its_head_without_ranges(media: MediaServer, mp4: bytes, tmp_path: Path) -> None:
    fast = faststart(mp4, tmp_path / "fast.mp4")
    kinds = [kind for kind, _, _ in boxes(fast)]
    assert kinds.index(b"moov") < kinds.index(b"mdat")
    url = media.add("/fast.mp4", fast, "video/mp4")  # a server without range support
    got = fetch(url, limits(video_max_bytes=len(fast) - 1, video_head_bytes=len(fast) // 2))
    head = len(fast) // 2
    assert got.source_size == len(fast) and ranges_asked(media, "/fast.mp4") == []
    # The index is read from its copy at the end; the original stays in place as padding.
    kinds = [kind for kind, _, _ in boxes(got.data)]
    assert kinds[0] == b"ftyp" and kinds[-2:] == [b"mdat", b"moov"] and kinds.count(b"moov") == 1
    assert boxes(got.data)[-1][1] == head
    info, frames = extract(got.data, VideoLimits())
    assert frames and 0 < info.analysed_s < 8.0


def test_index_over_its_cap_is_refused(media: MediaServer, mp4: bytes) -> None:
    url = media.add("/fat-index.mp4", with_free_before_moov(mp4, 1 << 20), "video/mp4", ranges="bytes")
    # A cap of 64 KiB: the index may be at most 1 MiB... unless the cap is smaller still.
    moov_size = boxes(mp4)[-1][2]
    exc = refused(url, limits(video_max_bytes=moov_size - 1, video_head_bytes=moov_size // 2))
    assert exc.code == "too-large" and "index" in exc.reason


# --------------------------------------------------------------------------- WebM over the cap

def test_large_webm_plays_from_its_head(media: MediaServer, webm: bytes) -> None:
    big = webm + bytes(PAD)  # trailing bytes after the last cluster: a reader stops before them
    url = media.add("/big.webm", big, "video/webm", ranges="bytes")
    head = len(webm) // 2
    got = fetch(url, limits(video_head_bytes=head))
    assert (got.mime, got.data, got.source_size) == ("video/webm", webm[:head], len(big))
    assert ranges_asked(media, "/big.webm") == []  # the length was declared: no range needed
    assert media.bytes_sent["/big.webm"] < 12 * 1024 * 1024
    info, frames = extract(got.data, VideoLimits())
    assert frames and 0 < info.analysed_s < 8.0


def test_webm_without_a_length_learns_its_size_from_a_range(media: MediaServer, webm: bytes) -> None:
    url = media.add("/nolength.webm", webm, "video/webm", ranges="bytes", length=False)
    head = len(webm) // 2
    got = fetch(url, limits(video_max_bytes=len(webm) - 1, video_head_bytes=head))
    assert (got.data, got.source_size) == (webm[:head], len(webm))
    assert ranges_asked(media, "/nolength.webm") == ["bytes=0-0"]


# --------------------------------------------------------------------------- servers that will not

@pytest.mark.parametrize("mode", ["ignore", "none"])
def test_server_without_ranges_is_refused_after_at_most_the_head(media: MediaServer, mp4: bytes, mode: str) -> None:
    big = with_free_before_moov(mp4, PAD)
    url = media.add(f"/{mode}.mp4", big, "video/mp4", ranges=mode)
    lim = limits()
    exc = refused(url, lim)
    assert exc.code == "too-large"
    assert "larger than 1 MB" in exc.reason and "does not allow partial reads" in exc.reason
    assert len(ranges_asked(media, f"/{mode}.mp4")) == 1  # asked once; the 200 answer was not read
    assert media.bytes_sent[f"/{mode}.mp4"] < 2 * 12 * 1024 * 1024 < 2 * len(big)


def test_undeclared_length_without_ranges_reads_at_most_the_cap(media: MediaServer, mp4: bytes) -> None:
    url = media.add("/endless.mp4", with_free_before_moov(mp4, 4 << 20), "video/mp4", length=False)
    exc = refused(url, limits())
    assert exc.code == "too-large" and "does not allow partial reads" in exc.reason


def test_server_saying_accept_ranges_none_is_not_asked(media: MediaServer, mp4: bytes) -> None:
    # MediaServer cannot send "none"; the fetcher's Ranges honours it (unit level).
    from worker.fetch.deadline import Deadline
    from worker.fetch.ranges import Ranges
    from worker.fetch.transport import Body

    ranges = Ranges("http://127.0.0.1:1/x", limits(), lambda h, p: [], "t", "video/*", Deadline(1.0),
                    Body(b"", total=10, accept_ranges="none"), None)
    with pytest.raises(FetchRefused) as info:
        ranges.read(0, 1)
    assert info.value.code == "too-large"


@pytest.mark.parametrize("mode", ["wrong-total", "wrong-start", "short"])
def test_hostile_content_range_is_refused(media: MediaServer, mp4: bytes, mode: str) -> None:
    url = media.add(f"/{mode}.mp4", with_free_before_moov(mp4, 1 << 20), "video/mp4", ranges=mode)
    exc = refused(url, limits())
    assert exc.code == "bad-range", exc.reason


def test_range_requests_share_the_one_deadline(media: MediaServer, mp4: bytes) -> None:
    url = media.add("/slow.mp4", with_free_before_moov(mp4, 1 << 20), "video/mp4", delay=0.4, ranges="bytes")
    assert refused(url, limits(timeout_s=1.0)).code == "timeout"  # three requests of 0.4 s each


def test_a_video_gets_its_own_deadline_once_its_bytes_say_so(media: MediaServer, mp4: bytes) -> None:
    """Three requests of 0.4 s: over the 1 s of an image, within the video's 5 s; the watchdog set for the
    first deadline must not cut the sockets when it passes."""
    url = media.add("/slow.mp4", with_free_before_moov(mp4, 1 << 20), "video/mp4", delay=0.4, ranges="bytes")
    got = fetch(url, limits(timeout_s=1.0, video_timeout_s=5.0))
    assert got.mime == "video/mp4" and got.source_size == len(with_free_before_moov(mp4, 1 << 20))
    assert len(ranges_asked(media, "/slow.mp4")) == 2
    slow_image = media.add("/slow.png", make_png(), "image/png", delay=1.2)
    assert refused(slow_image, limits(timeout_s=1.0, video_timeout_s=5.0)).code == "timeout"  # images keep 1 s
    # one slow answer that outlasts the first deadline: its watchdog must wait for the video's
    padded = with_free_before_moov(mp4, 300_000)  # six 64 KiB chunks, 0.26 s apart
    whole = media.add("/drip.mp4", padded, "video/mp4", chunk_delay=0.26)
    assert fetch(whole, limits(timeout_s=1.0, video_timeout_s=5.0, video_max_bytes=len(padded))).data == padded
    assert refused(whole, limits(timeout_s=1.0, video_max_bytes=len(padded))).code == "timeout"


def test_garbage_after_the_head_is_refused_not_a_crash(media: MediaServer, mp4: bytes) -> None:
    moov_at = boxes(mp4)[-1][1]
    broken = mp4[:moov_at] + struct.pack(">I4s", 4, b"moov") + bytes(64)  # an impossible box size
    url = media.add("/broken.mp4", broken, "video/mp4", ranges="bytes")
    exc = refused(url, limits(video_max_bytes=len(broken) - 1, video_head_bytes=len(broken) // 2))
    assert exc.code == "undecodable-header" and "impossible size" in exc.reason


# --------------------------------------------------------------------------- limits

def test_video_limits_from_settings_and_defaults() -> None:
    from server.config import Settings

    lim = FetchLimits.from_settings(Settings())
    assert lim.video_cap == 100 * 1024 * 1024
    assert lim.video_head == lim.video_index_max == 32 * 1024 * 1024
    assert lim.max_bytes == 25 * 1024 * 1024
    assert lim.timeout_s == 15 and lim.video_timeout_s == 120
    bare = FetchLimits(max_bytes=1000, timeout_s=1, max_redirects=0, max_pixels=1)
    assert bare.video_cap == 1000 and bare.video_head == 1000  # no video cap: videos share the image cap


# --------------------------------------------------------------------------- through the jobs

def test_fetch_check_records_the_source_size_and_analysis_sees_it(data_dir: Path, media: MediaServer,
                                                                  mp4: bytes) -> None:
    from sqlalchemy import select

    from server import models
    from server.checks import records
    from server.migrate import upgrade
    from server.services import Services
    from server.checks.urls import normalise, url_key
    from tests.conftest import env_for, settings_from
    from worker import jobs

    settings = settings_from(env_for(data_dir, detect="false", video_max_bytes=str(1 << 20)))
    upgrade(settings.sqlalchemy_url)
    ctx = Services(settings)
    big = with_free_before_moov(mp4, 4 << 20)
    url = normalise(media.add("/job.mp4", big, "video/mp4", ranges="bytes"))
    with ctx.db.session() as session:
        check_id = records.create_check(session, source="url", url=url, url_hash=url_key(url))
    sha = jobs.fetch_check(ctx, check_id)
    assert len(sha) == 64, sha
    assert ranges_asked(media, "/job.mp4")
    with ctx.db.session() as session:
        row = session.get(models.Media, sha)
        assert (row.mime, row.source_size) == ("video/mp4", len(big)) and row.size < len(big)
    jobs.analyze_media(ctx, sha, owner="t")
    with ctx.db.session() as session:
        assert session.get(models.Media, sha).source_size == len(big)
        verdict = session.scalars(select(models.Verdict)).one().body
    kinds = {e["kind"]: e for e in verdict["evidence"]}
    assert "video-hashes" in kinds, verdict
    assert kinds["video-hashes"]["details"].get("partial") is True, kinds["video-hashes"]


# --------------------------------------------------------------------------- uploads

def test_uploads_get_the_cap_their_bytes_call_for(mp4: bytes) -> None:
    from types import SimpleNamespace

    from server.checks.uploads import UploadTooLarge, read_upload, upload_limit

    settings = SimpleNamespace(fetch_max_bytes=4096, video_max_bytes=len(mp4))
    assert upload_limit(settings) == len(mp4)
    assert read_upload(io.BytesIO(mp4), settings) == mp4  # a video over the image cap, under its own
    with pytest.raises(UploadTooLarge, match=f"video is larger than {len(mp4):,} bytes"):
        read_upload(io.BytesIO(mp4 + b"x"), settings)
    png = make_png(8, 8)
    assert read_upload(io.BytesIO(png), settings) == png
    stream = io.BytesIO(png + bytes(10_000))
    with pytest.raises(UploadTooLarge, match="file is larger than 4,096 bytes"):
        read_upload(stream, settings)
    assert stream.tell() == 4097  # a non-video is not read past the image cap


# --------------------------------------------------------------------------- hostile boxes (worker/fetch/isobmff.py)

def _never(offset: int, length: int) -> bytes:
    raise AssertionError("no range read expected")


@pytest.mark.parametrize(("prefix", "words"), [
    (struct.pack(">I4s", 16, b"ftyp") + bytes(8) + struct.pack(">I4s", 3, b"mdat"), "impossible size"),
    (struct.pack(">I4s", 16, b"ftyp") + bytes(8) + struct.pack(">I4s", 8, b"free") * 5000, "too many"),
    (struct.pack(">I4s", 8, b"free") + struct.pack(">I4s", 16, b"ftyp") + bytes(8), "ftyp"),
    (struct.pack(">I4s", 16, b"ftyp") + bytes(8) + struct.pack(">I4s", 1 << 20, b"moov") + bytes(100),
     "larger than the part"),
])
def test_hostile_prefixes_are_box_errors(prefix: bytes, words: str) -> None:
    with pytest.raises(isobmff.BoxError, match=words):
        isobmff.playable(prefix, 1 << 30, _never, 1 << 20)


def test_deeply_nested_index_is_a_box_error_not_a_recursion_crash() -> None:
    inner = b""
    for _ in range(2000):
        inner = struct.pack(">I4s", 8 + len(inner), b"trak") + inner
    moov = struct.pack(">I4s", 8 + len(inner), b"moov") + inner
    with pytest.raises(isobmff.BoxError, match="too deeply"):
        isobmff.trim_moov(moov, cut=100)


def test_index_with_a_huge_count_of_tiny_samples_is_cut_quickly(mp4: bytes) -> None:
    # stsz: uniform size 1, 2**32-1 samples, one chunk of them all: the cut is arithmetic, not a loop.
    stbl = (isobmff._box(b"stsz", bytes(4) + struct.pack(">II", 1, 0xFFFFFFFF))
            + isobmff._box(b"stsc", bytes(4) + struct.pack(">IIII", 1, 1, 0xFFFFFFFF, 1))
            + isobmff._box(b"stco", bytes(4) + struct.pack(">II", 1, 100)))
    moov = isobmff._box(b"moov", isobmff._box(b"trak", isobmff._box(b"stbl", stbl)))
    out = isobmff.trim_moov(moov, cut=1100)
    assert struct.pack(">II", 1, 1000) in out  # 1000 one-byte samples fit between offset 100 and the cut


# --------------------------------------------------------------------------- range requests are guarded like the first

def test_range_request_redirect_is_followed_when_allowed(media: MediaServer, mp4: bytes) -> None:
    big = with_free_before_moov(mp4, 1 << 20)
    mirror = media.add("/mirror.mp4", big, "video/mp4", ranges="bytes")
    url = media.add("/cdn.mp4", big, "video/mp4", ranges="bytes", range_location=mirror)
    got = fetch(url, limits())
    assert got.source_size == len(big) and got.final_url == url
    assert ranges_asked(media, "/cdn.mp4") and ranges_asked(media, "/mirror.mp4")


@pytest.mark.parametrize("target", ["http://127.0.0.2:{P}/mirror.mp4", "http://169.254.169.254/latest/meta-data/",
                                    "file:///etc/passwd"])
def test_range_request_redirect_to_a_blocked_target_is_refused(media: MediaServer, mp4: bytes, target: str) -> None:
    url = media.add("/evil.mp4", with_free_before_moov(mp4, 1 << 20), "video/mp4", ranges="bytes",
                    range_location=target.replace("{P}", str(media.port)))
    exc = refused(url, limits())
    assert exc.code in ("blocked-address", "scheme") and "redirected from" in exc.reason, exc.reason


def test_large_mov_is_read_by_range_requests_and_plays(media: MediaServer) -> None:
    mov = make_clip(seed=5, seconds=6, fmt="mov", scenes=2)
    assert [kind for kind, _, _ in boxes(mov)][-2:] == [b"mdat", b"moov"]
    url = media.add("/big.mov", mov, "video/quicktime", ranges="bytes")
    got = fetch(url, limits(video_max_bytes=len(mov) - 1, video_head_bytes=len(mov) // 2))
    assert (got.mime, got.source_size) == ("video/quicktime", len(mov))
    assert ranges_asked(media, "/big.mov")
    info, frames = extract(got.data, VideoLimits())
    assert frames and 0 < info.analysed_s < 6.0 and "damaged" not in info.capped
