"""How an uploaded file is fingerprinted for a bank search or a submission: the one place.

The API, the CLI, the desk and the Soft Binding Resolution API's ``byContent`` all call ``fingerprint``. An image's PDQ comes with its 8 orientations
(identity first), exactly as the pipeline hashes checked media, so a mirrored or rotated copy finds the
banked original through every front end, as the matcher would find it. A video gets its file hashes and
vPDQ frame hashes, as the pipeline computes them. Pure functions over bytes: nothing here touches a database.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from server.config import Settings
from server.media_types import VIDEO_TYPES, sniff
from worker.stages import hashes, soft_binding
from worker.stages.decode import DecodeError, Limits, decode
from worker.stages.keyframes import VideoError, VideoLimits, extract
from worker.stages.video_hashes import FrameHash, video_hashes


class FingerprintError(ValueError):
    """The file could not be read as an image or a video; ``reason`` is for the person who sent it."""

    def __init__(self, noun: str, reason: str) -> None:
        super().__init__(f"could not read the {noun}: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Fingerprint:
    kind: str  # "image" or "video"
    sha256: str
    pdq: str | None = None
    pdq_quality: int | None = None
    phash: str | None = None
    orientations: list[str] = field(default_factory=list)  # PDQ in the 8 orientations, identity first
    iscc: str | None = None  # the ISO 24138 Image-Code, the repository's second soft binding
    md5: str | None = None
    frames: tuple[FrameHash, ...] = ()

    @property
    def pdq_usable(self) -> bool:
        """Whether the PDQ says anything (flat images hash to noise): as the pipeline's hashes judge it."""
        return self.pdq_quality is not None and self.pdq_quality >= hashes.PDQ_MIN_QUALITY

    def query(self) -> dict[str, Any]:
        """The hashes as a search request or a JSON answer names them."""
        if self.kind == "video":
            return {"sha256": self.sha256, "md5": self.md5,
                    "frames": [{"t": f.t, "pdq": f.pdq, "quality": f.quality} for f in self.frames]}
        return {"sha256": self.sha256, "pdq": self.pdq, "pdq_quality": self.pdq_quality, "phash": self.phash,
                "orientations": list(self.orientations)}


def fingerprint(data: bytes, settings: Settings) -> Fingerprint:
    """An image's sha256, PDQ (all orientations), pHash and ISCC, or a video's sha256, MD5 and vPDQ frames."""
    if sniff(data[:512]) in VIDEO_TYPES:
        try:
            info, keyframes = extract(data, VideoLimits.from_settings(settings))
            vh = video_hashes(data, keyframes, info.sampled)
        except VideoError as exc:
            raise FingerprintError("video", exc.reason) from exc
        return Fingerprint(kind="video", sha256=vh.sha256, md5=vh.md5, frames=tuple(vh.frames))
    try:
        image = decode(data, settings.max_pixels, Limits.from_settings(settings)).image
    except DecodeError as exc:
        raise FingerprintError("image", exc.reason) from exc
    h, orientations = hashes.compute_with_orientations(image)
    return Fingerprint(kind="image", sha256=hashlib.sha256(data).hexdigest(), pdq=h.pdq, pdq_quality=h.pdq_quality,
                       phash=h.phash, orientations=orientations, iscc=soft_binding.iscc_image_code(image))
