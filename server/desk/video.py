"""What the report shows of a video: its facts, a filmstrip of keyframes, and per-frame detector scores.

Reads the evidence the worker writes for videos: kind "decoded" (format "video": container, codec,
size, duration, fps, how much was analysed), kind "keyframes" (frames with a time, why each was
picked, a JPEG thumbnail in the media store and its PDQ) and, from detection, ``details.frames``
(a score per frame), ``aggregate`` and ``worst`` (the times of the worst frames). The score curve is
an SVG polyline computed here, so the page needs no script for it.
"""
from __future__ import annotations

from typing import Any, Callable

from server.media_store import is_sha256
from server.vocabulary import Kind

CURVE_W, CURVE_H = 600, 120  # the curve's own coordinates; CSS scales it to the panel
REASONS = {"first": "first frame", "scene": "scene change", "uniform": "regular interval"}
MAX_FRAMES = 200  # a filmstrip longer than this helps nobody; the worker caps well below it


def clock(seconds: Any) -> str:
    """0:07.5, 1:02:03.0: media time as a player shows it."""
    try:
        t = max(0.0, float(seconds))
    except (TypeError, ValueError):
        return "?"
    hours, rest = divmod(t, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours)}:{int(minutes):02d}:{secs:04.1f}" if hours else f"{int(minutes)}:{secs:04.1f}"


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and out not in (float("inf"), float("-inf")) else None  # NaN and inf are not numbers


def _thumb(value: Any, exists: Callable[[str], bool]) -> str | None:
    return value if isinstance(value, str) and is_sha256(value) and exists(value) else None


def video_view(evidence: list[dict[str, Any]], exists: Callable[[str], bool]) -> dict[str, Any] | None:
    """Facts and keyframes of a video verdict, or None when the evidence is not about a video."""
    decoded = next((e.get("details") or {} for e in evidence if e.get("kind") == Kind.DECODED), {})
    keyframes = next((e.get("details") or {} for e in evidence if e.get("kind") == Kind.KEYFRAMES), None)
    if decoded.get("format") != "video" and keyframes is None:
        return None
    facts = {k: decoded.get(k) for k in ("container", "codec", "width", "height", "duration_s", "fps",
                                          "analysed_s", "capped")}
    frames = []
    for raw in ((keyframes or {}).get("frames") or [])[:MAX_FRAMES]:
        if not isinstance(raw, dict) or _num(raw.get("t")) is None:
            continue
        t = _num(raw["t"])
        frames.append({"t": t, "clock": clock(t), "reason": raw.get("reason"),
                       "why": REASONS.get(raw.get("reason"), raw.get("reason") or "keyframe"),
                       "thumb": _thumb(raw.get("thumb"), exists), "pdq": raw.get("pdq"),
                       "pdq_quality": raw.get("pdq_quality")})
    return {
        "facts": facts,
        "duration": clock(facts["duration_s"]) if _num(facts["duration_s"]) is not None else None,
        "analysed": clock(facts["analysed_s"]) if _num(facts["analysed_s"]) is not None else None,
        "keyframes": frames,
        "count": (keyframes or {}).get("count", len(frames)),
        "keyframes_capped": bool((keyframes or {}).get("capped")),
    }


def frame_scores(details: dict[str, Any], duration: float | None, threshold: float | None,
                 exists: Callable[[str], bool]) -> dict[str, Any] | None:
    """The per-frame score curve of one detector on a video, and its worst frames; None without frames."""
    frames = sorted(((_num(f.get("t")), _num(f.get("score")), f.get("thumb")) for f in details.get("frames") or []
                     if isinstance(f, dict)), key=lambda f: f[0] if f[0] is not None else 0.0)
    frames = [(t, min(1.0, max(0.0, s)), thumb) for t, s, thumb in frames if t is not None and s is not None]
    if not frames:
        return None
    end = max(_num(duration) or 0.0, frames[-1][0]) or 1.0

    def x(t: float) -> float:
        return round(t / end * CURVE_W, 1)

    def y(score: float) -> float:
        return round(CURVE_H - score * CURVE_H, 1)

    worst_times = [_num(t) for t in details.get("worst") or []]
    worst = []
    for wt in worst_times:
        if wt is None:
            continue
        t, score, thumb = min(frames, key=lambda f: abs(f[0] - wt))  # the frame at (or nearest) that time
        worst.append({"t": t, "clock": clock(t), "score": score, "thumb": _thumb(thumb, exists),
                      "x": x(t), "y": y(score)})
    return {
        "w": CURVE_W, "h": CURVE_H,
        "points": " ".join(f"{x(t)},{y(s)}" for t, s, _ in frames),
        "dots": [{"x": x(t), "y": y(s), "clock": clock(t), "score": s} for t, s, _ in frames],
        "threshold_y": y(threshold) if threshold is not None else None,
        "threshold": threshold,
        "end": clock(end),
        "aggregate": details.get("aggregate"),
        "count": len(frames),
        "max": max(s for _, s, _ in frames),
        "worst": worst,
    }
