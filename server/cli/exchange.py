"""``credence banks export/import``, ``credence peers ...`` and ``credence identity``: sharing from a terminal."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy import select

from server import models
from server.exchange import bank_io
from server.banks import service as banks
from server.exchange import identity
from server.cli.banks import banks_group
from server.cli.common import actor, echo, services


@banks_group.command("export")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(bank_io.FORMATS), default="jsonl", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(names: tuple[str, ...], fmt: str, output: Path | None) -> None:
    """Export the named banks (all when none are named)."""
    svc = services()
    with svc.db.session() as session:
        for name in names:
            banks.get_bank(session, name)
        lines = bank_io.export(session, fmt, list(names) or None, svc.settings.instance_name)
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for line in lines:
                out.write(line)
        finally:
            if output:
                out.close()


@banks_group.command("import")
@click.argument("name")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(bank_io.FORMATS), default="jsonl", show_default=True)
@click.option("--pending", is_flag=True, help="Import everything as pending, for review (default: keep statuses).")
def import_(name: str, source: Path, fmt: str, pending: bool) -> None:
    """Import a file into a bank: all or nothing, idempotent; re-matches stored media."""
    from worker.banks import jobs as bank_jobs

    try:
        records = bank_io.parse(source.read_text(encoding="utf-8"), fmt)
    except bank_io.ImportRejected as exc:
        for error in exc.errors[:50]:
            click.echo(error, err=True)
        raise click.ClickException(str(exc)) from exc
    svc = services()
    with svc.db.session() as session:
        bank = banks.get_bank(session, name)
        result = bank_io.import_records(session, bank, records, actor=actor(), keep_status=not pending)
        confirmed = list(session.scalars(select(models.BankEntry.id).where(
            models.BankEntry.bank_id == bank.id, models.BankEntry.status == "confirmed")))
    changed = sum(bank_jobs.rematch_entry(svc, entry_id) for entry_id in confirmed) if result.created else 0
    echo({"created": result.created, "unchanged": result.unchanged, "verdicts_changed": changed})


@click.command("identity")
def identity_cmd() -> None:
    """This instance's name and public key (give them to peers)."""
    svc = services()
    with svc.db.session() as session:
        row = identity.get_or_create(session, svc.settings.instance_name)
        echo({"name": row.name, "public_key": row.public_key})


@click.group("peers")
def peers_group() -> None:
    """Other Credence instances whose shared banks this one pulls."""


@peers_group.command("add")
@click.argument("name")
@click.argument("url")
@click.argument("public_key")
@click.option("--trust", type=click.Choice(["trusted", "review"]), default="review", show_default=True)
@click.option("--bank", "bank_names", multiple=True, help="Only pull these banks (repeatable).")
def add(name: str, url: str, public_key: str, trust: str, bank_names: tuple[str, ...]) -> None:
    with services().db.session() as session:
        peer = models.Peer(name=name, url=url, public_key=public_key, trust=trust, banks=list(bank_names))
        session.add(peer)
        session.flush()
        banks.audit(session, actor(), "peer.add", peer.id, name=name, url=url, trust=trust)
        echo({"id": peer.id, "name": name})


@peers_group.command("list")
def list_peers() -> None:
    with services().db.session() as session:
        echo([{"name": p.name, "url": p.url, "trust": p.trust, "cursor": p.cursor, "last_error": p.last_error}
               for p in session.scalars(select(models.Peer).order_by(models.Peer.name))])


@peers_group.command("pull")
@click.argument("name", required=False)
def pull(name: str | None) -> None:
    """Pull one peer (or all) now, in this process."""
    from worker.exchange import peer_pull

    svc = services()
    if name is None:
        click.echo(json.dumps(peer_pull.pull_all(svc), indent=2))
        return
    with svc.db.session() as session:
        peer = session.scalars(select(models.Peer).where(models.Peer.name == name)).first()
        if peer is None:
            raise click.ClickException(f"no peer named {name!r}")
    echo(peer_pull.pull_peer(svc, peer.id))
