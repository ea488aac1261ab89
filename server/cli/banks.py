"""``credence banks ...``: the same curation as the API, from a terminal on the server.

Options are validated by the API's schemas; each command calls one function of server/banks/service.py
(or search.py). Re-matching runs here at once (``AtOnce``) and the output says how many verdicts changed.
"""
from __future__ import annotations

from pathlib import Path

import click

from server.banks import search as bank_search
from server.banks import service as banks
from server.cli.common import AtOnce, Refusals, actor, echo, services
from server.json_edge import check_value
from server.schemas import BankCreate, EntryDelete, EntrySubmit, RetractRequest, ReviewRequest, SearchRequest, parse


@click.group("banks", cls=Refusals)
def banks_group() -> None:
    """Banks of known fakes and originals."""


@banks_group.command("list")
def list_banks() -> None:
    with services().db.session() as session:
        echo(banks.list_banks(session))


@banks_group.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(banks.KINDS), required=True)
@click.option("--description", default="")
def create(name: str, kind: str, description: str) -> None:
    body = parse(BankCreate, {"name": name, "kind": kind, "description": description})
    with services().db.session() as session:
        echo(banks.bank_dict(banks.create_bank(session, **body.model_dump(), actor=actor())))


@banks_group.command("entries")
@click.argument("name")
@click.option("--status", type=click.Choice(banks.STATUSES), default=None)
def entries(name: str, status: str | None) -> None:
    """Every entry of the bank, oldest first."""
    with services().db.session() as session:
        echo(banks.list_entries(session, bank=name, status=status))


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
    svc = services()
    hashes = (banks.file_hashes(file_path.read_bytes(), svc.settings) if file_path else
              {k: v for k, v in {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}.items() if v is not None})
    body = parse(EntrySubmit, {"label": label, "notes": notes, "source_links": list(links), **hashes})
    echo(banks.submit(svc, name, body, actor=actor(), jobs=AtOnce(svc)))


@banks_group.command("review")
@click.argument("entry_id")
@click.option("--confirm", "action", flag_value="confirm")
@click.option("--reject", "action", flag_value="reject")
@click.option("--note", required=True)
def review(entry_id: str, action: str | None, note: str) -> None:
    """Confirm or reject a pending entry; stored media are re-matched at once."""
    if action is None:
        raise click.UsageError("give --confirm or --reject")
    svc = services()
    echo(banks.review(svc, entry_id, parse(ReviewRequest, {"action": action, "note": note}), actor=actor(),
                      jobs=AtOnce(svc)))


@banks_group.command("retract")
@click.argument("entry_id")
@click.option("--note", required=True)
def retract(entry_id: str, note: str) -> None:
    """Retract a confirmed entry; stored media are re-matched at once."""
    svc = services()
    echo(banks.review(svc, entry_id, parse(RetractRequest, {"note": note}), actor=actor(), jobs=AtOnce(svc)))


@banks_group.command("delete-entry")
@click.argument("entry_id")
@click.option("--note", required=True, help="Why: kept in the audit log.")
def delete_entry(entry_id: str, note: str) -> None:
    """Delete one entry for good (audited); stored media it matched are re-matched at once."""
    svc = services()
    echo(banks.delete_entry(svc, entry_id, parse(EntryDelete, {"note": note}), actor=actor(), jobs=AtOnce(svc)))


@banks_group.command("search")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sha256")
@click.option("--pdq")
@click.option("--phash")
@click.option("--md5", help="A video file's MD5.")
def search(file_path: Path | None, sha256: str | None, pdq: str | None, phash: str | None, md5: str | None) -> None:
    """What do the banks hold that looks like this? (an image or a video)"""
    svc = services()
    if file_path:
        query = bank_search.upload_query(file_path.read_bytes(), svc.settings)
    else:
        query = bank_search.hash_query(parse(SearchRequest, {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}))
    with svc.db.session() as session:
        echo(bank_search.find(session, query, svc.settings))
