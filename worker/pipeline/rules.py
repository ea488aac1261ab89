"""The ruleset: which stage runs when, and what evidence it leaves. Order matters."""
from __future__ import annotations

from server.media_store import MediaStore
from server.media_types import IMAGE_TYPES, PROVENANCE_ONLY_TYPES, VIDEO_TYPES, describe_unknown, sniff
from server.provenance import repository
from server.verdicts import Evidence, Level
from server.vocabulary import Kind, Stage
from worker.detection import gate as detection
from worker.pipeline.item import Item, Rule
from worker.pipeline.video_rules import VideoBankMatchRule, VideoHashRule, VideoKeyframesRule, VideoRecoveryRule
from worker.stages import ai_metadata, bank_match, c2pa_explain, c2pa_read, hashes, soft_binding, watermark
from worker.stages.budget import Limits
from worker.stages.decode import DecodeError, decode

# Containers c2pa cannot hold a manifest in: said plainly rather than sent to the reader.
NO_C2PA_FORMATS = {"video/webm": "WebM"}


class MediaTypeRule:
    """Type from the bytes; anything we cannot analyse ends here as ``unavailable``."""

    name, version = Stage.MEDIA_TYPE, "1"

    def applies(self, item: Item) -> bool:
        return True

    def act(self, item: Item) -> None:
        item.mime = sniff(item.data[:512])
        if item.mime is None:
            item.evidence.append(Evidence(
                stage=self.name, kind=Kind.UNSUPPORTED_TYPE, supports=Level.UNAVAILABLE,
                summary=f"Could not check: the file is {describe_unknown(item.data[:512])}.",
            ))
        elif item.mime in PROVENANCE_ONLY_TYPES:
            item.evidence.append(Evidence(
                stage=self.name, kind=Kind.PROVENANCE_ONLY,
                summary=f"Only Content Credentials are checked for {item.mime}: no hash matching or detection.",
                details={"mime": item.mime},
            ))
        elif item.mime not in IMAGE_TYPES and item.mime not in VIDEO_TYPES:
            item.evidence.append(Evidence(
                stage=self.name, kind=Kind.UNSUPPORTED_TYPE, supports=Level.UNAVAILABLE,
                summary=f"Could not check: {item.mime} is not supported yet.", details={"mime": item.mime},
            ))


class DecodeRule:
    """Decode once with the pixel cap; later rules read ``item.decoded``."""

    name, version = Stage.DECODE, "1"

    def applies(self, item: Item) -> bool:
        return item.mime in IMAGE_TYPES

    def act(self, item: Item) -> None:
        try:
            item.decoded = decode(item.data, item.settings.max_pixels, Limits.from_settings(item.settings))
        except DecodeError as exc:
            item.evidence.append(Evidence(
                stage=self.name, kind=exc.code, supports=Level.UNAVAILABLE,
                summary=f"Could not check: {exc.reason}.",
            ))
            return
        d = item.decoded
        item.facts.mime, item.facts.width, item.facts.height = item.mime, d.width, d.height
        item.evidence.append(Evidence(
            stage=self.name, kind=Kind.DECODED,
            summary=f"{d.format} image, {d.width}x{d.height} pixels.",
            details={"format": d.format, "width": d.width, "height": d.height, "frames": d.frames,
                     "mime": item.mime, "bytes": len(item.data)},
        ))


class ProvenanceRule:
    """C2PA read and validated against our trust lists; an AI declaration anywhere in the store counts."""

    name, version = Stage.C2PA, "1"

    def applies(self, item: Item) -> bool:
        return item.mime is not None or c2pa_read.might_carry_credentials(item.data)

    def act(self, item: Item) -> None:
        from worker.trust import reading_context

        if item.mime in NO_C2PA_FORMATS:
            item.evidence.append(Evidence(
                stage=self.name, kind=Kind.C2PA_ABSENT,
                summary=f"No Content Credentials: {NO_C2PA_FORMATS[item.mime]} is not a format that carries "
                        "Content Credentials (C2PA).",
                details={"mime": item.mime, "reason": "format-cannot-carry-c2pa"},
            ))
            return
        settings = item.settings
        context, files = reading_context(settings)
        keep = settings.keep_thumbnails
        result = c2pa_read.read_c2pa(item.data, item.mime, context, want_thumbnails=keep,
                                     limits=Limits.from_settings(settings))
        refused = None
        if result.status == "remote" and result.remote_url and settings.remote_manifest_fetch:
            # Only ever through the guarded fetcher; the library's own fetching stays off.
            from worker.fetch.common import FetchLimits, FetchRefused
            from worker.fetch.documents import C2PA_MANIFEST, fetch_document

            try:
                store = fetch_document(result.remote_url, FetchLimits.from_settings(settings), C2PA_MANIFEST)
                url = result.remote_url
                result = c2pa_read.read_c2pa(item.data, item.mime, context, manifest_data=store.data,
                                             want_thumbnails=keep)
                result.remote_url = url
            except FetchRefused as exc:
                refused = exc.reason
        thumbs = {}
        if keep and result.thumbnails:
            from server.media_store import MediaStore

            media = MediaStore(settings.media_path)
            thumbs = {ident: {"sha256": media.put(data), "format": fmt}
                      for ident, (fmt, data) in result.thumbnails.items()}
        trust = {"loaded": files.loaded, **files.describe()}
        item.evidence.extend(c2pa_explain.evidence(result, thumbs=thumbs, trust=trust, remote_refused=refused))
        item.evidence.extend(ai_metadata.evidence(c2pa_read.ai_declarations(result), self.name))


class AiMetadataRule:
    """IPTC source type in XMP, diffusion front-ends' PNG text, generator names in Software fields."""

    name, version = Stage.AI_METADATA, "1"

    def applies(self, item: Item) -> bool:
        return item.mime in IMAGE_TYPES

    def act(self, item: Item) -> None:
        item.evidence.extend(ai_metadata.evidence(ai_metadata.find_declarations(item.data, item.mime), self.name))


class WatermarkRule:
    """Stable Diffusion's invisible watermark: weak evidence, reported with its bit agreement."""

    name, version = Stage.WATERMARK, "1"

    def applies(self, item: Item) -> bool:
        return item.decoded is not None and item.settings.watermark_max_pixels > 0

    def act(self, item: Item) -> None:
        hit = watermark.find_sd_watermark(item.decoded.image, item.settings.watermark_max_pixels)
        if hit is None:
            return
        item.evidence.append(Evidence(
            stage=self.name, kind=Kind.AI_WATERMARK, supports=Level.AI_DECLARED, score=round(0.6 * hit.agreement, 3),
            summary=f"A {hit.model} invisible watermark is present ({hit.agreement:.0%} of its {hit.bits} bits). "
                    "Weak evidence: any tool can write it, and re-encoding erases it.",
            details={"model": hit.model, "agreement": hit.agreement, "bits": hit.bits,
                     "channel_order": hit.channel_order, "method": "dwtDct"},
        ))


class HashRule:
    """PDQ (and its 8 orientations) and pHash from the decoded pixels, kept for matching and re-matching."""

    name, version = Stage.HASHES, "1"

    def applies(self, item: Item) -> bool:
        return item.decoded is not None

    def act(self, item: Item) -> None:
        item.hashes, item.dihedral = hashes.compute_with_orientations(item.decoded.image)
        h = item.hashes
        found = {"sha256": item.sha256, "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash,
                 "dihedral": item.dihedral}
        item.facts.hashes = found
        item.evidence.append(Evidence(
            stage=self.name, kind=Kind.HASHES,
            summary=f"Perceptual hashes computed (PDQ quality {h.pdq_quality}"
                    f"{', too flat to match on PDQ alone' if not h.pdq_usable else ''}).",
            details=found,
        ))


class BankMatchRule:
    """Exact and near-duplicate matches against the confirmed entries of every bank (videos: VideoBankMatchRule)."""

    name, version = Stage.BANK_MATCH, "1"

    def applies(self, item: Item) -> bool:
        return item.matcher is not None and item.mime not in VIDEO_TYPES

    def act(self, item: Item) -> None:
        hits = item.matcher.match(item.sha256, item.hashes, item.dihedral)
        item.versions["banks"] = "generation-%d" % item.matcher.generation[0]
        item.evidence.extend(bank_match.evidence(hits))


class RecoveryRule:
    """The manifest repository (server/provenance/repository.py): a validly signed image leaves its soft bindings
    for the verdict's recording; an image without credentials is looked up there by its own."""

    name, version = Stage.RECOVERY, "1"

    def applies(self, item: Item) -> bool:
        return item.matcher is not None and item.decoded is not None and item.hashes is not None

    def act(self, item: Item) -> None:
        label = soft_binding.valid_manifest(item.evidence)
        if label is not None:
            put = MediaStore(item.settings.media_path).put
            item.evidence.append(soft_binding.record_bindings(item.data, item.mime, item.decoded.image, label, put))
        elif item.hashes.pdq_usable and any(e.kind == Kind.C2PA_ABSENT for e in item.evidence):
            image = item.decoded.image
            with item.matcher.db.session() as session:
                found = repository.find(session, pdq=item.dihedral or [item.hashes.pdq],
                                        iscc=lambda: soft_binding.iscc_image_code(image),
                                        pdq_threshold=item.settings.pdq_threshold, exclude_sha256=item.sha256)
            if found is not None:
                item.evidence.append(soft_binding.recovery_evidence(found))


class DetectionGateRule:
    """Last: decisive evidence skips detection (and says so); otherwise detection is pending for the gpu queue."""

    name, version = Stage.DETECT_GATE, "1"

    def applies(self, item: Item) -> bool:
        return True

    def act(self, item: Item) -> None:
        detection.gate(item)


# Images go decode -> ... -> hashes -> bank-match; videos go keyframes -> ... -> video-hashes ->
# video-bank-match. Each applies() keeps the two paths apart.
RULES: tuple[Rule, ...] = (MediaTypeRule(), DecodeRule(), VideoKeyframesRule(), ProvenanceRule(), AiMetadataRule(),
                           WatermarkRule(), HashRule(), VideoHashRule(), BankMatchRule(), VideoBankMatchRule(),
                           RecoveryRule(), VideoRecoveryRule(), DetectionGateRule())
