"""Request and response bodies of the API; the OpenAPI document is generated from these."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.verdicts import Verdict


class ChecksRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    urls: list[str] = Field(min_length=1, description="Media URLs (http/https) to check.")
    wait: float = Field(0.0, ge=0.0, description="Seconds to wait for pending checks (long-poll), capped by the server.")


class CheckResult(BaseModel):
    url: str | None = Field(description="The URL as normalised by the server (null for uploads).")
    status: Literal["done", "pending"]
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


class MediaReport(BaseModel):
    sha256: str
    mime: str | None
    size: int | None
    width: int | None
    height: int | None
    first_seen: datetime | None
    urls: list[MediaUrlInfo]
    verdict: Verdict | None
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
