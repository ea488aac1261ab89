"""``credence banks ...``: the same curation as the API, from a terminal on the server."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy import select

from server import models
from server.banks import search as bank_search
from server.banks import service as banks
from server.banks import removal as entry_removal
from server.config import get_settings
from server.json_edge import check_value
from server.cli.common import Refusals, actor, echo, services

if TYPE_CHECKING:
    from worker.stages.fingerprint import Fingerprint


@click.group("banks", cls=Refusals)
def banks_group() -> None:
    """Banks of known fakes and originals."""


@banks_group.command("list")
def list_banks() -> None:
    with services().db.session() as session:
        counts = banks.entry_counts(session)
        echo([banks.bank_dict(b, counts.get(b.id)) for b in session.scalars(select(models.Bank).order_by(models.Bank.name))])


@banks_group.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(banks.KINDS), required=True)
@click.option("--description", default="")
def create(name: str, kind: str, description: str) -> None:
    with services().db.session() as session:
        echo(banks.bank_dict(banks.create_bank(session, name=name, kind=kind, actor=actor(), description=description)))


@banks_group.command("entries")
@click.argument("name")
@click.option("--status", type=click.Choice(banks.STATUSES), default=None)
def entries(name: str, status: str | None) -> None:
    with services().db.session() as session:
        bank = banks.get_bank(session, name)
        query = select(models.BankEntry).where(models.BankEntry.bank_id == bank.id)
        if status:
            query = query.where(models.BankEntry.status == status)
        echo([banks.entry_dict(e, bank) for e in session.scalars(query.order_by(models.BankEntry.submitted_at))])


def _fingerprint(path: Path) -> Fingerprint:
    """The file hashed as every front end hashes it (worker.stages.fingerprint)."""
    from worker.stages.fingerprint import FingerprintError, fingerprint  # the API process never loads worker code

    try:
        return fingerprint(path.read_bytes(), get_settings())
    except FingerprintError as exc:
        raise click.ClickException(f"{path}: {exc.reason}") from exc


@banks_group.command("submit")
@click.argument("name")
@click.option("--label", required=True)
@click.option("--notes", default="")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sha256")
@click.option("--pdq")
@click.option("--phash")
@click.option("--md5", help="A video file's MD5.")
@click.option("--link", "links", multiple=True, help="Source or debunk link (repeatable).")
def submit(name: str, label: str, notes: str, file_path: Path | None, sha256: str | None, pdq: str | None,
           phash: str | None, md5: str | None, links: tuple[str, ...]) -> None:
    """Submit an entry (pending until reviewed) from a file (image or video) or from hash values."""
    check_value({"label": label, "notes": notes, "links": list(links)}, "an option")  # argv may hold surrogates
    values: dict[str, object] = {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}
    if file_path:
        fp = _fingerprint(file_path)
        values = ({"media_kind": "video", "sha256": fp.sha256, "md5": fp.md5, "frames": list(fp.frames)}
                  if fp.kind == "video" else
                  {"sha256": fp.sha256, "pdq": fp.pdq, "pdq_quality": fp.pdq_quality, "phash": fp.phash})
    with services().db.session() as session:
        entry = banks.submit_entry(session, banks.get_bank(session, name), actor=actor(), label=label, notes=notes,
                                   source_links=list(links), **values)
        echo(banks.entry_dict(entry))


def _decide(entry_id: str, action: str, note: str) -> None:
    from worker.banks import jobs as bank_jobs

    svc = services()
    with svc.db.session() as session:
        entry = banks.get_entry(session, entry_id)
        changed = banks.decide(session, entry, action=action, actor=actor(), note=note)
        result = banks.entry_dict(entry)
    if changed:
        result["rematched_changed"] = bank_jobs.rematch_entry(svc, entry_id)
    echo(result)


@banks_group.command("review")
@click.argument("entry_id")
@click.option("--confirm", "action", flag_value="confirm")
@click.option("--reject", "action", flag_value="reject")
@click.option("--note", required=True)
def review(entry_id: str, action: str | None, note: str) -> None:
    """Confirm or reject a pending entry; stored media are re-matched at once."""
    if action is None:
        raise click.UsageError("give --confirm or --reject")
    _decide(entry_id, action, note)


@banks_group.command("retract")
@click.argument("entry_id")
@click.option("--note", required=True)
def retract(entry_id: str, note: str) -> None:
    _decide(entry_id, "retract", note)


@banks_group.command("delete-entry")
@click.argument("entry_id")
@click.option("--note", required=True, help="Why: kept in the audit log.")
def delete_entry(entry_id: str, note: str) -> None:
    """Delete one entry for good (audited); stored media it matched are re-matched at once."""
    from worker.banks import jobs as bank_jobs

    svc = services()
    with svc.db.session() as session:
        hashes = entry_removal.remove_entry(session, banks.get_entry(session, entry_id), actor=actor(), note=note)
    result: dict[str, object] = {"deleted": entry_id}
    if hashes["status"] in ("confirmed", "retracted"):
        result["rematched_changed"] = bank_jobs.rematch_removed(svc, hashes)
    echo(result)


@banks_group.command("search")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sha256")
@click.option("--pdq")
@click.option("--phash")
@click.option("--md5", help="A video file's MD5.")
def search(file_path: Path | None, sha256: str | None, pdq: str | None, phash: str | None, md5: str | None) -> None:
    """What do the banks hold that looks like this? (an image or a video)"""
    query: dict[str, object] = {k: banks.check_hex(k, v)
                                for k, v in {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}.items()}
    frames = None
    if file_path:
        fp = _fingerprint(file_path)
        query = {"sha256": fp.sha256, "pdq": fp.orientations or None, "phash": fp.phash, "md5": fp.md5}
        frames = list(fp.frames) or None
    if not any(query.values()) and not frames:
        raise click.UsageError("give --file or at least one hash")
    settings = get_settings()
    with services().db.session() as session:
        echo(bank_search.search(session, **query, frames=frames, frame_threshold=settings.vpdq_frame_threshold,
                                 match_share=settings.vpdq_match_share))
