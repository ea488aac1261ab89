"""The words a verdict is written in: evidence stages and kinds, and the detection states of
``versions["detect"]``.

The worker writes them and the API and desk read them back from stored verdicts, so both sides import
them from here (the desk may not import the worker): a renamed word is one edit, and a state the desk
does not know is caught by a test instead of being shown as something else. Members are ``StrEnum``s,
so they compare equal to, and serialise as, the plain strings stored in verdicts. The decisive levels
are levels: ``server.verdicts.DECISIVE``.
"""
from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """``Evidence.stage``: the rule (or job step) that wrote it; rules' names are also timing and version keys."""

    FETCH = "fetch"
    STORE = "store"
    BUDGET = "budget"
    SWEEP = "sweep"
    MEDIA_TYPE = "media-type"
    DECODE = "decode"
    KEYFRAMES = "keyframes"
    C2PA = "c2pa"
    AI_METADATA = "ai-metadata"
    WATERMARK = "watermark"
    HASHES = "hashes"
    VIDEO_HASHES = "video-hashes"
    RECOVERY = "recovery"
    BANK_MATCH = "bank-match"
    VIDEO_BANK_MATCH = "video-bank-match"
    DETECT_GATE = "detect-gate"
    DETECT = "detect"


class Kind(StrEnum):
    """``Evidence.kind``, except an ``unavailable`` item's, whose kind is the refusal's code."""

    # what the file is
    UNSUPPORTED_TYPE = "unsupported-type"
    PROVENANCE_ONLY = "provenance-only"
    DECODED = "decoded"
    KEYFRAMES = "keyframes"
    HASHES = "hashes"
    VIDEO_HASHES = "video-hashes"
    STAGE_ERROR = "stage-error"
    # Content Credentials (worker/stages/c2pa_explain.py)
    C2PA_ABSENT = "c2pa-absent"
    C2PA_REMOTE_MANIFEST = "c2pa-remote-manifest"
    C2PA_UNSUPPORTED = "c2pa-unsupported"
    C2PA_UNREADABLE = "c2pa-unreadable"
    C2PA_DAMAGED = "c2pa-damaged"
    C2PA_INVALID = "c2pa-invalid"
    C2PA_SIGNER_UNCHECKED = "c2pa-signer-unchecked"
    C2PA_TRUSTED = "c2pa-trusted"
    C2PA_EXPIRED = "c2pa-expired"
    C2PA_UNTRUSTED = "c2pa-untrusted"
    C2PA_UNVALIDATED = "c2pa-unvalidated"
    # AI declarations: "ai-" and the source (worker/stages/ai_metadata.py), or the watermark
    AI_C2PA = "ai-c2pa"
    AI_IPTC_XMP = "ai-iptc-xmp"
    AI_PNG_TEXT = "ai-png-text"
    AI_EXIF = "ai-exif"
    AI_XMP = "ai-xmp"
    AI_WATERMARK = "ai-watermark"
    # banks (worker/stages/bank_match.py)
    KNOWN_FAKE = "known-fake"
    NEAR_ORIGINAL = "near-original"
    BANK_ENTRY_RETRACTED = "bank-entry-retracted"
    # the manifest repository (worker/stages/soft_binding.py, server/provenance/repository.py)
    SOFT_BINDINGS = "soft-bindings"
    CREDENTIALS_RECOVERED = "credentials-recovered"
    # detection (worker/detection/gate.py)
    DETECTION_SKIPPED = "detection-skipped"
    DETECTION_NOT_RUN = "detection-not-run"
    DETECTION_RERUN_PENDING = "detection-rerun-pending"
    DETECTOR_UNAVAILABLE = "detector-unavailable"
    SYNTHETIC_SCORE = "synthetic-score"
    FACE_MANIPULATION_SCORE = "face-manipulation-score"
    NO_FACE = "no-face"


C2PA_PREFIX = "c2pa-"
AI_DECLARATION_PREFIX = "ai-"


def is_c2pa(kind: str) -> bool:
    return kind.startswith(C2PA_PREFIX)


def is_ai_declaration(kind: str) -> bool:
    return kind.startswith(AI_DECLARATION_PREFIX)


class DetectionState(StrEnum):
    """``versions["detect"]``: whether detection ran, and if not, why (worker/detection/gate.py sets it)."""

    PENDING = "pending"  # handed to the gpu queue: the verdict is interim until the detectors answer
    RAN = "ran"
    SKIPPED = "skipped"  # decisive evidence, or a trusted camera capture
    OFF = "off"  # CREDENCE_DETECT=false
    NOT_CONFIGURED = "not-configured"  # no detector selected
    NOT_RUN = "not-run"  # no pixels to look at
    MISCONFIGURED = "misconfigured"
    UNAVAILABLE = "unavailable"  # no detector could be set up
    ERROR = "error"  # the gpu stage could not read the pixels again
