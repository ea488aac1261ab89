"""Throughput of the uncached path's per-image work: guarded fetch + decode + sha256 of 1-megapixel JPEGs.

Why: decoding is work no implementation can skip, so decode-only of the same bytes in the same run
is the floor; the ratio full / decode-only says how much the fetcher and hashing add on top. The
images come from a local ThreadingHTTPServer (tests.helpers.MediaServer) through the real fetcher
(worker.fetch.media.fetch, 127.0.0.1/32 exempted from the private-address guard). The whole analysis
(worker.pipeline.runner.analyze, which decodes again) is timed too, for context.

Not a test: it prints figures and asserts nothing about speed. Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable

from PIL import Image, ImageFilter

from common import percentile


def photo_jpeg(seed: int, width: int = 1152, height: int = 864, quality: int = 90) -> bytes:
    """Photo-like content: smooth gradients plus seeded, slightly blurred grain (numpy is not installed)."""
    rng = random.Random(seed)
    ramp = Image.linear_gradient("L").rotate(rng.randrange(360)).resize((width, height))
    glow = Image.radial_gradient("L").resize((width, height))
    base = Image.merge("RGB", (ramp, glow, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    grain = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    img = Image.blend(base, grain.filter(ImageFilter.GaussianBlur(0.8)), 0.3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from ipaddress import ip_network

    from server.config import Settings
    from tests.helpers import MediaServer
    from worker.fetch.common import FetchLimits
    from worker.fetch.media import fetch
    from worker.pipeline.runner import analyze
    from worker.stages.decode import decode

    images = [photo_jpeg(seed) for seed in range(args.images)]
    server = MediaServer()
    urls = [server.add(f"/photos/{i}.jpg", data) for i, data in enumerate(images)]
    with tempfile.TemporaryDirectory(prefix="credence-bench-") as data_dir:
        settings = Settings(data_dir=data_dir, fetch_allow_networks="127.0.0.1/32")
        limits = FetchLimits.from_settings(settings)
        assert limits.allow_networks == (ip_network("127.0.0.1/32"),)

        def full(i: int) -> None:
            fetched = fetch(urls[i], limits)
            decode(fetched.data, limits.max_pixels)
            hashlib.sha256(fetched.data).hexdigest()

        modes: dict[str, Callable[[int], object]] = {
            "decode-only": lambda i: decode(images[i], limits.max_pixels),
            "fetch-only": lambda i: fetch(urls[i], limits),
            "fetch+decode+sha256": full,
            "analyze (context)": lambda i: analyze(images[i], settings).verdict,
        }
        times: dict[str, list[float]] = {name: [] for name in modes}
        for work in modes.values():  # warm up imports, caches and the listening socket
            work(0)
        for round_no in range(args.rounds):
            order = list(modes) if round_no % 2 == 0 else list(reversed(modes))
            for name in order:
                for i in range(len(images)):
                    started = time.perf_counter()
                    modes[name](i)
                    times[name].append(time.perf_counter() - started)
    server.close()

    sizes = [len(data) for data in images]
    print(f"images: {len(images)} JPEGs 1152x864 q90, {statistics.mean(sizes) / 1024:.0f} KiB mean "
          f"({min(sizes) / 1024:.0f}-{max(sizes) / 1024:.0f} KiB); {args.rounds} rounds, sequential, "
          f"{os.cpu_count()} CPUs; fetched from a local ThreadingHTTPServer on 127.0.0.1")
    print(f"{'mode':<20} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'images/s':>9}")
    mean_ms = {}
    for name, values in times.items():
        mean_ms[name] = statistics.mean(values) * 1000
        print(f"{name:<20} {mean_ms[name]:>8.2f} {percentile(values, 50) * 1000:>8.2f} "
              f"{percentile(values, 99) * 1000:>8.2f} {1000 / mean_ms[name]:>9.1f}")
    print(f"ratio fetch+decode+sha256 / decode-only (mean): {mean_ms['fetch+decode+sha256'] / mean_ms['decode-only']:.2f}x")


if __name__ == "__main__":
    main()
