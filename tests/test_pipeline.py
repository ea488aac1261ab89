"""The ruleset without Celery, Redis or a database: bytes in, evidence out."""
from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
import zlib

from PIL import Image

from server.config import Settings
from server.verdicts import Evidence, Level
from worker.pipeline.item import Item
from worker.pipeline.runner import analyze, run_rules
from worker.pipeline.rules import RULES
from tests.helpers import make_jpeg, make_png

SETTINGS = Settings(max_pixels=50_000_000)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas: the classic decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def test_image_gives_decoded_evidence_and_no_evidence_level() -> None:
    verdict = analyze(make_jpeg(100, 50), SETTINGS).verdict
    assert verdict.level == Level.NO_EVIDENCE
    decoded = [e for e in verdict.evidence if e.kind == "decoded"][0]
    assert decoded.details["width"] == 100 and decoded.details["format"] == "JPEG"
    assert set(verdict.versions) >= {"pipeline", "media-type", "decode", "hashes"}
    assert set(verdict.timings) >= {"media-type", "decode", "hashes"}


def test_other_formats_decode() -> None:
    for fmt in ("WEBP", "GIF", "TIFF", "BMP"):
        buf = io.BytesIO()
        Image.new("RGB", (20, 10), (1, 2, 3)).save(buf, fmt)
        assert analyze(buf.getvalue(), SETTINGS).verdict.level == Level.NO_EVIDENCE, fmt


def test_an_images_facts_come_back_with_its_verdict() -> None:
    data = make_jpeg(100, 50)
    analysis = analyze(data, SETTINGS)
    assert analysis.verdict.level == Level.NO_EVIDENCE
    facts = analysis.facts
    assert (facts.mime, facts.width, facts.height) == ("image/jpeg", 100, 50)
    assert set(facts.hashes) == {"sha256", "pdq", "pdq_quality", "phash", "dihedral"}
    assert facts.hashes["sha256"] == hashlib.sha256(data).hexdigest() and len(facts.hashes["dihedral"]) == 8
    assert len(facts.hashes["pdq"]) == 64 and len(facts.hashes["phash"]) == 16


def test_bytes_that_do_not_decode_have_no_facts() -> None:
    for data in (b"<html><body>x</body></html>", make_png()[:40], png_declaring(30000, 30000)):
        facts = analyze(data, SETTINGS).facts
        assert (facts.mime, facts.width, facts.height, facts.hashes) == (None, None, None, None)


def test_bad_input_is_unavailable_with_a_reason() -> None:
    cases = {
        b"": "empty",
        b"<html><body>x</body></html>": "HTML",
        b"%PDF-1.7 whatever": "unknown type",
        make_png()[:40]: "broken",
        png_declaring(30000, 30000): "decompression bomb",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00": "cut short before its index",
    }
    for data, words in cases.items():
        verdict = analyze(data, SETTINGS).verdict
        assert verdict.level == Level.UNAVAILABLE, words
        assert words in verdict.summary, (words, verdict.summary)


def test_a_failing_rule_becomes_a_note_and_the_others_still_run() -> None:
    class Boom:
        name, version = "boom", "1"

        def applies(self, item: Item) -> bool:
            return True

        def act(self, item: Item) -> None:
            raise RuntimeError("detector exploded")

    class Flag:
        name, version = "flag", "1"

        def applies(self, item: Item) -> bool:
            return item.decoded is not None

        def act(self, item: Item) -> None:
            item.evidence.append(Evidence(stage="flag", kind="ai", summary="declared", supports=Level.AI_DECLARED))

    item = run_rules(Item(data=make_jpeg(), settings=SETTINGS), [*RULES, Boom(), Flag()])
    kinds = [e.kind for e in item.evidence]
    assert kinds[-2:] == ["stage-error", "ai"] and "decoded" in kinds
    assert "detector exploded" in item.evidence[-2].details["error"]
    assert item.decisive
    assert "boom" not in item.versions and "flag" in item.versions


def test_the_warm_up_loads_what_the_rules_load_on_first_use_without_the_record() -> None:
    """The worker warms the ruleset before its pool forks (worker/celery_app.py): afterwards pHash's FFT and
    OpenCV are loaded, with no database configured to reach."""
    code = ("import sys, json; from server.config import Settings; from worker.pipeline import runner; "
            "before = {m: m in sys.modules for m in ('cv2', 'scipy.fftpack')}; runner.warm(Settings()); "
            "print(json.dumps([before, {m: m in sys.modules for m in ('cv2', 'scipy.fftpack')}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "CREDENCE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == \
        '[{"cv2": false, "scipy.fftpack": false}, {"cv2": true, "scipy.fftpack": true}]'
