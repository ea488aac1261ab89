"""A test CA made with `cryptography`, and files signed with c2pa-python's Builder.

Real certificates, real signatures, real validation: root -> intermediate -> leaf with the
emailProtection EKU (the one c2pa accepts without extra settings), ES256 and Ed25519 signers,
and time-stamp authority leaves (critical timeStamping EKU, as RFC 3161 requires) for tests/tsa.py.
``resign`` signs a signed file's claim again in place with any certificate, even one c2pa's Builder
refuses (no EKU, a CA certificate), for the signer-profile tests.
Shared by the provenance tests and bench/c2pa_read.py.
"""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _cert(subject: x509.Name, issuer: x509.Name, public: Any, issuer_key: Any, *, ca: bool,
          not_before: dt.datetime, not_after: dt.datetime, eku: list[x509.ObjectIdentifier] | None = None,
          path_length: int | None = None, eku_critical: bool = False) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_usage(ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if eku is None and not ca:
        eku = [EMAIL_PROTECTION]
    if eku:  # an empty list: no EKU extension at all
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


@dataclass
class Leaf:
    key: Any
    cert: x509.Certificate
    chain_pem: str   # leaf first, then the intermediate
    ed25519: bool


@dataclass
class SigningCA:
    root_key: Any
    root: x509.Certificate
    inter_key: Any
    inter: x509.Certificate

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    @property
    def inter_pem(self) -> bytes:
        return _pem(self.inter)

    def leaf(self, cn: str, org: str, *, ed25519_key: bool = False, not_before: dt.datetime | None = None,
             not_after: dt.datetime | None = None, eku: list[x509.ObjectIdentifier] | None = None,
             ca: bool = False) -> Leaf:
        """A signing certificate under the intermediate. ``eku=None``: emailProtection; ``eku=[]``: no EKU
        extension at all; ``ca=True``: a CA certificate (keyCertSign) misused as the signer."""
        now = dt.datetime.now(dt.timezone.utc)
        key = ed25519.Ed25519PrivateKey.generate() if ed25519_key else ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, org), self.inter.subject, key.public_key(), self.inter_key, ca=ca,
                     not_before=not_before or now - dt.timedelta(days=30),
                     not_after=not_after or now + dt.timedelta(days=365),
                     eku=[EMAIL_PROTECTION] if eku is None else eku)
        return Leaf(key, cert, (_pem(cert) + _pem(self.inter)).decode(), ed25519_key)

    def tsa_leaf(self, cn: str, org: str) -> Leaf:
        """A time-stamping unit's certificate: RFC 3161 wants timeStamping as its only, critical EKU."""
        now = dt.datetime.now(dt.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(cn, org), self.inter.subject, key.public_key(), self.inter_key, ca=False,
                     not_before=now - dt.timedelta(days=300), not_after=now + dt.timedelta(days=3000),
                     eku=[TIME_STAMPING], eku_critical=True)
        return Leaf(key, cert, (_pem(cert) + _pem(self.inter)).decode(), False)


def make_ca(name: str = "Credence Test") -> SigningCA:
    """A root and an intermediate named after ``name`` (a second CA plays a time-stamp authority)."""
    now = dt.datetime.now(dt.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert(_name(f"{name} Root", "Credence Test"), _name(f"{name} Root", "Credence Test"),
                 root_key.public_key(), root_key, ca=True, not_before=now - dt.timedelta(days=400),
                 not_after=now + dt.timedelta(days=3650))
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert(_name(f"{name} Intermediate", "Credence Test"), root.subject, inter_key.public_key(),
                  root_key, ca=True, not_before=now - dt.timedelta(days=400),
                  not_after=now + dt.timedelta(days=3650), path_length=0)
    return SigningCA(root_key, root, inter_key, inter)


def signer(leaf: Leaf, tsa_url: str | None = None) -> Any:
    """A callback signer; with ``tsa_url`` c2pa asks that RFC 3161 authority to time-stamp the signature."""
    import c2pa

    if leaf.ed25519:
        return c2pa.Signer.from_callback(leaf.key.sign, c2pa.C2paSigningAlg.ED25519, leaf.chain_pem, tsa_url)
    return c2pa.Signer.from_callback(lambda data: leaf.key.sign(data, ec.ECDSA(hashes.SHA256())),
                                     c2pa.C2paSigningAlg.ES256, leaf.chain_pem, tsa_url)


def capture_manifest(title: str = "capture.jpg", generator: str = "Credence Test Camera") -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": CAPTURE,
             "softwareAgent": {"name": generator, "version": "1.0"}}]}}],
    }


def sign(data: bytes, leaf: Leaf, manifest: dict[str, Any] | None = None, *, mime: str = "image/jpeg",
         intent: tuple[Any, ...] | None = None, ingredients: tuple[tuple[dict[str, Any], str, bytes], ...] = (),
         remote_url: str | None = None, embed: bool = True, thumbnails: bool = True,
         tsa_url: str | None = None) -> tuple[bytes, bytes]:
    """Sign ``data`` with c2pa's Builder; returns (signed file, manifest store bytes).

    ``tsa_url`` makes the signature time-stamped (the library POSTs to it while signing)."""
    import c2pa

    ctx = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": thumbnails, "long_edge": 256}},
                                  # Signing checks are not under test (an EKU test signs what the
                                  # default verifier would refuse); validation happens on reading.
                                  "verify": {"remote_manifest_fetch": False, "verify_after_sign": False}})
    builder = c2pa.Builder(manifest or capture_manifest(), context=ctx)
    if intent:
        builder.set_intent(*intent)
    for ingredient_json, fmt, source in ingredients:
        builder.add_ingredient(ingredient_json, fmt, io.BytesIO(source))
    if remote_url:
        builder.set_remote_url(remote_url)
    if not embed:
        builder.set_no_embed()
    out = io.BytesIO()
    store = builder.sign(signer(leaf, tsa_url), mime, io.BytesIO(data), out)
    return out.getvalue(), store


# --------------------------------------------------------------------------- re-signing with any certificate

def claim_and_signature(store: bytes) -> tuple[bytes, bytes]:
    """(claim CBOR, signature COSE) of the active (last) manifest in a store c2pa's Builder wrote."""
    from worker.stages.c2pa_signer import _Jumbf

    walk = _Jumbf(store)
    top = next(walk.boxes(0, len(store)))
    _, manifests = walk.children(top[1], top[2])
    _, m0, m1 = [m for m in manifests if m[0] == b"jumb"][-1]
    _, parts = walk.children(m0, m1)
    found: dict[str, bytes] = {}
    for _, p0, p1 in parts:
        label, content = walk.children(p0, p1)
        cbor = [store[c0:c1] for kind, c0, c1 in content if kind == b"cbor"]
        if cbor:
            found[label] = cbor[0]
    claim = next(v for k, v in found.items() if k.startswith("c2pa.claim"))
    return claim, found["c2pa.signature"]


def resign(signed: bytes, store: bytes, leaf: Leaf) -> bytes:
    """``signed`` with its active claim signed again by ``leaf``, in place and at the same size.

    c2pa's Builder refuses to sign with a certificate outside the C2PA profile (no EKU, a CA
    certificate), so tests that need the reader's view of one write the COSE_Sign1 themselves: the
    same claim bytes, a protected header naming ``leaf``'s chain, the padding resized so the
    store keeps its length and the content's hash binding stays intact."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    claim, old = claim_and_signature(store)
    assert signed.count(old) == 1, "the signature box must sit in one piece in the file"
    chain = x509.load_pem_x509_certificates(leaf.chain_pem.encode())
    der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    protected = cbor2.dumps({1: -8 if leaf.ed25519 else -7, 33: der})
    to_sign = cbor2.dumps(["Signature1", protected, b"", claim])
    if leaf.ed25519:
        signature = leaf.key.sign(to_sign)
    else:
        r, s = decode_dss_signature(leaf.key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def cose(pad: int) -> bytes:
        return cbor2.dumps(cbor2.CBORTag(18, [protected, {"pad": b"\0" * pad}, None, signature]))

    need = len(old) - len(cose(0))
    new = next((c for c in (cose(p) for p in range(need, max(need - 10, -1), -1)) if len(c) == len(old)), b"")
    assert len(new) == len(old), "the new signature does not fit the old one's box"
    return signed.replace(old, new)
