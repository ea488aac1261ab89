"""Starting a check of uploaded bytes: shared by the API and the desk so both behave the same."""
from __future__ import annotations

from typing import Any

from server import records
from server.api.deps import enqueue
from server.metrics import CHECKS_CREATED
from server.queue import enqueue_analyze
from server.services import Services


def start_upload_check(svc: Services, data: bytes) -> tuple[str, dict[str, Any] | None]:
    """Store by hash, reuse a current verdict, else queue one analysis. Returns (check id, verdict or None)."""
    from worker.stages.sniff import sniff  # pure function; the worker package is not loaded at import

    sha256 = svc.store.put(data)
    with svc.db.session() as session:
        records.record_media(session, sha256=sha256, mime=sniff(data[:64]) or "application/octet-stream",
                             size=len(data))
        check_id = records.create_check(session, source="upload", sha256=sha256).id
        current = records.current_verdict(session, sha256)
        if current is not None:
            records.complete_check(session, check_id, current.id)
        body = current.body if current is not None else None
    CHECKS_CREATED.labels("upload").inc()
    if body is None:
        enqueue(enqueue_analyze, sha256)
    return check_id, body
