"""Starting a check of uploaded bytes: shared by the API and the desk so both behave the same."""
from __future__ import annotations

import hashlib
from typing import IO, Any

from server.checks import records
from server.api.deps import enqueue
from server.media_types import VIDEO_TYPES, sniff
from server.metrics import CHECKS_CREATED
from server.queue import enqueue_analyze
from server.services import Services
from server.verdicts import detection_pending


class UploadTooLarge(ValueError):
    """An uploaded file over the cap its own bytes call for; the message is shown to people."""

    def __init__(self, cap: int, video: bool) -> None:
        super().__init__(f"the {'video' if video else 'file'} is larger than {cap:,} bytes")
        self.cap = cap


def upload_limit(settings: Any) -> int:
    """Most bytes any upload may have (the request body limit, MAX_CONTENT_LENGTH, must allow this)."""
    return max(int(settings.fetch_max_bytes), int(settings.video_max_bytes))


def upload_too_large(settings: Any) -> str:
    """The over-size message people see (the desk's 413 page): what the limits are, not a generic text."""
    return (f"The upload is too large: a video may have up to {int(settings.video_max_bytes):,} bytes and any "
            f"other file up to {int(settings.fetch_max_bytes):,} bytes, {upload_limit(settings):,} bytes in all "
            f"per upload. Send large files one at a time.")


def read_upload(stream: IO[bytes], settings: Any) -> bytes:
    """Read an uploaded file under the cap its first bytes call for, as the fetcher does for URLs:
    ``video_max_bytes`` for MP4/MOV/WebM, ``fetch_max_bytes`` for everything else. Only a video
    is read past the image cap, so a large non-video costs no more than before."""
    image_cap, video_cap = int(settings.fetch_max_bytes), int(settings.video_max_bytes)
    data = stream.read(image_cap + 1)
    video = sniff(data[:512]) in VIDEO_TYPES
    cap = video_cap if video else image_cap
    if video and len(data) > image_cap and video_cap > image_cap:
        data += stream.read(video_cap + 1 - len(data))
    if len(data) > cap:
        raise UploadTooLarge(cap, video)
    return data


def start_upload_check(svc: Services, data: bytes) -> tuple[str, dict[str, Any] | None]:
    """Store by hash, reuse a current verdict, else queue one analysis. Returns (check id, verdict or None).

    Bytes whose current verdict is ``unavailable`` (nothing could be read from them) are not stored again."""
    sha256 = hashlib.sha256(data).hexdigest()
    with svc.db.session() as session:
        records.record_media(session, sha256=sha256, mime=sniff(data[:512]) or "application/octet-stream",
                             size=len(data))
        check_id = records.create_check(session, source="upload", sha256=sha256).id
        current = records.current_verdict(session, sha256, svc.detectors_stamp())
        if current is not None and detection_pending(current.body.get("versions") or {}):
            current = None  # interim (detection re-running after a retraction): wait for the final verdict
        if current is not None:
            records.complete_check(session, check_id, current.id)
        body = current.body if current is not None else None
        if body is None or body.get("level") != "unavailable":
            svc.store.put(data)
    CHECKS_CREATED.labels("upload").inc()
    if body is None:
        enqueue(enqueue_analyze, sha256)
    return check_id, body
