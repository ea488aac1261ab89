"""Content Credentials in every format we route that c2pa-python signs and reads.

Each file is made here (Pillow, pillow-heif, PyAV, the stdlib `wave`, SVG by hand), signed for
real with the test CA, then read by the stage: untrusted without the anchor, trusted with it,
absent before signing, broken after one byte of content is flipped. Pictures, drawings and sound
also go through the whole ruleset (`worker.pipeline.runner.analyze`); MP4 and MOV only through the stage, since
the video pipeline is tested on its own.
"""
from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import c2pa
import numpy as np
import pytest
from PIL import Image

from server.config import Settings
from server.media_types import PROVENANCE_ONLY_TYPES, sniff
from server.verdicts import Level
from tests.c2pa_kit import Leaf, SigningCA, capture_manifest, make_ca, sign
from worker.pipeline.runner import analyze
from worker.stages import c2pa_explain, c2pa_read
from worker.trust import reading_context


def _picture(seed: int = 7, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """Noise, so every window of the encoded content is unique and a flipped byte is findable."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _pillow(fmt: str, **options: object) -> Callable[[], bytes]:
    def make() -> bytes:
        buf = io.BytesIO()
        _picture().save(buf, fmt, **options)
        return buf.getvalue()
    return make


def make_heic() -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    pillow_heif.from_pillow(_picture()).save(buf, quality=80)   # x265 encoder in the wheel
    return buf.getvalue()


def make_heif() -> bytes:
    """The same HEVC picture under HEIF's generic major brand `mif1` (sniffed as image/heif)."""
    data = make_heic()
    assert data[4:12] == b"ftypheic" and b"mif1" in data[16:40]   # mif1 is already a compatible brand
    return data[:8] + b"mif1" + data[12:]


def make_svg() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="64" viewBox="0 0 96 64">\n'
            b'  <rect width="96" height="64" fill="#2a7f62"/>\n'
            b'  <circle cx="48" cy="32" r="20" fill="#f2a541" stroke="#1b1b1b" stroke-width="3"/>\n'
            b'  <path d="M10 54 L30 40 L50 50 L70 30 L86 44" fill="none" stroke="#ffffff" stroke-width="2"/>\n'
            b'</svg>\n')


def make_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / rate)
                                                         + 3000 * math.sin(i * i % 97)))
                                 for i in range(int(seconds * rate))))
    return buf.getvalue()


def make_mp3(seconds: float = 0.5, rate: int = 22050) -> bytes:
    """Real MPEG-1/2 Layer III frames from PyAV's bundled LAME encoder."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000 + np.sin(2 * np.pi * 1234 * t) * 3000).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def make_mp4(fmt: str = "mp4") -> bytes:
    from tests.clips import make_clip

    return make_clip(seed=3, seconds=1.0, size=(160, 120), fmt=fmt)


# mime -> maker. PNG/WebP/JPEG are also covered by test_provenance; here they guard the table.
MAKERS: dict[str, Callable[[], bytes]] = {
    "image/jpeg": _pillow("JPEG", quality=90),
    "image/png": _pillow("PNG"),
    "image/webp": _pillow("WEBP", quality=90),
    "image/avif": _pillow("AVIF", quality=80),
    "image/heic": make_heic,
    "image/heif": make_heif,
    "image/gif": _pillow("GIF"),
    "image/tiff": _pillow("TIFF"),
    "image/svg+xml": make_svg,
    "audio/mpeg": make_mp3,
    "audio/wav": make_wav,
    "video/mp4": make_mp4,
    "video/quicktime": lambda: make_mp4("mov"),
}
# What the explanation must call the content when one of its bytes changes.
CHANGED = {"image/svg+xml": "the drawing (its SVG markup) was changed after signing",
           "audio/mpeg": "the sound was changed after signing", "audio/wav": "the sound was changed after signing",
           "video/mp4": "the video or its sound was changed after signing",
           "video/quicktime": "the video or its sound was changed after signing"}
BMFF = {"image/avif", "image/heic", "image/heif", "video/mp4", "video/quicktime"}


class Files:
    """Every format made and signed once for the module (signing is the slow part)."""

    def __init__(self, folder: Path) -> None:
        self.ca: SigningCA = make_ca()
        self.leaf: Leaf = self.ca.leaf("Field Recorder 3", "Acme Media")
        self.root_file = folder / "root.pem"
        self.root_file.write_bytes(self.ca.root_pem)
        self.other_root = folder / "other-root.pem"          # a trust list the signer is not on
        self.other_root.write_bytes(make_ca("Somebody Else").root_pem)
        self.folder = folder
        self.plain = {mime: make() for mime, make in MAKERS.items()}
        self.signed = {mime: sign(data, self.leaf, capture_manifest(f"capture.{mime.split('/')[1]}"), mime=mime)[0]
                       for mime, data in self.plain.items()}

    def settings(self, trusted: bool) -> Settings:
        anchors = self.root_file if trusted else self.other_root
        return Settings(data_dir=self.folder / "data", trust_user_anchors_path=str(anchors))

    def context(self, trusted: bool) -> object:
        return reading_context(self.settings(trusted))[0]

    def tampered(self, mime: str) -> bytes:
        """The signed file with one bit flipped in its content (never in the manifest store)."""
        signed, plain = self.signed[mime], self.plain[mime]
        if mime in BMFF:   # the coded media lives in the mdat box
            box = signed.find(b"mdat")
            size = struct.unpack(">I", signed[box - 4:box])[0]
            at = box - 4 + size // 2
        else:
            needle = plain[len(plain) * 2 // 3:len(plain) * 2 // 3 + 24]
            assert signed.count(needle) == 1, mime
            at = signed.find(needle) + 8
        out = bytearray(signed)
        out[at] ^= 0x01
        return bytes(out)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("formats"))


def test_the_names_we_hand_the_library_are_its_own() -> None:
    supported = set(c2pa.Reader.get_supported_mime_types())
    assert c2pa_read._FORMATS <= supported, c2pa_read._FORMATS - supported
    assert c2pa_read._FORMATS <= set(c2pa.Builder.get_supported_mime_types())
    assert PROVENANCE_ONLY_TYPES <= c2pa_read._FORMATS


def test_a_webp_thumbnail_is_recorded_as_webp(files: Files) -> None:
    result = c2pa_read.read_c2pa(files.signed["image/webp"], "image/webp", files.context(True))
    assert [fmt for fmt, _ in result.thumbnails.values()] == ["image/webp"]


@pytest.mark.parametrize("mime", list(MAKERS))
def test_signed_then_read_untrusted_trusted_and_absent(files: Files, mime: str) -> None:
    signed = files.signed[mime]
    assert sniff(files.plain[mime][:4096]) == mime and sniff(signed[:4096]) == mime   # routed as itself
    assert c2pa_read.read_c2pa(files.plain[mime], mime, files.context(False)).status == "absent"

    untrusted = c2pa_read.read_c2pa(signed, mime, files.context(False), want_thumbnails=False)
    assert untrusted.status == "present" and untrusted.state == "Valid", untrusted
    assert [f.code for f in untrusted.failures] == ["signingCredential.untrusted"]
    assert untrusted.mime == mime and untrusted.embedded
    assert untrusted.active is not None and untrusted.active.signer.organisation == "Acme Media"
    assert untrusted.active.signer.not_after and untrusted.active.signer.timestamped is False

    trusted = c2pa_read.read_c2pa(signed, mime, files.context(True))
    assert trusted.state == "Trusted" and trusted.failures == []
    # Thumbnails are kept under the type their bytes prove (c2pa writes GIF and WebP ones as such).
    for fmt, data in trusted.thumbnails.values():
        assert fmt == sniff(data[:64]) and fmt.startswith("image/")
    if mime in ("image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff"):
        assert len(trusted.thumbnails) == 1
    [item] = c2pa_explain.evidence(trusted)
    assert item.kind == "c2pa-trusted" and item.supports == Level.VERIFIED
    assert "signed by Acme Media (Field Recorder 3)" in item.summary


@pytest.mark.parametrize("mime", list(MAKERS))
def test_one_flipped_content_byte_breaks_the_credentials(files: Files, mime: str) -> None:
    result = c2pa_read.read_c2pa(files.tampered(mime), mime, files.context(True), want_thumbnails=False)
    codes = [f.code for f in result.failures]
    assert result.state == "Invalid", (mime, codes)
    assert codes == ["assertion.bmffHash.mismatch" if mime in BMFF else "assertion.dataHash.mismatch"]
    [item] = c2pa_explain.evidence(result)
    assert item.kind == "c2pa-invalid" and item.supports == Level.TAMPERED
    assert CHANGED.get(mime, "the pixels were changed after signing") in item.summary


@pytest.mark.parametrize("mime", ["image/avif", "image/heic", "image/heif", "image/gif", "image/tiff"])
def test_pictures_through_the_pipeline(files: Files, mime: str) -> None:
    assert analyze(files.signed[mime], files.settings(False)).verdict.level == Level.SIGNED_UNTRUSTED
    verdict = analyze(files.signed[mime], files.settings(True)).verdict
    assert verdict.level == Level.VERIFIED, verdict.summary
    assert [e.kind for e in verdict.evidence if e.stage == "decode"] == ["decoded"]   # pixels analysed too
    tampered = analyze(files.tampered(mime), files.settings(True)).verdict
    assert tampered.level == Level.TAMPERED and "the pixels were changed after signing" in tampered.summary


@pytest.mark.parametrize("mime", sorted(PROVENANCE_ONLY_TYPES))
def test_drawings_and_sound_through_the_pipeline(files: Files, mime: str) -> None:
    untrusted = analyze(files.signed[mime], files.settings(False)).verdict
    assert untrusted.level == Level.SIGNED_UNTRUSTED, untrusted.summary
    assert untrusted.summary.startswith("Signed by Acme Media (Field Recorder 3), not on your trust list")
    verified = analyze(files.signed[mime], files.settings(True)).verdict
    assert verified.level == Level.VERIFIED, verified.summary
    assert "provenance-only" in [e.kind for e in verified.evidence]

    unsigned = analyze(files.plain[mime], files.settings(True)).verdict
    assert unsigned.level == Level.NO_EVIDENCE
    kinds = {e.kind: e for e in unsigned.evidence}
    assert "c2pa-absent" in kinds and mime in kinds["provenance-only"].summary
    assert not [e for e in unsigned.evidence if e.supports is not None]

    tampered = analyze(files.tampered(mime), files.settings(True)).verdict
    assert tampered.level == Level.TAMPERED, tampered.summary
    assert CHANGED[mime] in tampered.summary and "pixels" not in tampered.summary
    assert not [e for e in tampered.evidence if e.kind == "stage-error"]


def test_mp4_credentials_read_at_the_stage(files: Files) -> None:
    """The video pipeline is tested elsewhere; here only that c2pa_read reads MP4 bytes."""
    result = c2pa_read.read_c2pa(files.signed["video/mp4"], "video/mp4", files.context(True))
    assert result.state == "Trusted" and result.active is not None
    assert result.active.title == "capture.mp4"
    # Truncated video is unreadable or broken, never a crash.
    cut = c2pa_read.read_c2pa(files.signed["video/mp4"][: len(files.signed["video/mp4"]) // 2], "video/mp4",
                              files.context(True))
    assert cut.status in ("unreadable", "damaged") or cut.state == "Invalid", cut
