"""The worker's allocator settings (worker/allocator.py, issue 17): a picture's buffers freed by one analysis
are reused by the next instead of coming back from the kernel as fresh pages, each a page fault."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import ROOT

PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from worker import allocator
    if sys.argv[1] == "tuned" and not allocator.keep_freed_buffers():
        sys.exit(3)
    a = np.ones(20 * 1024 * 1024 // 8); del a  # a 20 MB buffer, like a big picture's planes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        a = np.ones(20 * 1024 * 1024 // 8); del a
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_buffers_are_reused_without_page_faults() -> None:
    default, tuned = faults("default"), faults("tuned")
    # 5 x 20 MB is 25,600 pages: glibc's defaults give some back each time; the tuned allocator none.
    assert tuned < 100, f"{tuned} page faults with the tuned allocator (default: {default})"
    assert default > 10 * max(tuned, 1), f"the probe shows no difference: default {default}, tuned {tuned}"
