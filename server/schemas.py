"""Request and response bodies of the API (the OpenAPI document is generated from these), and the one
validation of the same inputs when they come from the CLI or the desk."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ApiError, validation_details
from server.verdicts import Verdict

Model = TypeVar("Model", bound=BaseModel)
NOTE_MAX = 5000  # a reviewer's or reporter's note, wherever it is written


def parse(schema: type[Model], values: Mapping[str, Any]) -> Model:
    """Input from a form or command-line options, validated as the API validates a JSON body and refused
    with the API's message: one rule per input, whichever front end it came through."""
    try:
        return schema.model_validate(dict(values))
    except ValidationError as exc:
        raise ApiError(400, "request body is invalid", validation_details(exc)) from exc


def iso(value: datetime | None) -> str | None:
    """RFC 3339 with its offset, as the OpenAPI ``date-time`` format requires: SQLite hands back
    naive datetimes, and every time stored here is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


class ChecksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    urls: list[str] = Field(min_length=1, description="Media URLs (http/https) to check.")
    wait: float = Field(0.0, ge=0.0, description="Seconds to wait for pending checks (long-poll), capped by the server.")


class CheckResult(BaseModel):
    url: str | None = Field(description="The URL as normalised by the server (null for uploads).")
    status: Literal["done", "pending", "unknown"] = Field(
        description="unknown: GET /checks?ids= was given an id this instance does not know.")
    check_id: str | None = Field(description="Poll GET /checks/{id}; null when answered from cache.")
    verdict: Verdict | None = None


class ChecksResponse(BaseModel):
    results: list[CheckResult]


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: list[str] = Field(min_length=1, max_length=100, description="SHA-256 hex digests of media bytes.")


class LookupResult(BaseModel):
    sha256: str
    status: Literal["done", "unknown"]
    url: None = None
    check_id: None = None
    verdict: Verdict | None = None


class LookupResponse(BaseModel):
    results: list[LookupResult]


class MediaUrlInfo(BaseModel):
    url: str
    final_url: str | None
    fetched_at: datetime


class VerdictHistoryItem(BaseModel):
    id: str
    level: str
    pipeline_version: str
    created_at: datetime


class MediaHashes(BaseModel):
    sha256: str
    pdq: str | None
    pdq_quality: int | None
    phash: str | None


class EntryDispute(BaseModel):
    by: str = Field(description="The peer instance that disputes the entry")
    reason: str = Field(description="Its note, as published on its exchange feed")
    at: datetime | None


class CitedBankEntry(BaseModel):
    """A bank entry the verdict cites (a match, or a retracted entry it used to match), as it stands now."""

    id: str
    bank: str | None
    label: str
    status: str
    disputed: bool
    disputes: list[EntryDispute]


class MediaReport(BaseModel):
    """``urls`` (where this instance saw the content) is empty and ``first_seen`` null for anonymous clients,
    and for every client when the instance hides sightings (``desk_sightings``)."""

    sha256: str
    hashes: MediaHashes
    mime: str | None
    size: int | None
    width: int | None
    height: int | None
    first_seen: datetime | None
    urls: list[MediaUrlInfo]
    verdict: Verdict | None
    bank_entries: list[CitedBankEntry] = Field(default_factory=list)
    history: list[VerdictHistoryItem]


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["reader", "reporter", "reviewer", "admin"]


class KeyInfo(BaseModel):
    id: str
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyInfo):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


class Error(BaseModel):
    error: str
    details: Any = None


class BankCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Lower-case letters, digits, '.', '_', '-'.")
    kind: Literal["fake", "original"]
    shared: bool = False
    description: str = ""
    owner: str = ""


class BankUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["fake", "original"] | None = None
    shared: bool | None = Field(None, description="Publish this bank's confirmed entries on the exchange feed.")
    description: str | None = None
    owner: str | None = None


class EntryFrame(BaseModel):
    """One keyframe PDQ of a video entry."""

    model_config = ConfigDict(extra="forbid")
    pdq: str = Field(description="64 hex characters, pdqhash bit order.")
    quality: int = Field(50, ge=0, le=100, description="PDQ quality; frames under 50 never match.")
    t: float = Field(0.0, ge=0, description="Seconds from the start of the video.")


_FRAMES_DOC = ("A video's keyframe PDQs: objects, 64-hex PDQs (quality taken as 50), or the ecosystem's vPDQ "
               "feature strings '<pdq>,<quality>,<seconds>'. Matched vPDQ-style: shares of keyframes, both ways.")


class EntrySubmit(BaseModel):
    """Give a URL (fetched through the guarded fetcher), or hashes; files go as multipart instead.
    Image hashes: sha256, pdq, phash. Video hashes: sha256, md5, frames."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=300)
    notes: str = Field("", max_length=20_000)
    source_links: list[str] = Field(default_factory=list, max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)
    url: str | None = None
    sha256: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = Field(None, ge=0, le=100)
    phash: str | None = None
    media_kind: Literal["image", "video"] | None = Field(
        None, description="Default: video when md5 or frames are given; set from the bytes for a file or URL.")
    md5: str | None = Field(None, description="A video file's MD5 (the ecosystem's video_md5), 32 hex characters.")
    frames: list[EntryFrame | str] | None = Field(None, max_length=4000, description=_FRAMES_DOC)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["confirm", "reject"]
    note: str = Field(min_length=1, max_length=NOTE_MAX, description="Why: shown in the audit log and the report.")


class RetractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=NOTE_MAX)


class EntryDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=NOTE_MAX, description="Why: kept in the audit log.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str | None = None
    pdq: str | None = None
    phash: str | None = None
    md5: str | None = Field(None, description="A video file's MD5.")
    frames: list[EntryFrame | str] | None = Field(None, max_length=4000, description=_FRAMES_DOC)


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="The image URL a reader reports as fake.")
    note: str = Field("", max_length=NOTE_MAX)
    label: str | None = Field(None, max_length=300)


class BankInfo(BaseModel):
    name: str
    kind: Literal["fake", "original"]
    owner: str
    description: str
    generation: int
    shared: bool
    created_at: datetime
    entries: dict[str, int] = Field(description="Entry counts by status.")


class BankList(BaseModel):
    banks: list[BankInfo]


class EntryOrigin(BaseModel):
    instance: str
    entry_id: str | None


class EntryInfo(BaseModel):
    id: str
    bank: str | None
    bank_kind: Literal["fake", "original"] | None
    status: Literal["pending", "confirmed", "rejected", "retracted"]
    label: str
    notes: str
    sha256: str | None
    pdq: str | None
    pdq_quality: int | None
    phash: str | None
    media_kind: Literal["image", "video"]
    md5: str | None
    frames: list[EntryFrame] | None
    hash_state: str
    hash_error: str | None
    source_url: str | None
    source_links: list[str]
    tags: list[str]
    submitted_by: str
    submitted_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None
    disputed: bool
    origin: EntryOrigin | None


class EntryPage(BaseModel):
    entries: list[EntryInfo]
    offset: int
    limit: int = Field(description="The page size used: the one asked for, capped at 200.")


class AuditItem(BaseModel):
    at: datetime
    actor: str
    action: str
    details: Any = None


class EntryDetail(EntryInfo):
    history: list[AuditItem]


class Deleted(BaseModel):
    deleted: str
