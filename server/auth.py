"""API keys and roles. Keys are random, so a plain SHA-256 is the right stored form."""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy import select

from server import models
from server.db import Database
from server.errors import ApiError
from server.schemas import iso

ROLES: tuple[str, ...] = ("reader", "reporter", "reviewer", "admin")
KEY_PREFIX = "cred_"
KEY_NAME_SHOWN = 120  # of a key's name in an actor: with its id it fits the 200 characters actors are stored in


def rank(role: str) -> int:
    return ROLES.index(role)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(db: Database, *, role: str, name: str, actor: str = "cli") -> tuple[str, models.ApiKey]:
    """Create a key; the plaintext is returned once and never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        row = models.ApiKey(name=name, prefix=key[:12], key_hash=hash_key(key), role=role)
        session.add(row)
        session.flush()
        session.add(models.AuditLog(actor=actor, action="key.create", target=row.id,
                                    details={"role": role, "name": name}))
    return key, row


def key_info(row: models.ApiKey) -> dict[str, Any]:
    """A key as the API and the CLI list it: never its hash."""
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "role": row.role,
            "created_at": iso(row.created_at), "revoked_at": iso(row.revoked_at)}


def list_keys(db: Database) -> list[dict[str, Any]]:
    """Every key, oldest first, revoked ones included (an audit wants to see them)."""
    with db.session() as session:
        return [key_info(r) for r in session.scalars(select(models.ApiKey).order_by(models.ApiKey.created_at))]


def revoke_key(db: Database, key_id: str, *, actor: str) -> dict[str, Any] | None:
    """Revoke a key (at once: every request looks its key up); None when there is no such key. Revoking
    twice keeps the first time."""
    with db.session() as session:
        row = session.get(models.ApiKey, key_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = models.utcnow()
            session.add(models.AuditLog(actor=actor, action="key.revoke", target=row.id, details={}))
        return key_info(row)


def find_key(db: Database, key: str) -> models.ApiKey | None:
    with db.session() as session:
        return session.scalars(
            select(models.ApiKey).where(models.ApiKey.key_hash == hash_key(key), models.ApiKey.revoked_at.is_(None))
        ).first()


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def load_principal() -> None:
    """before_request: a presented key must be valid (401), absent means anonymous."""
    g.api_key = None
    key = presented_key()
    if key is None:
        return
    row = find_key(current_app.extensions["credence"].db, key)
    if row is None:
        raise ApiError(401, "invalid or revoked API key")
    g.api_key = row


def current_role() -> str | None:
    return g.api_key.role if getattr(g, "api_key", None) is not None else None


def actor() -> str:
    """Who the audit log says did it. A key is named by the name it was created with (``credence keys
    create --name``) and its id (``credence keys list``), never its prefix, which is part of the secret;
    always ``key:...``, so no key's name can pass for a peer's ``peer:`` or a desk user's ``desk:``."""
    row = getattr(g, "api_key", None)
    if row is None:
        return f"anonymous:{request.remote_addr}"
    name = " ".join((row.name or "").split())[:KEY_NAME_SHOWN] or "unnamed"
    return f"key:{name} ({row.id})"


def require_role(role: str | None) -> Callable:
    """``None`` means anonymous is fine when the deployment allows it."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            have = current_role()
            if have is None:
                if role is None and current_app.extensions["credence"].settings.allow_anonymous:
                    return view(*args, **kwargs)
                raise ApiError(401, "an API key is required")
            if role is not None and rank(have) < rank(role):
                raise ApiError(403, f"this needs the {role} role; your key has {have}")
            return view(*args, **kwargs)

        return wrapped

    return decorator
