"""Shared bits of the benchmarks: repository imports and percentiles.

The scripts are run as ``.venv/bin/python bench/<name>.py``, which puts bench/ (not the repository
root) on sys.path; the root is added so ``tests.helpers`` (real JPEGs, local media server) is reused
instead of copied.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new PostgreSQL database for one measurement (a SQLAlchemy URL), dropped afterwards, made the way
    tests/conftest.py makes its own."""
    import psycopg

    from tests.conftest import PG_ADMIN

    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    name = f"credence_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def in_child(script: str, *args: str) -> dict:
    """``script --child args`` in a fresh process, so its peak RSS is its own; it prints JSON last."""
    out = subprocess.run([sys.executable, script, "--child", *args], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
