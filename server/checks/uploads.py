"""Reading uploaded bytes under the cap their own type calls for: shared by the API and the desk."""
from __future__ import annotations

from typing import IO, Any

from server.media_types import VIDEO_TYPES, sniff


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
