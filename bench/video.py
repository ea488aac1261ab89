"""Video cost per minute of 720p: keyframe extraction, vPDQ and the whole ruleset, against decode-only.

Run: .venv/bin/python bench/video.py [--seconds 60] [--fps 25] [--scenes 12] [--preset veryfast] [--rounds 3]

Why: every frame of the analysed span must be decoded to find scene cuts, so decoding is the floor a
video check cannot go under; this shows what keyframe selection (a 32x32 grey thumbnail per frame, RGB
for the kept ones), vPDQ's sample (one frame a second, RGB at full size, PDQ in 8 orientations: the
difference between the two extract rows), hashing and thumbnails add on top, measured in the same run on
the same bytes. Where the ``vpdq`` package is installed, Meta's own C++ hasher runs on the same file too
(its own decode included, on all cores). The clip is made like the tests' clips (tests/clips.py):
textured scenes panning 2 px a frame, H.264.
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import tempfile
import time
from pathlib import Path

from common import percentile  # noqa: F401 - puts the repository root on sys.path

import av

from server.config import Settings
from tests.clips import make_clip
from worker.pipeline.runner import analyze
from worker.stages.keyframes import VideoLimits, extract
from worker.stages.video_hashes import video_hashes


def decode_only(data: bytes) -> int:
    """Every frame decoded, nothing converted: the same demux/decode loop and threading as extract()."""
    n = 0
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            n += len(packet.decode())
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the test clip")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    clip = make_clip(seed=1, seconds=args.seconds, fps=args.fps, size=(1280, 720), scenes=args.scenes,
                     preset=args.preset)
    made = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="credence-bench-video-"))
    settings = Settings(data_dir=folder, video_max_seconds=max(120.0, args.seconds + 1))
    limits = VideoLimits.from_settings(settings)
    minutes = args.seconds / 60

    names = {"decode": "decode only (floor)", "bare": "keyframes.extract, no vPDQ",
             "extract": "keyframes.extract (with vPDQ)", "hashes": "video_hashes (files, keyframes)",
             "analyze": "analyze (whole ruleset)", "vpdq": "vpdq.computeHash (Meta's C++)"}
    modes = ["decode", "bare", "extract", "analyze"]
    path = folder / "clip.mp4"
    if importlib.util.find_spec("vpdq") is not None:
        modes.append("vpdq")
        path.write_bytes(clip)
    wall: dict[str, list[float]] = {m: [] for m in names if m in modes or m == "hashes"}
    cpu: dict[str, list[float]] = {m: [] for m in wall}
    keyframes = frames = sampled = 0
    for r in range(args.rounds):
        # Alternate the order by round so no mode always runs on a warmer cache.
        for mode in (modes if r % 2 == 0 else modes[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            if mode == "decode":
                frames = decode_only(clip)
            elif mode == "bare":
                extract(clip, limits, vpdq=False)
            elif mode == "extract":
                info, kept = extract(clip, limits)
                t1, c1 = time.perf_counter(), time.process_time()
                video_hashes(clip, kept, info.sampled)
                wall["hashes"].append(time.perf_counter() - t1)
                cpu["hashes"].append(time.process_time() - c1)
                keyframes, sampled = len(kept), len(info.sampled)
                assert info.frames_decoded == frames or not frames, (info.frames_decoded, frames)
            elif mode == "vpdq":
                import vpdq

                vpdq.computeHash(str(path))
            else:
                verdict = analyze(clip, settings).verdict
                assert any(e.kind == "keyframes" for e in verdict.evidence), verdict.summary
            if mode == "extract":
                t0, c0 = t0 + wall["hashes"][-1], c0 + cpu["hashes"][-1]  # extract alone
            wall[mode].append(time.perf_counter() - t0)
            cpu[mode].append(time.process_time() - c0)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    floor, cpu_floor = mean(wall["decode"]), mean(cpu["decode"])
    print(f"clip: 1280x720 H.264 ({args.preset}), {args.seconds:.0f} s at {args.fps} fps = {frames} frames, "
          f"{len(clip) / 2**20:.1f} MiB, {args.scenes} scenes; made in {made:.1f} s; {args.rounds} rounds")
    print("wall: elapsed; CPU: this process's, all threads (steadier on a shared machine)")
    print(f"{'step':34s} {'mean s':>7s} {'min s':>6s} {'s per min':>9s} {'frames/s':>8s} {'x decode':>8s} "
          f"{'CPU s/min':>9s} {'x decode':>8s}")
    for mode, values in wall.items():
        print(f"{names[mode]:34s} {mean(values):7.3f} {min(values):6.3f} {mean(values) / minutes:9.3f} "
              f"{frames / mean(values):8.0f} {mean(values) / floor:7.2f}x {mean(cpu[mode]) / minutes:9.3f} "
              f"{mean(cpu[mode]) / cpu_floor:7.2f}x")
    print(f"keyframes kept: {keyframes} (limit {limits.max_keyframes}); vPDQ frames: {sampled} "
          "(one a second, near-identical neighbours folded)")

if __name__ == "__main__":
    main()
