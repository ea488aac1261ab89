"""Shared bits of the benchmarks: repository imports and percentiles.

The scripts are run as ``.venv/bin/python bench/<name>.py``, which puts bench/ (not the repository
root) on sys.path; the root is added so ``tests.helpers`` (real JPEGs, local media server) is reused
instead of copied.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
