"""Export and import of banks: the native versioned JSON Lines, and the two formats of the PDQ
hash-sharing ecosystem (ThreatExchange's local-file lines ``pdq <hex>`` and its dataset CSV).

Videos use the ecosystem's signal types: ``video_md5`` (the file's MD5, 32 hex) and ``vpdq`` (a
JSON list of ``"<pdq hex>,<quality>,<seconds>"``, one per keyframe). In the ecosystem formats each
signal is its own line, so a video entry with both exports as two lines and imports as two entries.
The native format carries ``media_kind``, ``md5`` and ``frames`` ([{t, pdq, quality}]) on each entry;
files written before those fields existed still import (as images).

Imports validate every line first and write nothing if any line is bad (errors are reported per
line); they are idempotent: an entry already present (same hashes in the bank) is left as it is.
Nothing is dropped without a word: an empty file is refused, and a line read but not imported as it
stands (an ecosystem row marking a false positive, an unknown category, a file's origin) comes back
as a per-line warning beside the counts, so a file that "worked" with nothing created says why.

Who submitted or reviewed an entry is a person or a key of this instance; an export names the
instance instead (feed.public_actor), as the feed does.

An import never sets an entry's origin (peer instance + peer entry id): only the feed reader does,
for the peer whose pinned key signed the page. A file's ``origin`` is anyone's claim (there is no
signed export to check it against), so it is dropped and noted in the audit log; otherwise a pending
import could take the place of a trusted peer's next entry, or a rejection of junk could publish a
signed dispute of that peer's real entry.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import json_edge, models
from server.banks import service as banks
from server.banks.hashes_hex import HEX_LENGTHS
from server.exchange import feed

FORMAT = "credence-bank"
VERSION = 1
FORMATS = ("jsonl", "te-lines", "te-csv")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "te-lines": "text/plain", "te-csv": "text/csv"}
SUFFIXES = {"jsonl": "jsonl", "te-lines": "txt", "te-csv": "csv"}
SIGNAL_TYPES = ("pdq", "video_md5", "vpdq")
HASH_FIELDS = (*HEX_LENGTHS, "md5")  # what identifies an entry's content, with frame_pdqs
TE_CATEGORY = {"confirmed": "POSITIVE_CLASS", "pending": "INVESTIGATION_SEED", "rejected": "NEGATIVE_CLASS",
               "retracted": "NEGATIVE_CLASS"}
TE_STATUS = {"": "confirmed", "POSITIVE_CLASS": "confirmed", "INVESTIGATION_SEED": "pending"}
TE_NOT_FAKE = "NEGATIVE_CLASS"  # the ecosystem's "this is a false positive": never a known fake here
# Native fields stored as text: a string or null, of at most this many characters where a column limits it.
TEXT_FIELDS = {"notes": None, "review_note": None, "source_url": None, "reviewed_by": 200}
EMPTY = "the file is empty"
MAX_LINE = 400_000  # a vPDQ signal of models.MAX_FRAMES frames fits
PDQ_MIN_QUALITY = 50


class ImportRejected(ValueError):
    """Nothing was imported; ``errors`` says which lines and why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{EMPTY}; nothing imported" if errors == [EMPTY]
                         else f"{len(errors)} bad line(s); nothing imported")
        self.errors = errors


@dataclass
class Parsed:
    """A file that can be imported: its records, and what was read but will not be imported as it stands."""
    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    created: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)  # per line: skipped, or imported other than it says
    confirmed: list[str] = field(default_factory=list)  # ids of the entries created confirmed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def entry_record(entry: models.BankEntry, bank: models.Bank, instance: str) -> dict[str, Any]:
    """One entry of the native format; people are named as the instance (the file leaves it)."""
    return {
        "bank": bank.name, "bank_kind": bank.kind, "id": entry.id, "status": entry.status,
        "label": entry.label, "notes": entry.notes, "tags": entry.tags, "source_links": entry.source_links,
        "source_url": entry.source_url, "sha256": entry.sha256, "pdq": entry.pdq, "pdq_quality": entry.pdq_quality,
        "phash": entry.phash, "media_kind": entry.media_kind or "image", "md5": entry.md5,
        "frames": entry.frames_list(), "submitted_by": feed.public_actor(entry.submitted_by, instance),
        "submitted_at": _iso(entry.submitted_at), "reviewed_by": feed.public_actor(entry.reviewed_by, instance),
        "reviewed_at": _iso(entry.reviewed_at), "review_note": entry.review_note,
        "origin": {"instance": entry.origin_instance, "entry_id": entry.origin_entry_id,
                   "signature": entry.origin_signature} if entry.origin_instance else None,
        "disputed": entry.disputed,
    }


def _entries(session: Session, bank_names: list[str] | None) -> list[tuple[models.BankEntry, models.Bank]]:
    query = select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
    if bank_names:
        query = query.where(models.Bank.name.in_(bank_names))
    return list(session.execute(query.order_by(models.Bank.name, models.BankEntry.submitted_at, models.BankEntry.id)).all())


def _signals(entry: models.BankEntry) -> list[tuple[str, str]]:
    """(signal_type, signal_str) pairs of the ecosystem for one entry: usable PDQ, video MD5, vPDQ."""
    out = []
    if entry.pdq and (entry.pdq_quality or 0) >= PDQ_MIN_QUALITY:
        out.append(("pdq", entry.pdq))
    if entry.md5:
        out.append(("video_md5", entry.md5))
    if entry.frame_pdqs and any(f.quality >= PDQ_MIN_QUALITY for f in models.decode_frames(entry.frame_pdqs)):
        out.append(("vpdq", entry.frame_pdqs))  # stored in the ecosystem's form already
    return out


def export(session: Session, fmt: str, bank_names: list[str] | None, instance: str) -> Iterator[str]:
    """Lines of the chosen format (each ends with a newline)."""
    rows = _entries(session, bank_names)
    if fmt == "jsonl":
        header = {"format": FORMAT, "version": VERSION, "instance": instance,
                  "exported_at": datetime.now(timezone.utc).isoformat(), "banks": sorted({b.name for _, b in rows} | set(bank_names or []))}
        yield json.dumps(header, ensure_ascii=False) + "\n"
        for entry, bank in rows:
            yield json.dumps(entry_record(entry, bank, instance), ensure_ascii=False) + "\n"
    elif fmt == "te-lines":  # what ThreatExchange's local-file exchange reads: confirmed, usable signals only
        for entry, bank in rows:
            if entry.status == "confirmed":
                for signal_type, value in _signals(entry):
                    yield f"{signal_type} {value}\n"
    elif fmt == "te-csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["signal_type", "signal_str", "collab", "category", "tags"])
        for entry, bank in rows:
            for signal_type, value in _signals(entry):
                writer.writerow([signal_type, value, bank.name, TE_CATEGORY[entry.status], " ".join(entry.tags or [])])
        yield buf.getvalue()
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def _hex(field_name: str, value: Any, errors: list[str], where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{%d}" % banks.HEX[field_name], value):
        errors.append(f"{where}: {field_name} must be {banks.HEX[field_name]} lowercase hex characters")
        return None
    return value


def _frames(value: Any, errors: list[str], where: str) -> str | None:
    """A native record's ``frames`` ([{t, pdq, quality}]) as the stored vPDQ string, or None."""
    if value in (None, []):
        return None
    if not isinstance(value, list) or not all(isinstance(f, dict) for f in value):
        errors.append(f"{where}: frames must be a list of {{t, pdq, quality}} objects")
        return None
    try:
        return models.encode_frames(models.decode_frames(json.dumps(
            [f"{f.get('pdq')},{f.get('quality')},{f.get('t')}" for f in value])))
    except ValueError as exc:
        errors.append(f"{where}: frames: {exc}")
        return None


def _vpdq(value: str, errors: list[str], where: str) -> str | None:
    """An ecosystem ``vpdq`` signal string, validated and re-encoded the way it is stored."""
    try:
        frames = models.decode_frames(value)
    except ValueError as exc:
        errors.append(f"{where}: vpdq: {exc}")
        return None
    if not frames:
        errors.append(f"{where}: vpdq: no frames")
        return None
    return models.encode_frames(frames)


def _parse_jsonl(lines: list[str], errors: list[str]) -> list[dict[str, Any]]:
    try:
        header = json_edge.loads(lines[0], "line 1")
    except json_edge.UnsafeText as exc:
        errors.append(str(exc))
        return []
    except json.JSONDecodeError as exc:
        errors.append(f"line 1: not JSON ({exc.msg})")
        return []
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        errors.append(f"line 1: not a {FORMAT} header")
        return []
    if header.get("version") != VERSION:
        errors.append(f"line 1: format version {header.get('version')!r} is not supported (this reads {VERSION})")
        return []
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            rec = json_edge.loads(line, f"line {number}")
        except json_edge.UnsafeText as exc:
            errors.append(str(exc))
            continue
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not JSON ({exc.msg})")
            continue
        if not isinstance(rec, dict):
            errors.append(f"line {number}: not a JSON object")
            continue
        where = f"line {number}"
        label = rec.get("label")
        if not isinstance(label, str) or not label or len(label) > 300:
            errors.append(f"{where}: label must be a string of 1-300 characters")
        if rec.get("status") not in banks.STATUSES:
            errors.append(f"{where}: status must be one of {', '.join(banks.STATUSES)}")
        hashes: dict[str, Any] = {k: _hex(k, rec.get(k), errors, where) for k in HASH_FIELDS}
        hashes["frame_pdqs"] = _frames(rec.get("frames"), errors, where)
        kind = rec.get("media_kind") or ("video" if hashes["md5"] or hashes["frame_pdqs"] else "image")
        if kind not in banks.MEDIA_KINDS:
            errors.append(f"{where}: media_kind must be one of {', '.join(banks.MEDIA_KINDS)}")
        hashes["media_kind"] = kind
        if (kind == "video" and (hashes["pdq"] or hashes["phash"])) or (
                kind == "image" and (hashes["md5"] or hashes["frame_pdqs"])):
            errors.append(f"{where}: an image has sha256/pdq/phash, a video sha256/md5/frames")
        if not any(v for k, v in hashes.items() if k != "media_kind"):
            errors.append(f"{where}: needs at least one of sha256, pdq, phash, md5, frames")
        for key in ("tags", "source_links"):
            if not isinstance(rec.get(key, []), list) or not all(isinstance(v, str) for v in rec.get(key, [])):
                errors.append(f"{where}: {key} must be a list of strings")
        if isinstance(rec.get("source_links"), list) and not all(banks.is_http_link(v) for v in rec["source_links"]):
            errors.append(f"{where}: source_links must be http(s) URLs")
        quality = rec.get("pdq_quality")
        if quality is not None and (not isinstance(quality, int) or not 0 <= quality <= 100):
            errors.append(f"{where}: pdq_quality must be an integer 0-100")
        for key, most in TEXT_FIELDS.items():
            value = rec.get(key)
            if value is not None and (not isinstance(value, str) or (most is not None and len(value) > most)):
                errors.append(f"{where}: {key} must be a string" + (f" of at most {most} characters" if most else ""))
        records.append({**rec, **hashes, "_line": number})
    return records


def _parse_te(lines: list[str], fmt: str, errors: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    records = []
    if fmt == "te-csv":
        reader = csv.DictReader(lines)
        if reader.fieldnames is None or not {"signal_type", "signal_str"} <= set(reader.fieldnames):
            errors.append("line 1: expected the header signal_type,signal_str,collab,category,tags")
            return []
        rows = [(n, r.get("signal_type"), r.get("signal_str"), r.get("category") or "", r.get("tags") or "")
                for n, r in enumerate(reader, start=2)]
    else:
        rows = []
        for n, line in enumerate(lines, start=1):
            signal_type, _, signal = line.strip().partition(" ")
            if signal_type or signal:
                rows.append((n, signal_type, signal.strip(), "", ""))
    for number, signal_type, value, category, tags in rows:
        where = f"line {number}"
        if signal_type not in SIGNAL_TYPES:
            errors.append(f"{where}: signal type {signal_type!r} is not supported ({', '.join(SIGNAL_TYPES)})")
            continue
        if not (value or "").strip():
            errors.append(f"{where}: {signal_type}: no value")
            continue
        if signal_type == "vpdq":
            frame_pdqs = _vpdq(value or "", errors, where)
            rec: dict[str, Any] = {"frame_pdqs": frame_pdqs, "media_kind": "video",
                                   "label": f"imported vPDQ ({len(models.decode_frames(frame_pdqs))} frames)"
                                   if frame_pdqs else ""}
        else:
            field_name = "md5" if signal_type == "video_md5" else "pdq"
            hex_value = _hex(field_name, (value or "").strip().lower(), errors, where)
            rec = {field_name: hex_value, "media_kind": "video" if field_name == "md5" else "image",
                   "label": f"imported {'video MD5' if field_name == 'md5' else 'PDQ'} {(hex_value or '')[:12]}"}
        if not (rec.get("frame_pdqs") or rec.get("md5") or rec.get("pdq")):
            continue  # its error is already listed
        if category == TE_NOT_FAKE:
            warnings.append(f"{where}: skipped: category {TE_NOT_FAKE} marks a false positive, not a known fake")
            continue
        if category not in TE_STATUS:
            warnings.append(f"{where}: unknown category {category[:80]!r}: imported pending, for review")
        records.append({**rec, "tags": tags.split(), "_line": number, "status": TE_STATUS.get(category, "pending")})
    return records


def parse(text: str, fmt: str) -> Parsed:
    """Validate the whole input; raise ImportRejected with every problem, or return the records with the
    warnings of the lines that will not be imported as they stand. A file with nothing in it is refused
    (a client that sent the wrong body must not read "created 0" as success); a well-formed file without
    entries (an empty bank's export, a CSV header alone) is imported with a warning."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ImportRejected([EMPTY])
    errors: list[str] = []
    warnings: list[str] = []
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:
            errors.append(f"line {number}: longer than {MAX_LINE} characters")
    records = _parse_jsonl(lines, errors) if fmt == "jsonl" else _parse_te(lines, fmt, errors, warnings)
    if errors:
        raise ImportRejected(errors)
    if not records and not warnings:
        warnings.append("the file has no entries: nothing to import")
    return Parsed(records, warnings)


def _exists(session: Session, bank: models.Bank, rec: dict[str, Any]) -> bool:
    query = select(models.BankEntry.id).where(models.BankEntry.bank_id == bank.id)
    for key in (*HASH_FIELDS, "frame_pdqs"):
        column = getattr(models.BankEntry, key)
        query = query.where(column == rec[key]) if rec.get(key) else query.where(column.is_(None))
    return session.scalars(query.limit(1)).first() is not None


def import_records(session: Session, bank: models.Bank, parsed: Parsed, *, actor: str,
                   keep_status: bool) -> ImportResult:
    """Write validated records into ``bank``. ``keep_status`` (admins) keeps the file's statuses;
    otherwise everything arrives ``pending`` for review."""
    records = parsed.records
    result = ImportResult(warnings=list(parsed.warnings))
    changed = False
    dropped = 0
    for rec in records:
        if _exists(session, bank, rec):
            result.unchanged += 1
            continue
        status = rec["status"] if keep_status else "pending"
        if rec.get("origin"):  # never trusted from a file: see the module's docstring
            dropped += 1
            result.warnings.append(f"line {rec['_line']}: origin dropped: only an entry pulled from a peer's "
                                   "signed feed keeps one")
        entry = banks.submit_entry(
            session, bank, actor=actor, label=rec["label"], notes=rec.get("notes") or "",
            source_links=rec.get("source_links") or [], tags=rec.get("tags") or [], sha256=rec.get("sha256"),
            pdq=rec.get("pdq"), pdq_quality=rec.get("pdq_quality") if rec.get("pdq_quality") is not None else (
                PDQ_MIN_QUALITY if rec.get("pdq") else None),
            phash=rec.get("phash"), source_url=rec.get("source_url"), media_kind=rec.get("media_kind"),
            md5=rec.get("md5"), frames=models.decode_frames(rec.get("frame_pdqs")) or None)
        entry.status = status
        if status != "pending":
            entry.reviewed_by = rec.get("reviewed_by") or actor
            entry.review_note = rec.get("review_note") or "imported"
            entry.reviewed_at = models.utcnow()
        if status == "confirmed":
            changed = True
            result.confirmed.append(entry.id)
        result.created += 1
    if changed:
        banks.bump_generation(session, bank)
    banks.audit(session, actor, "bank.import", bank.id, created=result.created, unchanged=result.unchanged,
                origins_dropped=dropped)
    return result
