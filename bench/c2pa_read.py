"""Cost of reading and validating C2PA manifests in about 1-MB signed JPEGs.

Why: every image carrying Content Credentials pays for a full validation (hashing the whole
file, checking the signature and the certificate chain against ~50 trust anchors). The floor
is the same library asked to read the same image without a manifest, in the same run and the
same reading context: parsing the container is work any reader must do. The ratio signed / floor
says what validation itself costs. Our stage (``worker.stages.c2pa_read.read_c2pa``, which also
asks for crJSON to learn the issuing CA) and the whole provenance rule (thumbnails stored,
evidence worded) are timed too, as is decoding the same bytes, for scale.

Signing uses a throwaway test CA (tests.c2pa_kit) whose root is a user anchor, so the files
validate as Trusted against the official lists (CREDENCE_TEST_TRUST_DIR, default ../shared/trust) plus that root.
Not a test: it prints figures and asserts nothing about speed. It makes no network traffic.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT, percentile


def photo_jpeg(seed: int, width: int = 1600, height: int = 1200, quality: int = 94) -> bytes:
    """Photo-like content (gradients plus grain) that lands near 1 MB once signed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / (width + height) * 255
    base = np.stack([ramp, 255 - ramp, (xx * yy / (width * height)) * 255], -1)
    pixels = np.clip(base + rng.normal(0, 22, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import c2pa

    from server.config import Settings
    from tests.c2pa_kit import make_ca, sign
    from tests.helpers import SHARED_TRUST
    from worker.pipeline.item import Item
    from worker.pipeline.rules import ProvenanceRule
    from worker.stages.c2pa_read import read_c2pa
    from worker.stages.decode import decode
    from worker.trust import reading_context

    shared = SHARED_TRUST  # CREDENCE_TEST_TRUST_DIR, as the tests read it
    if not (shared / "C2PA-TRUST-LIST.pem").is_file():
        raise SystemExit(f"no C2PA trust lists in {shared}: set CREDENCE_TEST_TRUST_DIR to where you have them")
    ca = make_ca()
    leaf = ca.leaf("Bench Camera", "Credence Bench")
    plain = [photo_jpeg(seed) for seed in range(args.images)]
    signed = [sign(data, leaf)[0] for data in plain]
    with tempfile.TemporaryDirectory(prefix="credence-bench-") as tmp:
        root = Path(tmp) / "root.pem"
        root.write_bytes(ca.root_pem)
        settings = Settings(data_dir=tmp, trust_anchors_path=str(shared / "C2PA-TRUST-LIST.pem"),
                            trust_tsa_anchors_path=str(shared / "C2PA-TSA-TRUST-LIST.pem"),
                            trust_user_anchors_path=str(root))
        ctx, _ = reading_context(settings)
        assert read_c2pa(signed[0], "image/jpeg", ctx).state == "Trusted"

        def library(data: bytes) -> object:
            reader = c2pa.Reader.try_create("image/jpeg", io.BytesIO(data), context=ctx)
            if reader is None:
                return None
            with reader:
                return reader.json()

        rule = ProvenanceRule()
        modes: dict[str, Callable[[int], object]] = {
            "floor: library, no manifest": lambda i: library(plain[i]),
            "library read+validate": lambda i: library(signed[i]),
            "stage read_c2pa": lambda i: read_c2pa(signed[i], "image/jpeg", ctx, want_thumbnails=False),
            "rule (thumbnails, words)": lambda i: rule.act(Item(data=signed[i], settings=settings, mime="image/jpeg")),
            "stage, no manifest": lambda i: read_c2pa(plain[i], "image/jpeg", ctx),
            "decode (scale)": lambda i: decode(signed[i], settings.max_pixels),
        }
        times: dict[str, list[float]] = {name: [] for name in modes}
        for work in modes.values():
            work(0)
        for round_no in range(args.rounds):
            order = list(modes) if round_no % 2 == 0 else list(reversed(modes))
            for name in order:
                for i in range(len(plain)):
                    started = time.perf_counter()
                    modes[name](i)
                    times[name].append(time.perf_counter() - started)

    sizes = [len(data) for data in signed]
    print(f"images: {len(signed)} signed JPEGs 1600x1200, {statistics.mean(sizes) / 1e6:.2f} MB mean "
          f"(unsigned {statistics.mean(len(d) for d in plain) / 1e6:.2f} MB); c2pa-python {c2pa.__version__}; "
          f"{args.rounds} rounds, sequential, {os.cpu_count()} CPUs; 52 official anchors + 1 user anchor")
    print(f"{'mode':<30} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'files/s':>8}")
    mean_ms = {}
    for name, values in times.items():
        mean_ms[name] = statistics.mean(values) * 1000
        print(f"{name:<30} {mean_ms[name]:>8.2f} {percentile(values, 50) * 1000:>8.2f} "
              f"{percentile(values, 99) * 1000:>8.2f} {1000 / mean_ms[name]:>8.1f}")
    floor = mean_ms["floor: library, no manifest"]
    print(f"ratio library read+validate / floor (mean): {mean_ms['library read+validate'] / floor:.1f}x")
    print(f"ratio stage read_c2pa / floor (mean): {mean_ms['stage read_c2pa'] / floor:.1f}x")
    print(f"ratio stage read_c2pa / decode (mean): {mean_ms['stage read_c2pa'] / mean_ms['decode (scale)']:.2f}x")


if __name__ == "__main__":
    main()
