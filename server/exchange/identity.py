"""This instance's Ed25519 identity: made on first use, kept in the database (shared by API and
workers), and used to sign every feed page and event it publishes."""
from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server import models

_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


def canonical(value: Any) -> bytes:
    """The bytes that get signed: sorted keys, no spaces, UTF-8 (RFC 8785-like for our plain JSON)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def get_or_create(session: Session, name: str) -> models.InstanceIdentity:
    row = session.get(models.InstanceIdentity, 1)
    if row is None:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        row = models.InstanceIdentity(id=1, name=name, private_key=b64(raw), public_key=b64(key.public_key().public_bytes(**_RAW)))
        try:
            with session.begin_nested():  # two processes may race to make it: the first one wins
                session.add(row)
        except IntegrityError:
            row = session.get(models.InstanceIdentity, 1, populate_existing=True)
    return row


def sign(identity: models.InstanceIdentity, data: bytes) -> str:
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(identity.private_key))
    return b64(key.sign(data))


def verify(public_key_b64: str, data: bytes, signature_b64: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
