"""Video cost per minute of 720p: keyframe extraction and the whole ruleset, against decode-only.

Run: .venv/bin/python bench/video.py [--seconds 60] [--fps 25] [--scenes 12] [--preset veryfast] [--rounds 3]

Why: every frame of the analysed span must be decoded to find scene cuts, so decoding is the floor a
video check cannot go under; this shows what keyframe selection (a 32x32 grey thumbnail per frame, RGB
for the kept ones), hashing and thumbnails add on top, measured in the same run on the same bytes.
The clip is made like the tests' clips (tests/clips.py): textured scenes panning 2 px a frame, H.264.
"""
from __future__ import annotations

import argparse
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

    rows: dict[str, list[float]] = {"decode only (floor)": [], "keyframes.extract": [],
                                    "video_hashes (PDQ per keyframe)": [], "analyze (whole ruleset)": []}
    keyframes = frames = 0
    for r in range(args.rounds):
        # Alternate the order by round so neither mode always runs on a warmer cache.
        order = ("decode", "extract", "analyze") if r % 2 == 0 else ("analyze", "extract", "decode")
        for mode in order:
            t0 = time.perf_counter()
            if mode == "decode":
                frames = decode_only(clip)
                rows["decode only (floor)"].append(time.perf_counter() - t0)
            elif mode == "extract":
                info, kept = extract(clip, limits)
                rows["keyframes.extract"].append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                video_hashes(clip, kept)
                rows["video_hashes (PDQ per keyframe)"].append(time.perf_counter() - t1)
                keyframes = len(kept)
                assert info.frames_decoded == frames or not frames, (info.frames_decoded, frames)
            else:
                verdict = analyze(clip, settings)
                rows["analyze (whole ruleset)"].append(time.perf_counter() - t0)
                assert any(e.kind == "keyframes" for e in verdict.evidence), verdict.summary

    floor = sum(rows["decode only (floor)"]) / args.rounds
    print(f"clip: 1280x720 H.264 ({args.preset}), {args.seconds:.0f} s at {args.fps} fps = {frames} frames, "
          f"{len(clip) / 2**20:.1f} MiB, {args.scenes} scenes; made in {made:.1f} s; {args.rounds} rounds")
    print(f"{'step':34s} {'mean s':>8s} {'min s':>7s} {'s per min':>10s} {'frames/s':>9s} {'x decode':>9s}")
    for name, values in rows.items():
        mean = sum(values) / len(values)
        print(f"{name:34s} {mean:8.3f} {min(values):7.3f} {mean / minutes:10.3f} {frames / mean:9.0f} "
              f"{mean / floor:8.2f}x")
    extract_mean = sum(rows["keyframes.extract"]) / args.rounds
    print(f"keyframes kept: {keyframes} (limit {limits.max_keyframes}); "
          f"{keyframes / extract_mean:.1f} keyframes per second of extraction")


if __name__ == "__main__":
    main()
