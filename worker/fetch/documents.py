"""Fetching documents that are not media (trust lists, remote C2PA manifests) through the same guard,
caps and deadline as media: only the Accept header and the check of the first bytes differ."""
from __future__ import annotations

from functools import partial
from typing import Any

from server.media_types import describe_unknown
from worker.fetch.common import FetchLimits, FetchRefused, Fetched, Want
from worker.fetch.deadline import Deadline, Watchdog
from worker.fetch.policy import Resolver, system_resolver
from worker.fetch.transport import (
    SNIFF_BYTES,
    Body,
    body_too_large,
    content_length,
    declared_too_large,
    fetch_following,
    read_into,
)


def _check_pem(head: bytes) -> str:
    # Published lists put "Subject ..." lines before each block, so plain text is accepted here
    # and the caller parses the certificates; markup, JSON and binary are not.
    text = head.lstrip()
    plain = bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if b"-----BEGIN CERTIFICATE-----" not in head and not (plain and not text.startswith((b"<", b"{", b"["))):
        raise FetchRefused(f"refused: expected PEM certificates, got {describe_unknown(head)}", "not-document")
    return "application/x-pem-file"


def _check_c2pa(head: bytes) -> str:
    # A manifest store is one JUMBF superbox: 4-byte size, then the box type.
    if head[4:8] != b"jumb":
        raise FetchRefused(f"refused: expected a C2PA manifest store, got {describe_unknown(head)}", "not-document")
    return "application/c2pa"


PEM = Want("application/x-pem-file, text/plain;q=0.5", _check_pem)
C2PA_MANIFEST = Want("application/c2pa", _check_c2pa)


def fetch_document(
    url: str,
    limits: FetchLimits,
    want: Want,
    resolver: Resolver = system_resolver,
    user_agent: str = "Credence/0.1 (+trust lists and manifests)",
) -> Fetched:
    """Fetch a non-media document (``PEM``, ``C2PA_MANIFEST``) with the same guard, caps and deadline."""
    reader = partial(_read_body, limits=limits, want=want)
    target, resp, redirects = fetch_following(url, limits, resolver, user_agent, want.accept, reader,
                                              Deadline(limits.timeout_s))
    data = resp.body.data
    mime = want.check(data[:SNIFF_BYTES])
    return Fetched(
        url=url, final_url=target.url, data=data, mime=mime, etag=resp.etag, redirects=tuple(redirects),
    )


def _read_body(resp: Any, deadline: Deadline, watchdog: Watchdog, *, limits: FetchLimits, want: Want) -> Body:
    """A document's body: the size cap first, the type check as soon as its first bytes are in."""
    declared = content_length(resp.headers.get("Content-Length"))
    if declared is not None and declared > limits.max_bytes:
        raise declared_too_large(declared, limits.max_bytes)
    buf = bytearray()
    # Stop early rather than download a big HTML page.
    if not read_into(resp, buf, min(SNIFF_BYTES, limits.max_bytes + 1), deadline, watchdog):
        want.check(bytes(buf[:SNIFF_BYTES]))
    read_into(resp, buf, limits.max_bytes + 1, deadline, watchdog)
    if len(buf) > limits.max_bytes:
        raise body_too_large(limits.max_bytes)
    return Body(bytes(buf))
