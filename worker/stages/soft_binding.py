"""Soft bindings: what finds a manifest again once a platform has stripped it from the file.

Pure functions over bytes, pixels and evidence; the repository (server/provenance/repository.py) keeps and
searches what they compute. A file with a valid manifest yields its bindings (the ISO 24138 ISCC image code,
the store as JUMBF, the ``c2pa.soft-binding`` values its manifest declares); a file without one is looked up
by the same bindings, and a match becomes ``credentials-recovered`` evidence.
"""
from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image

from server.provenance.repository import ISCC_BINDING, PDQ_BINDING, STATES, VPDQ_BINDING, FrameRecovery, Recovery
from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from worker.stages import c2pa_signer
from worker.fetch import isobmff
from worker.stages.budget import jpeg_segments

STAGE = Stage.RECOVERY
MAX_STORE_BYTES = 4 * 1024 * 1024  # larger stores are recorded without their bytes
_MAX_DECLARED = 16
_MAX_VALUE = 512
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BINDING_WORDS = {PDQ_BINDING: "PDQ fingerprint", ISCC_BINDING: "ISCC image code", VPDQ_BINDING: "vPDQ frames"}
# ISO-BMFF (MP4, MOV): C2PA's top-level ``uuid`` box (C2PA 2.x, "Embedding manifests into BMFF-based assets").
_C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_MAX_TOP_BOXES = 64  # the manifest box comes near the start, after ftyp; a real file has a handful of boxes
_BMFF_TYPES = ("video/mp4", "video/quicktime")


def iscc_image_code(image: Image.Image) -> str:
    """ISCC Image-Code (64 bits) as iscc-sdk normalises: greyscale on white, 32x32 bicubic."""
    import iscc_core

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(flat, rgba)
    small = image.convert("L").resize((32, 32), Image.Resampling.BICUBIC)
    return str(iscc_core.gen_image_code_v0(list(small.tobytes()), bits=64)["iscc"])


def _jpeg_jumbf(data: bytes, limit: int) -> bytes | None:
    """The first JUMBF box carried in APP11 segments ("JP"), packets joined in order (ISO 19566-5 B.2)."""
    parts: list[bytes] = []
    instance = None
    total = 0
    for marker, start, end in jpeg_segments(data):
        if marker == 0xDA or end > len(data):
            break
        if marker != 0xEB or data[start + 4:start + 6] != b"JP" or end - start < 20:
            continue
        en = data[start + 6:start + 8]
        if instance is None:
            instance, payload = en, data[start + 12:end]  # LBox/TBox kept from the first packet
        elif en == instance:
            payload = data[start + 20:end]  # later packets repeat LBox/TBox
        else:
            continue
        total += len(payload)
        if total > limit:
            return None
        parts.append(payload)
    return b"".join(parts) or None


def _png_jumbf(data: bytes, limit: int) -> bytes | None:
    at = len(_PNG_SIGNATURE)
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"caBX":
            return data[at + 8:at + 8 + length] if length <= limit else None
        if kind == b"IEND":
            return None
        at += 12 + length
    return None


def _bmff_jumbf(data: bytes, limit: int) -> bytes | None:
    """The store in C2PA's top-level ``uuid`` box: after the UUID, a FullBox header (4 bytes), the purpose
    ``manifest`` (NUL-terminated) and a 64-bit offset to a Merkle box (0 when none), the JUMBF runs to the
    box's end. Other purposes (``merkle``, ``original``) hold no store."""
    pos = 0
    for _ in range(_MAX_TOP_BOXES):
        try:
            box = isobmff.read_header(data, pos, 0, len(data))
        except isobmff.BoxError:
            return None
        if box is None or box.end > len(data):
            return None
        body = data[box.start + box.header:box.end]
        if box.kind == b"uuid" and body[:16] == _C2PA_UUID:
            purpose, nul, rest = body[20:].partition(b"\0")
            if nul and purpose == b"manifest" and len(rest) > 8:
                store = rest[8:]
                return store if len(store) <= limit else None
        pos = box.end
    return None


def manifest_store(data: bytes, mime: str | None, limit: int = MAX_STORE_BYTES) -> bytes | None:
    """The manifest store as embedded (JPEG APP11, PNG caBX, MP4/MOV ``uuid`` box), bounded; None for other
    containers."""
    if mime == "image/jpeg":
        return _jpeg_jumbf(data, limit)
    if mime == "image/png" and data.startswith(_PNG_SIGNATURE):
        return _png_jumbf(data, limit)
    if mime in _BMFF_TYPES:
        return _bmff_jumbf(data, limit)
    return None


def declared_bindings(store: bytes | None, manifest_label: str | None) -> list[dict[str, str]]:
    """The active manifest's ``c2pa.soft-binding`` (alg + each block's value), kept even for algs we cannot
    compute: another tool that can (a watermark reader) finds the manifest again by them."""
    if not store or not manifest_label:
        return []
    try:
        raw = c2pa_signer.assertion_cbor(store, manifest_label, "c2pa.soft-binding")
        value = c2pa_signer.cbor_loads(raw) if raw is not None else None
    except (c2pa_signer.SignerReadError, RecursionError, MemoryError, OverflowError, ValueError, TypeError):
        return []
    if not isinstance(value, Mapping) or not isinstance(value.get("alg"), str):
        return []
    alg = value["alg"][:100]
    out: list[dict[str, str]] = []
    for block in list(value.get("blocks") or [])[:_MAX_DECLARED]:
        found = block.get("value") if isinstance(block, Mapping) else None
        if isinstance(found, bytes):
            found = base64.b64encode(found).decode()
        if isinstance(found, str) and found:
            out.append({"alg": alg, "value": found[:_MAX_VALUE]})
    return out


def bindings_evidence(iscc: str | None, store_ref: dict[str, Any] | None, declared: list[dict[str, str]]) -> Evidence:
    """What the repository records for a validly signed file, carried in the verdict to where it is recorded."""
    return Evidence(
        stage=STAGE, kind=Kind.SOFT_BINDINGS,
        summary="Soft bindings computed, so these Content Credentials can be found again for stripped copies.",
        details={"iscc": iscc, "store": store_ref, "declared": declared},
    )


def recovery_evidence(found: Recovery) -> Evidence:
    """A stripped copy's credentials, recovered: AI declared by the original makes the copy ai-declared; a trusted
    original gives ``recovered``; an untrusted one only says so. Never verified: these bytes were not signed."""
    who = found.signer_words
    when = f" on {found.signing_time}" if found.signing_time else ""
    name = BINDING_WORDS.get(found.binding, found.binding)
    how = (f"its {name} matches at distance {found.distance}" if found.distance else f"its {name} matches exactly")
    near = ("A near match shows the pictures look alike, not that this copy is unedited: crops and edits "
            "may still match.")
    details = {**found.details(), "caveat": near}
    # Where another instance's reading came from: a file an admin imported, or a peer's signed exchange feed.
    source, claimant = ("a peer's exchange feed", "peer") if found.from_peer else ("a file", "file")
    if not found.counts:  # another instance's reading (an import) not proven here: reported, never for a level
        done = found.revalidation or {}
        if done.get("counts"):
            checked = (f"Their signature validated here, but the signed manifest does not bind the {name} that "
                       f"matched: that is the {claimant}'s claim.")
        elif done.get("reason"):
            checked = f"They could not be re-validated here: {done['reason']}."
        else:
            checked = "This instance has not checked those credentials itself."
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, details=details,
                        summary=f"A matching original is in Content Credentials imported here from {source} "
                                f"({found.origin}): signed by {who}{when} according to that {claimant} ({how}). "
                                f"{checked} "
                                "So they decide nothing. " + near)
    if found.origin is not None:
        # Re-validated here (worker/stages/manifest_check.py): it counts as a reading of this instance would.
        near = (f"These credentials came from {source} ({found.origin}) and were validated here against "
                f"your trust lists; the signed manifest binds the {name} that matched (its signed thumbnail or a "
                "declared soft binding), but the original file itself was never seen here. " + near)
    if found.ai_declarations:
        says = found.ai_declarations[0].get("says") or "generative AI"
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, supports=Level.AI_DECLARED, details=details,
                        summary=f"Declared AI-made ({says}), recovered from a matching original: Content "
                                f"Credentials signed by {who}{when} were found for a matching original ({how}). "
                                + near)
    if found.state == "trusted":
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, supports=Level.RECOVERED, details=details,
                        summary=f"Credentials found for a matching original: signed by {who}{when}, a signer on "
                                f"your trust list ({how}). This copy itself carries no credentials. " + near)
    return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, details=details,
                    summary=f"Credentials found for a matching original, signed by {who}{when}, not on your "
                            f"trust list ({how}). This copy itself carries no credentials. " + near)


def valid_manifest(evidence: list[Evidence]) -> str | None:
    """The active manifest's label when the file's credentials validated (trusted or not), else None."""
    item = next((e for e in evidence if e.kind in STATES), None)
    return str(item.details.get("manifest") or "") if item is not None else None


def record_bindings(data: bytes, mime: str | None, image: Image.Image, label: str,
                    put: Callable[[bytes], str]) -> Evidence:
    """Everything the repository keeps of a validly signed file that the verdict does not hold already; the
    store's bytes go to ``put`` (the media store) and the verdict names them by sha256."""
    store = manifest_store(data, mime)
    ref = {"sha256": put(store), "bytes": len(store)} if store else None
    return bindings_evidence(iscc_image_code(image), ref, declared_bindings(store, label))


def record_video_bindings(data: bytes, mime: str | None, label: str, put: Callable[[bytes], str]) -> Evidence:
    """A validly signed video's part of the record: the store and its declared bindings. Its frames' PDQs are in
    the verdict already (``video-hashes``); ISCC has no image code for a video."""
    store = manifest_store(data, mime)
    ref = {"sha256": put(store), "bytes": len(store)} if store else None
    return bindings_evidence(None, ref, declared_bindings(store, label))


def frame_recovery_evidence(found: FrameRecovery, match_share: float) -> Evidence:
    """A video without credentials whose frames look like a stored original's. When the copy's matching share
    reaches ``match_share`` (CREDENCE_VPDQ_MATCH_SHARE, the banks' rule for "this video is that one") it reads as
    an image's recovery: AI declared gives ai-declared, a trusted original ``recovered``. Fewer frames (a signed
    photo shown for a moment, a clip inside other footage) only inform: the original's credentials speak for
    the frames that look like it, never for the rest of the video or who made it. Never verified."""
    who = found.signer_words
    when = f" on {found.signing_time}" if found.signing_time else ""
    at = f"{found.t:g} s"
    like = (f"frames of a video signed by {who}{when} (the copy's frame at {at} is nearest the original's at "
            f"{found.original_t:g} s, distance {found.distance})" if found.original_is_video else
            f"a picture signed by {who}{when} (nearest at {at}, PDQ distance {found.distance})")
    counted = f"{found.frames_matched} of this video's {found.frames} usable frames"
    near = ("Frames that look alike show the pictures match, not that this video is unedited or who made it: "
            "cuts, edits, overlays and a different soundtrack may still match.")
    details = {**found.details(), "caveat": near}
    mostly = found.share >= match_share
    source = "a peer's exchange feed" if found.from_peer else "a file"  # where an import's reading came from
    if found.counts and found.origin is not None:  # an import re-validated here, which proves the PDQ that matched
        near = (f"These credentials came from {source} ({found.origin}) and were validated here; the original file "
                "itself was never seen here. " + near)
    if not found.counts:
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, details=details,
                        summary=f"{counted.capitalize()} look like {like}, according to Content Credentials imported "
                                f"here from {source} ({found.origin}) that this instance has not proven for them. "
                                "So they decide nothing. " + near)
    if not mostly:
        what = "declared AI-made" if found.ai_declarations else (
            "a signer on your trust list" if found.state == "trusted" else "not on your trust list")
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, details=details,
                        summary=f"Part of this video looks like signed content: {counted} look like {like}; "
                                f"those credentials ({what}) speak for that content, not for the rest of this video, "
                                "so they decide nothing. " + near)
    if found.ai_declarations:
        says = found.ai_declarations[0].get("says") or "generative AI"
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, supports=Level.AI_DECLARED, details=details,
                        summary=f"Declared AI-made ({says}), recovered from a matching original: {counted} look "
                                f"like {like}. " + near)
    if found.state == "trusted":
        return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, supports=Level.RECOVERED, details=details,
                        summary=f"Credentials found for a matching original: {counted} look like {like}, a signer "
                                "on your trust list. This video itself carries no credentials. " + near)
    return Evidence(stage=STAGE, kind=Kind.CREDENTIALS_RECOVERED, details=details,
                    summary=f"Credentials found for a matching original, not on your trust list: {counted} look "
                            f"like {like}. This video itself carries no credentials. " + near)
