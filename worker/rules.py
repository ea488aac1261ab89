"""The ruleset: which stage runs when, and what evidence it leaves. Order matters."""
from __future__ import annotations

from server.verdicts import Evidence, Level
from worker.pipeline import Item, Rule
from worker.stages.decode import DecodeError, decode
from worker.stages.sniff import IMAGE_TYPES, describe_unknown, sniff


class MediaTypeRule:
    """Type from the bytes; anything we cannot analyse ends here as ``unavailable``."""

    name, version = "media-type", "1"

    def applies(self, item: Item) -> bool:
        return True

    def act(self, item: Item) -> None:
        item.mime = sniff(item.data[:64])
        if item.mime is None:
            item.evidence.append(Evidence(
                stage=self.name, kind="unsupported-type", supports=Level.UNAVAILABLE,
                summary=f"Could not check: the file is {describe_unknown(item.data[:512])}.",
            ))
        elif item.mime not in IMAGE_TYPES:
            item.evidence.append(Evidence(
                stage=self.name, kind="unsupported-type", supports=Level.UNAVAILABLE,
                summary=f"Could not check: {item.mime} is not supported yet.", details={"mime": item.mime},
            ))


class DecodeRule:
    """Decode once with the pixel cap; later rules read ``item.decoded``."""

    name, version = "decode", "1"

    def applies(self, item: Item) -> bool:
        return item.mime in IMAGE_TYPES

    def act(self, item: Item) -> None:
        try:
            item.decoded = decode(item.data, item.settings.max_pixels)
        except DecodeError as exc:
            item.evidence.append(Evidence(
                stage=self.name, kind=exc.code, supports=Level.UNAVAILABLE,
                summary=f"Could not check: {exc.reason}.",
            ))
            return
        d = item.decoded
        item.evidence.append(Evidence(
            stage=self.name, kind="decoded",
            summary=f"{d.format} image, {d.width}x{d.height} pixels.",
            details={"format": d.format, "width": d.width, "height": d.height, "frames": d.frames,
                     "mime": item.mime, "bytes": len(item.data)},
        ))


RULES: tuple[Rule, ...] = (MediaTypeRule(), DecodeRule())
