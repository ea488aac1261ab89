"""A real RFC 3161 Time-Stamp Authority on 127.0.0.1, for signing time-stamped test files.

c2pa's signer POSTs a DER TimeStampReq (application/timestamp-query) to its TSA url while it
signs; this server answers with a TimeStampResp whose token is a CMS SignedData over a TSTInfo,
signed by a TSA certificate from a test CA (tests/c2pa_kit.py, timeStamping EKU). Nothing is
faked: the reader checks the token like one from a public TSA, and `openssl ts -verify` accepts
it. ``clock`` lets a test stamp a time outside the signer's validity; it cannot stand in for a
wait, since c2pa's Builder refuses to sign with a certificate that is not valid at signing time.
Only signing talks to this server; the reader under test must never reach it (``hits`` counts
every request of any kind).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asn1crypto import algos, cms, core, tsp, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.c2pa_kit import Leaf, SigningCA

POLICY = "1.3.6.1.4.1.4146.1.2"        # any policy OID will do; the reader does not judge it
_MAX_REQUEST = 64 * 1024


class _Refusal(core.Sequence):
    """A TimeStampResp without a token (asn1crypto declares the token mandatory; RFC 3161 does not)."""

    _fields = [("status", tsp.PKIStatusInfo)]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class TimeStampAuthority:
    """An HTTP TSA: ``url`` to sign against, ``hits`` requests answered, ``close()`` when done."""

    def __init__(self, ca: SigningCA, leaf: Leaf | None = None,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.ca = ca
        self.leaf = leaf or ca.tsa_leaf("Credence Test TSA", "Credence Test")
        self.clock = clock
        self.hits = 0
        self.stamped: list[dt.datetime] = []     # gen_time of every token issued
        self._serials = itertools.count(1)
        self._lock = threading.Lock()
        self._certs = [_asn1_cert(self.leaf.cert), _asn1_cert(ca.inter)]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits += 1
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                with outer._lock:
                    outer.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, _MAX_REQUEST))
                kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                status, answer = 415, b""
                if kind == "application/timestamp-query":
                    status, answer = 200, outer.respond(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def root_pem(self) -> bytes:
        return self.ca.root_pem

    def respond(self, body: bytes) -> bytes:
        """A DER TimeStampResp for one DER TimeStampReq: granted with a token, or rejected."""
        try:
            request = tsp.TimeStampReq.load(body)
            _ = request.native   # parse it all now: a malformed request is refused, never half-answered
        except Exception:  # noqa: BLE001 - any garbage gets the protocol's own refusal
            return _Refusal({"status": {"status": "rejection", "fail_info": {"bad_data_format"}}}).dump()
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": self.token(request)}).dump()

    def token(self, request: tsp.TimeStampReq) -> cms.ContentInfo:
        """The time-stamp token: SignedData over a TSTInfo, signed attributes as RFC 3161/5816 ask."""
        gen_time = self.clock().astimezone(dt.timezone.utc).replace(microsecond=0)
        with self._lock:
            serial = next(self._serials)
            self.stamped.append(gen_time)
        info: dict[str, object] = {
            "version": "v1",
            "policy": request["req_policy"].native or POLICY,
            "message_imprint": request["message_imprint"],
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
        }
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"].native
        tst_info = tsp.TSTInfo(info)
        content = tst_info.dump()
        leaf_der = self.leaf.cert.public_bytes(serialization.Encoding.DER)
        attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": gen_time})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{
                "certs": [{"hash_algorithm": {"algorithm": "sha256"},
                           "cert_hash": hashlib.sha256(leaf_der).digest()}]}]}),
        ])
        signature = self.leaf.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
        leaf = self._certs[0]
        signer = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber({
                "issuer": leaf.issuer, "serial_number": leaf.serial_number})}),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        })
        signed: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": cms.EncapsulatedContentInfo({
                "content_type": "tst_info", "content": core.ParsableOctetString(content)}),
            "signer_infos": [signer],
        }
        if request["cert_req"].native:  # the requester wants the TSA's chain in the token
            signed["certificates"] = [cms.CertificateChoices({"certificate": c}) for c in self._certs]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed)})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "TimeStampAuthority":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
