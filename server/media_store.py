"""Content-addressed store of fetched and uploaded bytes, shared by every worker.

Keyed by sha256, so writing the same content twice is harmless and tasks stay idempotent.
In production it is a volume mounted into api and workers (see docker-compose.yml).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import models

SHA256_HEX = frozenset("0123456789abcdef")
USAGE_FILE = ".usage.json"
EVICT_TO = 0.8  # over budget, evict down to this share of it, so eviction does not run on every pass
EVICT_MIN_AGE_S = 600.0
NEAR_BUDGET = 0.9  # /readyz warns from this share of the budget


def is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= SHA256_HEX


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.exists():
            return sha256
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        except FileNotFoundError:  # the first file of its folder (a mkdir each time cost more than the write)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> bool:
        """Drop one file; True when it was there."""
        try:
            self.path(sha256).unlink()
            return True
        except FileNotFoundError:
            return False

    def files(self) -> Iterator[tuple[str, int, float]]:
        """(sha256, size, mtime) of every stored file; half-written temporaries are not files yet."""
        for top in self.root.iterdir():
            if not top.is_dir() or len(top.name) != 2:
                continue
            for sub in top.iterdir():
                if not sub.is_dir():
                    continue
                for entry in os.scandir(sub):
                    if is_sha256(entry.name):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue
                        yield entry.name, st.st_size, st.st_mtime

    def evict(self, budget: int, keep: Callable[[], set[str]], low_water: float = EVICT_TO,
              min_age_s: float = EVICT_MIN_AGE_S) -> dict[str, int]:
        """Measure the store and, over ``budget``, delete files not in ``keep()`` (oldest first) down to
        ``low_water`` of it. Files younger than ``min_age_s`` stay: an upload is stored a moment before
        its check row exists. Writes the measurement for /readyz, which must not walk the store itself."""
        listing = list(self.files())
        total = sum(size for _, size, _ in listing)
        evicted = freed = 0
        if budget and total > budget:
            kept = keep()
            now = time.time()
            target = int(budget * low_water)
            for sha256, size, mtime in sorted(listing, key=lambda f: f[2]):
                if total <= target:
                    break
                if sha256 in kept or now - mtime < min_age_s:
                    continue
                if self.delete(sha256):
                    total -= size
                    freed += size
                    evicted += 1
        usage = {"bytes": total, "files": len(listing) - evicted, "budget": budget, "evicted": evicted,
                 "freed": freed, "measured_at": time.time()}
        self._write_usage(usage)
        return usage

    def _write_usage(self, usage: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump(usage, fh)
        os.replace(tmp, self.root / USAGE_FILE)

    def usage(self) -> dict[str, Any] | None:
        """The last measurement (the beat task's), or None before the first one."""
        try:
            return json.loads((self.root / USAGE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None


def referenced(session: Session) -> set[str]:
    """Every stored file something still needs: a bank entry's bytes (hashed again on rematch), a pending
    check's bytes (not analysed yet), the bytes of checks a newsroom user ran from the desk (their report
    shows them), and every file a recorded verdict points to (C2PA thumbnails, heat maps, keyframe
    thumbnails), and the thumbnails the manifest repository serves with a recovery. A verdict's own subject
    is not in the set: the verdict stands without its bytes."""
    keep: set[str] = set()
    keep.update(s for (s,) in session.execute(select(models.ProvenanceManifest.thumbnail_sha256)
                                              .where(models.ProvenanceManifest.thumbnail_sha256.isnot(None))))
    keep.update(s for (s,) in session.execute(select(models.BankEntry.sha256).where(models.BankEntry.sha256.isnot(None))))
    keep.update(s for (s,) in session.execute(
        select(models.Check.sha256).where(models.Check.status == "pending", models.Check.sha256.isnot(None))))
    keep.update(s for (s,) in session.execute(
        select(models.Check.sha256).join(models.DeskCheck, models.DeskCheck.check_id == models.Check.id)
        .where(models.Check.sha256.isnot(None))))
    for body, subject in session.execute(
            select(models.Verdict.body, models.Verdict.sha256).execution_options(yield_per=500)):
        refs: set[str] = set()
        for item in (body or {}).get("evidence") or []:
            if isinstance(item, dict):
                _hex_values(item.get("details"), refs)
        refs.discard(subject)  # its own file hashes name it; that is not a need
        keep |= refs
    return keep


def _hex_values(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        if is_sha256(value):
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _hex_values(v, out)
    elif isinstance(value, list):
        for v in value:
            _hex_values(v, out)
