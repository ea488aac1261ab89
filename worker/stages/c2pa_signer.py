"""The signing certificate of each manifest, read from the store ourselves, and whether it may sign content.

Why this exists: c2pa-python 0.38.1 (c2pa-rs 0.91.3) checks content signers and time-stamp
authorities against one anchor pool, and accepts a leaf whose only EKU is timeStamping or
OCSPSigning as a *content* signer whatever `trust_config` lists. A TSA's own certificate that
chains to a root on the TSA list then shows as verified content. So we read the certificate the
library validated and apply the C2PA certificate profile for content signers ourselves.

Where the certificate is: the claim signature is a COSE_Sign1 (RFC 9052) in the manifest's JUMBF
box "c2pa.signature", its chain in the `x5chain` header (label 33), leaf first. The library hands
us the manifest store as JUMBF (``Reader.resource_to_stream`` on a manifest's own URI streams
that manifest's flattened store), so no per-format extraction is needed here.

The store is hostile input: every size, count and depth below is bounded, and no parse error
escapes as anything but a ``SignerReadError`` message.
"""
from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

MAX_STORE_BYTES = 64 * 1024 * 1024
_MAX_BOXES = 20_000            # box headers read in one store, all levels together
_MAX_LABEL = 256
_MAX_MANIFESTS = 128
_MAX_COSE_BYTES = 1024 * 1024  # a signature box (certificates, time-stamp tokens, padding)
_MAX_CHAIN = 16

TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING.dotted_string        # 1.3.6.1.5.5.7.3.8
OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string          # 1.3.6.1.5.5.7.3.9
# `trust_ekus` also lists these two because the library needs them for time-stamp authority and
# OCSP responder certificates; a certificate whose purpose is one of them never signs content.
NOT_FOR_CONTENT = frozenset({TIME_STAMPING, OCSP_SIGNING})
EKU_NAMES = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string: "emailProtection",
    "1.3.6.1.5.5.7.3.36": "documentSigning",
    "1.3.6.1.4.1.62558.2.1": "C2PA claim signing",
    TIME_STAMPING: "timeStamping",
    OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.SERVER_AUTH.dotted_string: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING.dotted_string: "codeSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string: "anyExtendedKeyUsage",
}
# Microsoft's C2PA signing EKU (Bing Image Creator, Designer): accepted by c2pa-rs's own EKU list.
MICROSOFT_C2PA_SIGNING = "1.3.6.1.4.1.311.76.59.1.9"
EKU_NAMES[MICROSOFT_C2PA_SIGNING] = "Microsoft C2PA signing"
PURPOSE_NOT_ALLOWED = "certificate purpose not allowed"
_PURPOSE_WORDS = {TIME_STAMPING: "time-stamping", OCSP_SIGNING: "signing certificate status (OCSP) responses"}
_X5CHAIN = 33


class SignerReadError(ValueError):
    """The store or its signature could not be read far enough to find the signing certificate."""


@dataclass
class SignerCertificate:
    """What the signing (leaf) certificate says about its own purpose; kept in the evidence."""

    sha256: str                      # fingerprint of the leaf's DER
    serial: str = ""                 # decimal, as the library's signature_info gives it
    ekus: list[str] = field(default_factory=list)   # dotted OIDs; empty when the extension is absent
    eku_names: list[str] = field(default_factory=list)
    ca: bool = False                 # basicConstraints cA asserted
    key_cert_sign: bool = False      # keyUsage keyCertSign asserted
    chain: int = 1                   # certificates in x5chain, leaf included


@dataclass(frozen=True)
class SignerProblem:
    """Why a certificate may not sign content, in words for the summary."""

    reason: str          # short machine word: purpose, no-purpose, ca, unreadable
    words: str


def content_signing_ekus(trust_ekus: Iterable[str]) -> frozenset[str]:
    """The EKUs that let a certificate sign content: the configured ones less TSA and OCSP purposes."""
    return frozenset(e.strip() for e in trust_ekus if e.strip()) - NOT_FOR_CONTENT


def judge(cert: SignerCertificate, allowed: frozenset[str]) -> SignerProblem | None:
    """The C2PA content-signer profile: an end entity, with an EKU among ``allowed``."""
    if cert.ca or cert.key_cert_sign:
        return SignerProblem("ca", "signed with a certificate authority's certificate, not a signing certificate")
    if not cert.ekus:
        return SignerProblem("no-purpose", "signed with a certificate that names no purpose "
                                           "(no extended key usage), so it is not meant for signing content")
    if not allowed.intersection(cert.ekus):
        purposes = ", ".join(_PURPOSE_WORDS.get(e, EKU_NAMES.get(e, e)) for e in cert.ekus[:4])
        if set(cert.ekus) <= NOT_FOR_CONTENT:
            return SignerProblem("purpose", f"{PURPOSE_NOT_ALLOWED}: signed with a certificate not meant for signing "
                                            f"content ({purposes} only)")
        return SignerProblem("purpose", f"{PURPOSE_NOT_ALLOWED}: the signing certificate's purpose ({purposes}) is "
                                        "not one your settings allow for signing content")
    return None


# --------------------------------------------------------------------------- certificates

def _extension(cert: x509.Certificate, kind: type) -> Any:
    """One extension's value, or None when the certificate does not carry it."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def describe_certificate(chain: list[bytes]) -> SignerCertificate:
    """Read the leaf of an x5chain (DER, leaf first) with `cryptography`; hostile DER is a SignerReadError."""
    if not chain:
        raise SignerReadError("the signature names no certificate")
    try:
        with warnings.catch_warnings():   # e.g. a negative serial: read it as the library does, quietly
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            leaf = x509.load_der_x509_certificate(chain[0])
            usage = _extension(leaf, x509.ExtendedKeyUsage)
            basic = _extension(leaf, x509.BasicConstraints)
            key_usage = _extension(leaf, x509.KeyUsage)
            serial = str(leaf.serial_number)
    except Exception as exc:  # noqa: BLE001 - cryptography raises several types on malformed DER or extensions
        raise SignerReadError(f"the signing certificate could not be read ({_short(exc)})") from None
    ekus = [oid.dotted_string for oid in usage] if usage is not None else []
    return SignerCertificate(
        sha256=hashlib.sha256(chain[0]).hexdigest(), serial=serial, ekus=ekus,
        eku_names=[EKU_NAMES.get(e, e) for e in ekus],
        ca=bool(basic is not None and basic.ca), key_cert_sign=bool(key_usage is not None and key_usage.key_cert_sign),
        chain=len(chain),
    )


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:119] + "\u2026"


# --------------------------------------------------------------------------- JUMBF (ISO 19566-5)

class _Jumbf:
    """Box walking over one store with a budget of box headers for the whole walk (never quadratic)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.budget = _MAX_BOXES

    def boxes(self, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        """(type, payload start, payload end) of each box in data[start:end]; sizes must fit."""
        data, at = self.data, start
        while at < end:
            self.budget -= 1
            if self.budget < 0:
                raise SignerReadError("too many boxes")
            if end - at < 8:
                raise SignerReadError("truncated box header")
            size, kind = struct.unpack(">I4s", data[at:at + 8])
            header = 8
            if size == 1:
                if end - at < 16:
                    raise SignerReadError("truncated box header")
                size = struct.unpack(">Q", data[at + 8:at + 16])[0]
                header = 16
            elif size == 0:
                size = end - at
            if size < header or size > end - at:
                raise SignerReadError("box size out of bounds")
            yield kind, at + header, at + size
            at += size

    def label(self, start: int, end: int) -> tuple[str, int]:
        """A 'jumb' superbox's label and where its content boxes start (after the description box)."""
        first = next(self.boxes(start, end), None)
        if first is None or first[0] != b"jumd":
            raise SignerReadError("superbox without a description box")
        _, d0, d1 = first
        if d1 - d0 < 17:
            raise SignerReadError("short description box")
        label = ""
        if self.data[d0 + 16] & 0x02:   # toggles: a label follows the 16-byte type
            stop = self.data.find(b"\x00", d0 + 17, min(d1, d0 + 17 + _MAX_LABEL + 1))
            if stop < 0:
                raise SignerReadError("unterminated box label")
            label = self.data[d0 + 17:stop].decode("utf-8", "replace")
        return label, d1

    def children(self, start: int, end: int) -> tuple[str, Iterator[tuple[bytes, int, int]]]:
        label, content = self.label(start, end)
        return label, self.boxes(content, end)


def _manifests(store: bytes) -> Iterator[tuple[str, Iterator[tuple[str, Iterator[tuple[bytes, int, int]]]]]]:
    """(label, its labelled superboxes) of each manifest in a C2PA store, at most _MAX_MANIFESTS of them."""
    if len(store) > MAX_STORE_BYTES:
        raise SignerReadError("manifest store too large to check")
    walk = _Jumbf(store)
    top = next(walk.boxes(0, len(store)), None)
    if top is None or top[0] != b"jumb":
        raise SignerReadError("not a JUMBF manifest store")
    label, manifests = walk.children(top[1], top[2])
    if label != "c2pa":
        raise SignerReadError("not a C2PA manifest store")
    seen = 0
    for kind, start, end in manifests:
        if kind != b"jumb":
            continue
        if seen >= _MAX_MANIFESTS:
            return
        seen += 1
        manifest_label, parts = walk.children(start, end)
        yield manifest_label, (walk.children(p0, p1) for part_kind, p0, p1 in parts if part_kind == b"jumb")


def _one_cbor(store: bytes, content: Iterator[tuple[bytes, int, int]]) -> bytes | None:
    """The bytes of a superbox's single CBOR box, or None when it has none, several, or an oversized one."""
    cbor = [(c0, c1) for k, c0, c1 in content if k == b"cbor"]
    return store[cbor[0][0]:cbor[0][1]] if len(cbor) == 1 and cbor[0][1] - cbor[0][0] <= _MAX_COSE_BYTES else None


def signature_boxes(store: bytes) -> dict[str, bytes]:
    """Per manifest label: the content of its 'c2pa.signature' box (the COSE_Sign1 bytes), b"" when
    that box is there but malformed or oversized."""
    found: dict[str, bytes] = {}
    for manifest_label, parts in _manifests(store):
        for part_label, content in parts:
            if part_label == "c2pa.signature":
                found.setdefault(manifest_label, _one_cbor(store, content) or b"")
                break
    return found


# --------------------------------------------------------------------------- CBOR (RFC 8949)

def cbor_loads(data: bytes) -> Any:
    """One CBOR data item that must fill ``data`` exactly. cbor2 bounds nesting and never trusts a
    declared length past the input; every way it can fail becomes our one error."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, RecursionError, MemoryError, OverflowError, ValueError, TypeError) as exc:
        raise SignerReadError(f"malformed CBOR ({_short(exc)})") from None
    if stream.tell() != len(data):
        raise SignerReadError("trailing bytes after CBOR item")
    return value


# --------------------------------------------------------------------------- COSE_Sign1 (RFC 9052)

def _chain_value(value: Any) -> list[bytes]:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, (list, tuple)):
        certs = [v for v in value if isinstance(v, bytes)]   # as c2pa-rs: non-bytes entries are skipped
        if certs:
            return certs[:_MAX_CHAIN]
    raise SignerReadError("x5chain holds no certificate")


def x5chain(cose: bytes) -> list[bytes]:
    """The certificate chain the library verifies with, found where c2pa-rs looks for it.

    c2pa-rs reads the protected header (label 33 or "x5chain"), else the legacy unprotected
    "x5chain"; a chain in both is an error there. Anything ambiguous is an error here too.
    """
    value = cbor_loads(cose)
    if isinstance(value, cbor2.CBORTag):
        if value.tag != 18:
            raise SignerReadError("not a COSE_Sign1 structure")
        value = value.value
    if not (isinstance(value, (list, tuple)) and len(value) == 4 and isinstance(value[0], bytes)
            and isinstance(value[1], Mapping)):
        raise SignerReadError("not a COSE_Sign1 structure")
    protected = cbor_loads(value[0]) if value[0] else {}
    if not isinstance(protected, Mapping):
        raise SignerReadError("COSE protected header is not a map")
    unprotected = value[1]
    found = [protected[k] for k in (_X5CHAIN, "x5chain") if k in protected]
    legacy = unprotected.get("x5chain")
    if len(found) > 1 or (found and legacy is not None):
        raise SignerReadError("the signature names more than one certificate chain")
    if found:
        return _chain_value(found[0])
    if legacy is not None:
        return _chain_value(legacy)
    raise SignerReadError("the signature names no certificate chain")


def signer_certificates(store: bytes) -> dict[str, SignerCertificate | SignerReadError]:
    """Per manifest label in ``store``: its signing certificate, or why it could not be read."""
    out: dict[str, SignerCertificate | SignerReadError] = {}
    for label, cose in signature_boxes(store).items():
        try:
            if not cose:
                raise SignerReadError("the signature box is empty, malformed or too large")
            out[label] = describe_certificate(x5chain(cose))
        except SignerReadError as exc:
            out[label] = exc
        except (RecursionError, MemoryError, OverflowError, ValueError, TypeError) as exc:
            out[label] = SignerReadError(f"the signature could not be read ({type(exc).__name__})")
    return out


# --------------------------------------------------------------------------- the data-hash binding

def assertion_cbor(store: bytes, manifest_label: str, prefix: str) -> bytes | None:
    """The CBOR content of the first assertion whose label starts with ``prefix`` in one manifest of
    ``store`` (e.g. ``c2pa.hash.data``), or None when the store holds no such assertion."""
    walk = _Jumbf(store)
    for label, parts in _manifests(store):
        if label != manifest_label:
            continue
        for part_label, content in parts:
            if part_label != "c2pa.assertions":
                continue
            for a_kind, a0, a1 in content:
                if a_kind != b"jumb":
                    continue
                a_label, a_content = walk.children(a0, a1)
                if a_label.startswith(prefix):
                    return _one_cbor(store, a_content)
        return None
    return None


def data_hash_exclusions(store: bytes, manifest_label: str) -> list[tuple[int, int]] | None:
    """The (start, length) byte ranges the manifest's c2pa.hash.data assertion leaves out of its hash;
    None when it has none or it cannot be read (hostile input: never an exception but SignerReadError)."""
    raw = assertion_cbor(store, manifest_label, "c2pa.hash.data")
    if raw is None:
        return None
    value = cbor_loads(raw)
    exclusions = value.get("exclusions") if isinstance(value, Mapping) else None
    if not isinstance(exclusions, (list, tuple)):
        return None
    out: list[tuple[int, int]] = []
    for item in list(exclusions)[:64]:
        if isinstance(item, Mapping) and isinstance(item.get("start"), int) and isinstance(item.get("length"), int):
            out.append((int(item["start"]), int(item["length"])))
    return out
