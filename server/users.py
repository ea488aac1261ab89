"""Desk accounts: create, list, delete, check a password. Used by the sign-in page and the CLI.

Passwords are stored as werkzeug.security hashes (scrypt with a per-password salt); a sign-in for a
user that does not exist still pays for one hash check, so timing does not tell which names exist.
"""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from server import models
from server.auth import ROLES

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")
MIN_PASSWORD = 10
_DUMMY_HASH = generate_password_hash("credence-desk-no-such-user")


class UserError(ValueError):
    """A refusal with a message fit for the person who asked."""


def normalise_username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise UserError("user names are 1-100 characters: lower-case letters, digits, '.', '_', '@' and '-'")
    return name


def create_user(session: Session, *, username: str, password: str, role: str, actor: str) -> models.User:
    name = normalise_username(username)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    if session.scalars(select(models.User.id).where(models.User.username == name)).first():
        raise UserError(f"a user named {name!r} exists")
    user = models.User(username=name, password_hash=generate_password_hash(password), role=role)
    session.add(user)
    session.flush()
    session.add(models.AuditLog(actor=actor, action="user.create", target=user.id,
                                details={"username": name, "role": role}))
    return user


def delete_user(session: Session, *, username: str, actor: str) -> None:
    user = session.scalars(select(models.User).where(models.User.username == normalise_username(username))).first()
    if user is None:
        raise UserError(f"no user named {username!r}")
    session.add(models.AuditLog(actor=actor, action="user.delete", target=user.id, details={"username": user.username}))
    session.delete(user)


def authenticate(session: Session, username: str, password: str) -> models.User | None:
    try:
        name = normalise_username(username)
    except UserError:
        name = None
    user = session.scalars(select(models.User).where(models.User.username == name)).first() if name else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = models.utcnow()
    return user
