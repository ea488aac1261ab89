"""Re-validate a manifest store another instance exported, against this instance's trust lists, with no asset.

An imported repository record (server/provenance/repository.py ``import_lines``) carries the exporter's reading:
its state, signer and AI declarations, and soft bindings (PDQ, ISCC) it computed from an asset this instance never
saw. The store itself is signed, so what it says can be checked here: c2pa-python reads the bare store
(``application/c2pa``) and validates the claim signatures, the certificate chains against this instance's trust
settings (worker/trust.py), time-stamps, and the hash of every assertion the claims list. It cannot check the
hard binding (``c2pa.hash.data`` and its kin): that hash is over the asset's bytes, which an import does not have,
so the library always reports it as a mismatch and only that failure is set aside here.

Which content the manifest belongs to is then a separate question. The exporter's PDQ and ISCC are claims; a
binding counts only when the signed manifest proves it: a ``c2pa.soft-binding`` assertion that declares it, or
the PDQ or ISCC recomputed here from the manifest's own thumbnail (``c2pa.thumbnail.claim``, hash-bound by the
claim) within the threshold of the exported one. The reading and its words are the pipeline's own
(c2pa_read, c2pa_explain, ai_metadata); nothing here decides a level.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from server.provenance.repository import ISCC_ALG, ISCC_THRESHOLD, PDQ_BINDING, STATES, iscc_digest
from server.provenance.resolution import image_code
from server.verdicts import Evidence
from server.vocabulary import Stage
from worker.stages import ai_metadata, c2pa_explain, c2pa_read, hashes, soft_binding
from worker.stages.budget import Limits
from worker.stages.decode import DecodeError, decode

# The hard bindings (C2PA 2.x): hashes over the asset's bytes or boxes, which a bare store cannot be checked against.
HARD_BINDING_FAILURES = frozenset({"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch",
                                   "assertion.boxesHash.mismatch", "assertion.collectionHash.mismatch"})


@dataclass
class Revalidation:
    """What this instance proved of an imported store: the pipeline's evidence for it (read as an own reading
    would be), and the soft bindings the signed manifest ties to it. ``reason`` says why it does not count."""

    evidence: list[Evidence] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)  # binding names proven: "pdq", "io.iscc.v0", declared algs
    state: str | None = None  # trusted / valid when it counts
    reason: str | None = None


def _without_hard_binding(result: c2pa_read.C2paResult) -> c2pa_read.C2paResult:
    """The reading with only the unavoidable hard-binding failures set aside, and the state they spoiled restored:
    Trusted where the library trusted the signer, Valid where its one other complaint is an untrusted signer."""
    failures = [f for f in result.failures if f.code not in HARD_BINDING_FAILURES]
    own = [c for c in result.active_failures if c not in HARD_BINDING_FAILURES]
    state = result.state
    if state == "Invalid" and len(failures) < len(result.failures):
        rest = {f.code for f in failures} | set(own)
        if not rest and "signingCredential.trusted" in result.active_successes:
            state = "Trusted"
        elif rest == {"signingCredential.untrusted"}:
            state = "Valid"
    return dataclasses.replace(result, failures=failures, active_failures=own, state=state)


def _declared_iscc(value: str) -> str | None:
    """A declared ``io.iscc.v0`` value (the code as text, or base64 of its bytes or text) as an ISCC code."""
    found = image_code(value.encode("utf-8", "replace"))
    if found is None:
        try:
            found = image_code(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            return None
    return found


def _thumbnail_image(result: c2pa_read.C2paResult, max_pixels: int, limits: Limits) -> Image.Image | None:
    """The active manifest's own thumbnail (its claim hashes it), decoded within the usual budgets."""
    active = result.active
    found = result.thumbnails.get(active.thumbnail) if active is not None and active.thumbnail else None
    if found is None:
        return None
    try:
        return decode(found[1], max_pixels, limits).image
    except DecodeError:
        return None


def _thumbnail_bindings(image: Image.Image, record: dict[str, Any], pdq_threshold: int) -> list[str]:
    """The exported fingerprints the signed thumbnail reproduces here: its PDQ within the PDQ threshold, its ISCC
    Image-Code within the repository's ISCC threshold (a thumbnail is the picture made small; both are computed on
    a smaller picture still, so a near value is expected, an exact one is not)."""
    proven = []
    if record.get("pdq"):
        value, quality = hashes.pdq(image)
        if quality >= hashes.PDQ_MIN_QUALITY and hashes.hamming_hex(value, record["pdq"]) <= pdq_threshold:
            proven.append(PDQ_BINDING)
    exported = iscc_digest(record.get("iscc"))
    here = iscc_digest(soft_binding.iscc_image_code(image)) if exported else None
    if here is not None and bin(int(here, 16) ^ int(exported, 16)).count("1") <= ISCC_THRESHOLD:
        proven.append(ISCC_ALG)
    return proven


def revalidate(store: bytes, record: dict[str, Any], context: Any, *, trust: dict[str, Any],
               pdq_threshold: int, max_pixels: int, limits: Limits,
               put_thumbnail: Callable[[bytes], str]) -> Revalidation:
    """Validate ``store`` here and check which of the ``record``'s soft bindings (``label``, ``pdq``, ``iscc``)
    its signed manifest proves. ``put_thumbnail(bytes) -> sha256`` keeps the signed thumbnails (the media store).
    Counts only when the store validates (trusted or valid) as the record's active manifest and at least one
    binding is proven."""
    result = c2pa_read.read_c2pa(store, c2pa_read.MANIFEST_STORE, context, limits=limits)
    if result.status != "present" or result.active is None:
        return Revalidation(reason=f"the manifest store could not be read here ({result.error or result.status})")
    if result.active.label != record.get("label"):
        return Revalidation(reason="the store's active manifest is not the one the record names")
    reading = _without_hard_binding(result)
    thumbs = {ident: {"sha256": put_thumbnail(data), "format": fmt} for ident, (fmt, data) in reading.thumbnails.items()}
    evidence = c2pa_explain.evidence(reading, thumbs=thumbs, trust=trust)
    evidence += ai_metadata.evidence(c2pa_read.ai_declarations(reading), Stage.C2PA)
    verdict = next((e for e in evidence if e.kind in STATES), None)
    if verdict is None:
        said = next((e.summary for e in evidence if e.stage == Stage.C2PA), "it did not validate")
        return Revalidation(evidence=evidence, reason=f"the manifest store does not validate here: {said}")
    thumbnail = _thumbnail_image(reading, max_pixels, limits) if record.get("pdq") or record.get("iscc") else None
    proven = _thumbnail_bindings(thumbnail, record, pdq_threshold) if thumbnail is not None else []
    exported_iscc = iscc_digest(record.get("iscc"))
    for declared in soft_binding.declared_bindings(store, result.active.label):
        if declared["alg"] != ISCC_ALG:
            proven.append(declared["alg"])  # found again by exact lookup of the signed value
        elif exported_iscc and iscc_digest(_declared_iscc(declared["value"])) == exported_iscc:
            proven.append(ISCC_ALG)
    proven = list(dict.fromkeys(proven))
    state = STATES[verdict.kind]
    if not proven:
        return Revalidation(evidence=evidence, state=state,
                            reason="no soft binding of the record is proven by the signed manifest (its thumbnail's "
                                   "PDQ and ISCC are not within the thresholds of the exported ones, and it declares "
                                   "none)")
    return Revalidation(evidence=evidence, bindings=proven, state=state)
