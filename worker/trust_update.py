"""`credence trust update`: fetch the published C2PA trust lists into the data directory.

The download goes through the guarded fetcher like every other request Credence makes. Both
lists are fetched and parsed before either file is replaced, so a failed or hostile update
leaves the previous lists in force; a JSON record says when and from where they came.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from worker.fetch.common import FetchLimits
from worker.fetch.documents import PEM, fetch_document
from worker.fetch.policy import Resolver, system_resolver
from worker.trust import RECORD_FILE, TRUST_LIST_FILE, TSA_LIST_FILE, trust_dir


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _count_certificates(data: bytes, url: str) -> int:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{url} is not a list of PEM certificates ({exc})") from exc
    return len(certs)


def update_trust_lists(settings: Any, resolver: Resolver = system_resolver) -> dict[str, Any]:
    """Download both lists, check they parse, then replace the local copies and the record."""
    limits = FetchLimits.from_settings(settings)
    fetched = []
    for name, url in ((TRUST_LIST_FILE, settings.trust_list_url), (TSA_LIST_FILE, settings.trust_tsa_list_url)):
        got = fetch_document(url, limits, PEM, resolver=resolver)
        fetched.append((name, url, got, _count_certificates(got.data, url)))
    folder = trust_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "lists": []}
    for name, url, got, count in fetched:
        _write_atomic(folder / name, got.data)
        record["lists"].append({
            "file": name, "url": url, "final_url": got.final_url, "certificates": count,
            "bytes": len(got.data), "sha256": hashlib.sha256(got.data).hexdigest(), "etag": got.etag,
        })
    _write_atomic(folder / RECORD_FILE, json.dumps(record, indent=2).encode())
    return record
