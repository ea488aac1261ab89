"""A host's bank index on disk: built once per generation, memory-mapped by every worker process.

Celery's prefork children each need the index. Built in each, it costs each child the whole load (40 s at
10M entries) and its own copy (850 MB at 10M). Here the first process to need a generation builds it under
a file lock and saves its arrays (``.npy``) into a folder named after the generation and thresholds; the
others wait for the lock and map the same files read-only, so the host holds one copy in its page cache.
A folder appears by an atomic rename, only when complete; older generations are removed (a process still
mapping one keeps its pages until it moves on).
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

KEEP = 2  # generations left on disk: the newest, and the one processes may still be reading


_GENERATION = re.compile(r"g\d+-\d+-t[\d-]+")


def folder_for(root: Path, state: tuple[int, int], thresholds: tuple[int, ...]) -> Path:
    return root / ("g%d-%d-t%s" % (*state, "-".join(map(str, thresholds))))


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """One builder per host at a time; the others wait, then find its files."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write every array, then make the folder appear at once."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(folder.parent, keep=folder)


def load(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a complete folder, mapped read-only; None when it is not there (or unreadable)."""
    if not folder.is_dir():
        return None
    try:
        return {path.stem: np.load(path, mmap_mode="r", allow_pickle=False) for path in folder.glob("*.npy")}
    except (OSError, ValueError) as exc:
        log.warning("bank index files in %s are unreadable (%s): rebuilding", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _prune(root: Path, keep: Path) -> None:
    """Older generations beyond KEEP, and what a builder that died left half-written; nothing else."""
    ours = [p for p in root.iterdir() if p.is_dir() and p != keep and _GENERATION.fullmatch(p.name)]
    ours.sort(key=lambda p: p.stat().st_mtime)
    for old in ours[:max(0, len(ours) - (KEEP - 1))] + list(root.glob(".tmp-*")):
        shutil.rmtree(old, ignore_errors=True)
