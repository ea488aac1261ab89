"""Worst-case seconds and peak RSS of the whole analysis on the hostile corpus, per file type, against a floor.

Run: .venv/bin/python bench/hostile_media.py [--scale 1.0] [--unbounded] [--timeout 300] [--only TEXT ...]

Why: the attack on a running instance (issue 15) pinned workers for minutes with an 803 KB MP4 of empty
boxes, a progressive JPEG of repeated scans and a 143 KB PNG that decodes to gigabytes. Each file here is
made the same way (tests/hostile_media.py) and analysed as a worker does (the budget check of
``worker.jobs.over_budget``, then ``worker.pipeline.runner.analyze``) in a fresh child process, so its time and
peak RSS are its own. The floor, measured in the same run, is decode-only of an ordinary file of the same type (PIL for images, PyAV for the MP4): what any reader of that type pays.
``--unbounded`` raises every budget out of reach, to show what the budgets save (children past
``--timeout`` are killed and reported as such). ``--scale`` shrinks the counts and ``--only`` picks files by a
part of their names (the test suite's smoke run: one child process per file is most of the time).
Not a test: it prints figures and asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

from common import ROOT

from tests.hostile_media import (flat_png, many_box_mp4, many_chunk_png, many_scan_jpeg, nested_mp4,
                                 progressive_jpeg, truncated)

UNBOUNDED = {"max_media_boxes": 10**9, "max_jpeg_scans": 10**9, "max_png_chunks": 10**9,
             "max_png_text_chunks": 10**9, "max_decode_bytes": 10**15, "max_pixels": 10**12}


def corpus(scale: float) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """name -> (file type, maker); counts scale with ``scale`` (at least a handful)."""
    n = lambda count: max(8, int(count * scale))  # noqa: E731
    side = max(256, int(7000 * min(1.0, scale ** 0.5)))
    return {
        "mp4 100k empty boxes": ("mp4", lambda: many_box_mp4(n(100_000))),
        "mp4 20k empty boxes": ("mp4", lambda: many_box_mp4(n(20_000))),
        "mp4 boxes nested 5000 deep": ("mp4", lambda: nested_mp4(n(5000))),
        "mp4 truncated many-box": ("mp4", lambda: truncated(many_box_mp4(n(100_000)))),
        "jpeg 3000 repeated scans": ("jpeg", lambda: many_scan_jpeg(n(3000), 512, 384)),
        "jpeg truncated progressive": ("jpeg", lambda: truncated(progressive_jpeg(1024, 768))),
        f"png {side}x{side} flat": ("png", lambda: flat_png(side, side)),
        "png 50k IDAT chunks": ("png", lambda: many_chunk_png(n(50_000))),
        "png 5000 text chunks": ("png", lambda: many_chunk_png(n(5000), b"tEXt")),
        "png truncated": ("png", lambda: truncated(flat_png(2000, 2000))),
    }


def floor_file(kind: str) -> bytes:
    """An ordinary file of the type: the decode-only floor."""
    if kind == "mp4":
        from tests.clips import make_clip

        return make_clip(seconds=2, fps=10, size=(320, 240), preset="veryfast")
    buf = io.BytesIO()
    from tests.hostile_media import photo

    photo(1024, 768).save(buf, "JPEG" if kind == "jpeg" else "PNG", **({"quality": 90} if kind == "jpeg" else {}))
    return buf.getvalue()


def decode_only(kind: str, data: bytes) -> None:
    if kind == "mp4":
        import av

        with av.open(io.BytesIO(data)) as container:
            for _ in container.decode(video=0):
                pass
        return
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()


def child(what: str, name: str, scale: float, unbounded: bool) -> None:
    from server.config import Settings
    from worker.jobs import over_budget
    from worker.pipeline.runner import analyze

    if what == "floor":
        data = floor_file(name)
        started = time.perf_counter()
        decode_only(name, data)
        level, summary = "-", "decode only"
    else:
        data = corpus(scale)[name][1]()
        settings = Settings(detect=False, **(UNBOUNDED if unbounded else {}))
        started = time.perf_counter()
        refused = over_budget(data, settings)  # what the worker checks before the ruleset (worker/jobs.py)
        if refused is not None:
            level, summary = "unavailable", f"Could not check: {refused.reason}."
        else:
            verdict = analyze(data, settings).verdict
            level, summary = verdict.level.value, verdict.summary
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "bytes": len(data), "level": level, "summary": summary}))


def run_child(timeout: float, *args: str) -> dict:
    try:
        out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                             cwd=ROOT, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "rss_mb": float("nan"), "bytes": 0, "level": "killed",
                "summary": f"still running after {timeout:g} s"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--unbounded", action="store_true", help="raise every budget out of reach")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the files whose name contains TEXT (repeatable)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, name, scale, unbounded = args.child
        child(what, name, float(scale), unbounded == "1")
        return
    flag = "1" if args.unbounded else "0"
    files = {name: kind for name, (kind, _) in corpus(args.scale).items()
             if not args.only or any(part in name for part in args.only)}
    floors = {kind: run_child(args.timeout, "floor", kind, "1", "0") for kind in dict.fromkeys(files.values())}
    print(f"budgets {'OFF (--unbounded)' if args.unbounded else 'on (defaults)'}, scale {args.scale:g}")
    print(f"{'file':34} {'bytes':>11} {'seconds':>8} {'x floor':>8} {'peak MB':>8}  verdict")
    worst: dict[str, tuple[float, float]] = {}
    for name, kind in files.items():
        r = run_child(args.timeout, "file", name, str(args.scale), flag)
        ratio = r["seconds"] / max(floors[kind]["seconds"], 1e-6)
        print(f"{name:34} {r['bytes']:>11,} {r['seconds']:>8.2f} {ratio:>7.1f}x {r['rss_mb']:>8.0f}  "
              f"{r['level']}: {r['summary'][:70]}")
        s, m = worst.get(kind, (0.0, 0.0))
        worst[kind] = (max(s, r["seconds"]), max(m, r["rss_mb"]))
    print()
    print(f"{'type':6} {'worst s':>8} {'floor s':>8} {'ratio':>7} {'worst MB':>9} {'floor MB':>9}")
    for kind, (s, m) in worst.items():
        f = floors[kind]
        print(f"{kind:6} {s:>8.2f} {f['seconds']:>8.3f} {s / max(f['seconds'], 1e-6):>6.1f}x {m:>9.0f} "
              f"{f['rss_mb']:>9.0f}")


if __name__ == "__main__":
    main()
