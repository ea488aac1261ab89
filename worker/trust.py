"""Trust anchors and the C2PA reading context built from them, once per worker process.

c2pa-python bundles no anchors and fetches remote manifests by default (see ../shared/trust),
so the context is always built here, never left to the library's defaults: every network
switch off, anchors from files only. Contexts do not survive fork, hence the pid in the key;
the files' mtimes are in it too, so `credence trust update` takes effect without a restart.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.stages.c2pa_signer import content_signing_ekus

TRUST_LIST_FILE = "C2PA-TRUST-LIST.pem"
TSA_LIST_FILE = "C2PA-TSA-TRUST-LIST.pem"
RECORD_FILE = "trust-lists.json"
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_MAX_PEM_BYTES = 4 * 1024 * 1024


def trust_dir(settings: Any) -> Path:
    """Where `credence trust update` keeps the lists it downloaded."""
    return Path(settings.data_dir).expanduser().resolve() / "trust"  # no mkdir: reading must not write


@dataclass(frozen=True)
class TrustFiles:
    """The anchor files in force and how they stand on disk (the cache key)."""

    anchors: tuple[Path, ...]       # official signer and TSA lists
    user_anchors: tuple[Path, ...]  # the operator's own
    ekus: tuple[str, ...]
    stamp: tuple[tuple[str, int, int], ...]

    @property
    def loaded(self) -> bool:
        return bool(self.anchors or self.user_anchors)

    @property
    def content_ekus(self) -> frozenset[str]:
        """The EKUs that let a certificate sign content: ``ekus`` less the TSA and OCSP purposes, which
        the library needs for stamp and responder certificates but which never make a content signer."""
        return content_signing_ekus(self.ekus)

    def describe(self) -> dict[str, Any]:
        """What a verdict records about the trust in force (c2pa_explain judges signers by it)."""
        return {"anchors": [p.name for p in self.anchors], "user_anchors": [p.name for p in self.user_anchors],
                "content_signer_ekus": sorted(self.content_ekus)}


def _stat(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def trust_files(settings: Any) -> TrustFiles:
    """Resolve the configured anchor files; a configured file that is missing is an error, a
    default one that was never downloaded is simply absent (everyone is then untrusted)."""
    folder = trust_dir(settings)
    anchors: list[Path] = []
    for configured, default in ((settings.trust_anchors_path, TRUST_LIST_FILE),
                                (settings.trust_tsa_anchors_path, TSA_LIST_FILE)):
        if configured:
            path = Path(configured).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"trust anchor file {path} does not exist")
            anchors.append(path)
        elif (folder / default).is_file():
            anchors.append(folder / default)
    user: list[Path] = []
    if settings.trust_user_anchors_path:
        path = Path(settings.trust_user_anchors_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"user anchor file {path} does not exist")
        user.append(path)
    ekus = tuple(e.strip() for e in str(settings.trust_ekus).split(",") if e.strip())
    stamp = tuple(s for s in (_stat(p) for p in (*anchors, *user)) if s is not None)
    return TrustFiles(tuple(anchors), tuple(user), ekus, stamp)


def _read_pems(paths: tuple[Path, ...]) -> str:
    texts = []
    for path in paths:
        text = path.read_bytes()[:_MAX_PEM_BYTES].decode("ascii", "replace")
        if _PEM_BEGIN in text:
            texts.append(text.strip() + "\n")
    return "".join(texts)


def reader_settings(files: TrustFiles) -> dict[str, Any]:
    """The c2pa settings document: trust from our files, no network of any kind.

    c2pa-rs 0.91 has a single anchor pool for signers and time-stamp authorities, so the TSA list
    goes in with the signer list; a TSA's own certificate then also passes the library as a content
    signer (timeStamping EKU leaves bypass trust_config). worker.stages.c2pa_signer closes that gap:
    it reads the signing certificate itself and c2pa_explain refuses one without a content EKU."""
    trust: dict[str, Any] = {}
    anchors, user = _read_pems(files.anchors), _read_pems(files.user_anchors)
    if anchors:
        trust["trust_anchors"] = anchors
    if user:
        trust["user_anchors"] = user
    if files.ekus:
        trust["trust_config"] = "\n".join(files.ekus) + "\n"
    return {
        "verify": {
            "verify_after_reading": True,
            "verify_trust": True,
            "verify_timestamp_trust": True,
            "remote_manifest_fetch": False,  # remote manifests go through worker.fetch.documents or nowhere
            "ocsp_fetch": False,
        },
        "core": {"allowed_network_hosts": []},  # second lock: the library may reach no host at all
        "trust": trust,
    }


_contexts: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def reading_context(settings: Any) -> tuple[Any, TrustFiles]:
    """The process's c2pa Context for these trust files, built on first use."""
    import c2pa

    files = trust_files(settings)
    key = (os.getpid(), files.anchors, files.user_anchors, files.ekus, files.stamp)
    ctx = _contexts.get(key)
    if ctx is None:
        with _lock:
            ctx = _contexts.get(key)
            if ctx is None:
                pid = os.getpid()
                for stale in [k for k in _contexts if k[0] != pid or k[1:3] == key[1:3]]:
                    del _contexts[stale]  # a parent's or an outdated context: never reused
                ctx = _contexts[key] = c2pa.Context.from_dict(reader_settings(files))
    return ctx, files
