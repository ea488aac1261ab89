"""The benchmarks that measure scale run, at a tiny size, as part of the suite: a bench that no longer runs
is found here, not on the day someone needs its figures. The figures themselves are in bench/README.md."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(*argv: str) -> str:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pdq_index_bench_runs_and_checks_exactness() -> None:
    out = _bench("bench/pdq_index.py", "--sizes", "20000", "--queries", "50", "--brute-queries", "10")
    assert "20,000 hashes (uniform)" in out and "faster" in out


def test_bank_snapshot_bench_loads_from_postgresql(pg_url) -> None:  # pg_url: fails under CI=true without PostgreSQL
    out = _bench("bench/bank_snapshot.py", "--sizes", "3000")
    line = next(line for line in out.splitlines() if line.strip().startswith("3,000"))
    assert line.split()[-4].endswith("x") and all(float(v) >= 0 for v in line.split()[-3:])


def test_repository_bench_looks_up_through_the_index_and_sizes_the_tables(pg_url) -> None:
    # 3,000 manifests: past the size from which lookups use the index. The bench asserts every planted hit is found.
    out = _bench("bench/repository.py", "--rows", "3000", "--queries", "20", "--brute-queries", "3", "--stores", "20",
                 "--store-bytes", "5000")
    assert "manifests: 3,000 (COPY" in out
    rows = {line[:54].strip(): line[54:].split() for line in out.splitlines() if line.startswith("  ")}
    for name in ("repository.find (one session each)", "HammingIndex alone, same PDQs (floor)"):
        hits_p50, _, hits_p99, misses_p50, _, misses_p99 = rows[name]
        assert all(float(v) > 0 for v in (hits_p50, hits_p99, misses_p50, misses_p99)), (name, out)
    video = next(words for name, words in rows.items() if name.startswith("a video of 30 frames"))
    assert len(video) == 3 and float(video[0]) > 0, out  # the bench asserts the planted frame is found
    sizes = [int(word.replace(",", "")) for word in out.splitlines()[-1].split() if word.replace(",", "").isdigit()]
    assert sizes[0] < sizes[1] and sizes[2] == 5000, out  # bytes per manifest without, with a 5,000-byte store


def test_rematch_scan_bench_finds_the_planted_copy(pg_url) -> None:  # the bench asserts exactly one match
    out = _bench("bench/rematch_scan.py", "--sizes", "3000")
    line = next(line for line in out.splitlines() if line.strip().startswith("3,000"))
    assert "x" in line.split()[-2]


@pytest.mark.timeout(240)
def test_video_bench_runs_against_its_decode_floor() -> None:
    out = _bench("bench/video.py", "--seconds", "2", "--fps", "10", "--scenes", "2", "--rounds", "1")
    assert "decode only (floor)" in out and "keyframes.extract" in out


@pytest.mark.timeout(240)
def test_hostile_media_bench_prints_worst_case_per_type() -> None:
    # One file of each type, two of them refused (a child process per file: the whole corpus is bench work).
    out = _bench("bench/hostile_media.py", "--scale", "0.1", "--only", "mp4 100k", "--only", "jpeg 3000",
                 "--only", "flat")
    lines = {line.split()[0]: line.split() for line in out.splitlines()[-4:] if line.strip()}
    assert set(lines) >= {"mp4", "jpeg", "png"}  # type, worst s, floor s, ratio, worst MB, floor MB
    assert all(row[3].endswith("x") and float(row[4]) > 0 for kind, row in lines.items() if kind != "type")
    assert "more than 4,096 boxes" in out and "more than 100 scans" in out  # refused, with the reason


@pytest.mark.timeout(240)
def test_page_bench_serves_a_fresh_page_and_profiles_it() -> None:
    out = _bench("bench/page.py", "--images", "3", "--rounds", "2", "--detect", "on", "--post-wait", "0.5")
    assert "embedded, detection on: 3 fresh images, 2 rounds" in out and "x the median floor" in out
    rounds = [line.split() for line in out.splitlines() if re.match(r"    [12] ", line)]
    assert len(rounds) == 2 and all(r[-3].endswith("x") and float(r[-3][:-1]) > 0 for r in rounds), out
    rows = {line[:70].strip(): line[70:].split() for line in out.splitlines() if line.startswith("    ")}
    for stage in ("fetch task: fetch", "cpu task rule decode", "gpu task: detect (batch ms / batch size)",
                  "detect queued -> gpu task starts (broker, gpu queue, batching)",
                  "verdict recorded -> client sees it (long poll)"):
        assert rows[stage][-1] == "6" and float(rows[stage][0]) >= 0, (stage, out)  # mean ms, ..., n images
