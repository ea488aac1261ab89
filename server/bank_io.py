"""Export and import of banks: the native versioned JSON Lines, and the two formats of the PDQ
hash-sharing ecosystem (ThreatExchange's local-file lines ``pdq <hex>`` and its dataset CSV).

Imports validate every line first and write nothing if any line is bad (errors are reported per
line); they are idempotent: an entry already present (same origin, or same hashes in the bank) is
left as it is.
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

from server import banks, models
from server.hashes_hex import HEX_LENGTHS

FORMAT = "credence-bank"
VERSION = 1
FORMATS = ("jsonl", "te-lines", "te-csv")
TE_CATEGORY = {"confirmed": "POSITIVE_CLASS", "pending": "INVESTIGATION_SEED", "rejected": "NEGATIVE_CLASS",
               "retracted": "NEGATIVE_CLASS"}
MAX_LINE = 100_000
PDQ_MIN_QUALITY = 50


class ImportRejected(ValueError):
    """Nothing was imported; ``errors`` says which lines and why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} bad line(s); nothing imported")
        self.errors = errors


@dataclass
class ImportResult:
    created: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def entry_record(entry: models.BankEntry, bank: models.Bank) -> dict[str, Any]:
    return {
        "bank": bank.name, "bank_kind": bank.kind, "id": entry.id, "status": entry.status,
        "label": entry.label, "notes": entry.notes, "tags": entry.tags, "source_links": entry.source_links,
        "source_url": entry.source_url, "sha256": entry.sha256, "pdq": entry.pdq, "pdq_quality": entry.pdq_quality,
        "phash": entry.phash, "submitted_by": entry.submitted_by, "submitted_at": _iso(entry.submitted_at),
        "reviewed_by": entry.reviewed_by, "reviewed_at": _iso(entry.reviewed_at), "review_note": entry.review_note,
        "origin": {"instance": entry.origin_instance, "entry_id": entry.origin_entry_id,
                   "signature": entry.origin_signature} if entry.origin_instance else None,
        "disputed": entry.disputed,
    }


def _entries(session: Session, bank_names: list[str] | None) -> list[tuple[models.BankEntry, models.Bank]]:
    query = select(models.BankEntry, models.Bank).join(models.Bank, models.Bank.id == models.BankEntry.bank_id)
    if bank_names:
        query = query.where(models.Bank.name.in_(bank_names))
    return list(session.execute(query.order_by(models.Bank.name, models.BankEntry.submitted_at, models.BankEntry.id)).all())


def export(session: Session, fmt: str, bank_names: list[str] | None, instance: str) -> Iterator[str]:
    """Lines of the chosen format (each ends with a newline)."""
    rows = _entries(session, bank_names)
    if fmt == "jsonl":
        header = {"format": FORMAT, "version": VERSION, "instance": instance,
                  "exported_at": datetime.now(timezone.utc).isoformat(), "banks": sorted({b.name for _, b in rows} | set(bank_names or []))}
        yield json.dumps(header, ensure_ascii=False) + "\n"
        for entry, bank in rows:
            yield json.dumps(entry_record(entry, bank), ensure_ascii=False) + "\n"
    elif fmt == "te-lines":  # what ThreatExchange's local-file exchange reads: confirmed, usable PDQ only
        for entry, bank in rows:
            if entry.status == "confirmed" and entry.pdq and (entry.pdq_quality or 0) >= PDQ_MIN_QUALITY:
                yield f"pdq {entry.pdq}\n"
    elif fmt == "te-csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["signal_type", "signal_str", "collab", "category", "tags"])
        for entry, bank in rows:
            if entry.pdq and (entry.pdq_quality or 0) >= PDQ_MIN_QUALITY:
                writer.writerow(["pdq", entry.pdq, bank.name, TE_CATEGORY[entry.status], " ".join(entry.tags or [])])
        yield buf.getvalue()
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")


def _hex(field_name: str, value: Any, errors: list[str], where: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{%d}" % HEX_LENGTHS[field_name], value):
        errors.append(f"{where}: {field_name} must be {HEX_LENGTHS[field_name]} lowercase hex characters")
        return None
    return value


def _parse_jsonl(lines: list[str], errors: list[str]) -> list[dict[str, Any]]:
    if not lines:
        errors.append("line 1: empty file")
        return []
    try:
        header = json.loads(lines[0])
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
            rec = json.loads(line)
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
        hashes = {k: _hex(k, rec.get(k), errors, where) for k in HEX_LENGTHS}
        if not any(hashes.values()):
            errors.append(f"{where}: needs at least one of sha256, pdq, phash")
        for key in ("tags", "source_links"):
            if not isinstance(rec.get(key, []), list) or not all(isinstance(v, str) for v in rec.get(key, [])):
                errors.append(f"{where}: {key} must be a list of strings")
        quality = rec.get("pdq_quality")
        if quality is not None and (not isinstance(quality, int) or not 0 <= quality <= 100):
            errors.append(f"{where}: pdq_quality must be an integer 0-100")
        records.append({**rec, **hashes, "_line": number})
    return records


def _parse_te(lines: list[str], fmt: str, errors: list[str]) -> list[dict[str, Any]]:
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
        if signal_type != "pdq":
            errors.append(f"line {number}: signal type {signal_type!r} is not supported (only pdq)")
            continue
        pdq = _hex("pdq", (value or "").lower(), errors, f"line {number}")
        if pdq is None:
            continue
        if category == "NEGATIVE_CLASS":
            continue  # a false-positive opinion is not a known fake
        records.append({"pdq": pdq, "label": f"imported PDQ {pdq[:12]}", "tags": tags.split(), "_line": number,
                        "status": "confirmed" if category in ("", "POSITIVE_CLASS") else "pending"})
    return records


def parse(text: str, fmt: str) -> list[dict[str, Any]]:
    """Validate the whole input; raise ImportRejected with every problem, or return the records."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    errors: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:
            errors.append(f"line {number}: longer than {MAX_LINE} characters")
    records = _parse_jsonl(lines, errors) if fmt == "jsonl" else _parse_te(lines, fmt, errors)
    if errors:
        raise ImportRejected(errors)
    return records


def _exists(session: Session, bank: models.Bank, rec: dict[str, Any]) -> bool:
    query = select(models.BankEntry.id).where(models.BankEntry.bank_id == bank.id)
    origin = rec.get("origin") or {}
    if origin.get("instance") and origin.get("entry_id"):
        query = query.where(models.BankEntry.origin_instance == origin["instance"],
                            models.BankEntry.origin_entry_id == origin["entry_id"])
    else:
        for key in HEX_LENGTHS:
            column = getattr(models.BankEntry, key)
            query = query.where(column == rec[key]) if rec.get(key) else query.where(column.is_(None))
    return session.scalars(query.limit(1)).first() is not None


def import_records(session: Session, bank: models.Bank, records: list[dict[str, Any]], *, actor: str,
                   keep_status: bool) -> ImportResult:
    """Write validated records into ``bank``. ``keep_status`` (admins) keeps the file's statuses;
    otherwise everything arrives ``pending`` for review."""
    result = ImportResult()
    changed = False
    for rec in records:
        if _exists(session, bank, rec):
            result.unchanged += 1
            continue
        status = rec["status"] if keep_status else "pending"
        origin = rec.get("origin") or {}
        entry = banks.submit_entry(
            session, bank, actor=actor, label=rec["label"], notes=rec.get("notes") or "",
            source_links=rec.get("source_links") or [], tags=rec.get("tags") or [], sha256=rec.get("sha256"),
            pdq=rec.get("pdq"), pdq_quality=rec.get("pdq_quality") if rec.get("pdq_quality") is not None else (
                PDQ_MIN_QUALITY if rec.get("pdq") else None),
            phash=rec.get("phash"), source_url=rec.get("source_url"))
        entry.status = status
        entry.origin_instance = origin.get("instance")
        entry.origin_entry_id = origin.get("entry_id")
        entry.origin_signature = origin.get("signature")
        if status != "pending":
            entry.reviewed_by = rec.get("reviewed_by") or actor
            entry.review_note = rec.get("review_note") or "imported"
            entry.reviewed_at = models.utcnow()
        changed = changed or status == "confirmed"
        result.created += 1
    if changed:
        banks.bump_generation(session, bank)
    banks.audit(session, actor, "bank.import", bank.id, created=result.created, unchanged=result.unchanged)
    return result
