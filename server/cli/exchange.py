"""``credence banks export/import``, ``credence peers ...`` and ``credence identity``: sharing from a
terminal, through the same service (server/exchange/service.py) as the API."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from server.cli.banks import banks_group
from server.cli.common import AtOnce, Refusals, actor, echo, services
from server.exchange import bank_io
from server.exchange import service as exchange


@banks_group.command("export")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(bank_io.FORMATS), default="jsonl", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(names: tuple[str, ...], fmt: str, output: Path | None) -> None:
    """Export the named banks (all when none are named)."""
    svc = services()
    with svc.db.session() as session:
        lines = exchange.export_lines(session, fmt, list(names), svc.settings.instance_name)
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
    """Import a file into a bank: all or nothing, idempotent; re-matches stored media. Lines read but
    not imported as they stand are listed under "warnings"."""
    with source.open("rb") as handle:
        data = handle.read(exchange.MAX_IMPORT_BYTES + 1)
    svc = services()
    try:
        result = exchange.import_bank(svc, name, data, fmt, actor=actor(), keep_status=not pending, jobs=AtOnce(svc))
    except bank_io.ImportRejected as exc:
        for error in exc.errors[:50]:
            click.echo(error, err=True)
        raise click.ClickException(str(exc)) from exc
    shown = {"created": result["created"], "unchanged": result["unchanged"],
             "verdicts_changed": result.get("verdicts_changed", 0)}
    echo({**shown, "warnings": result["warnings"]} if "warnings" in result else shown)


@click.command("identity")
def identity_cmd() -> None:
    """This instance's name and public key (give them to peers)."""
    svc = services()
    with svc.db.session() as session:
        echo(exchange.identity_card(session, svc.settings.instance_name))


@click.group("peers", cls=Refusals)
def peers_group() -> None:
    """Other Credence instances whose shared banks this one pulls."""


@peers_group.command("add")
@click.argument("name")
@click.argument("url")
@click.argument("public_key")
@click.option("--trust", type=click.Choice(exchange.TRUST_LEVELS), default="review", show_default=True)
@click.option("--bank", "bank_names", multiple=True, help="Only pull these banks (repeatable).")
@click.option("--manifests/--no-manifests", default=True, show_default=True,
              help="Pull the peer's shared manifest records into the manifest repository.")
def add(name: str, url: str, public_key: str, trust: str, bank_names: tuple[str, ...], manifests: bool) -> None:
    with services().db.session() as session:
        echo(exchange.peer_dict(exchange.add_peer(session, name=name, url=url, public_key=public_key,
                                                  bank_names=list(bank_names), trust=trust, actor=actor(),
                                                  manifests=manifests)))


@peers_group.command("list")
def list_peers() -> None:
    with services().db.session() as session:
        echo([exchange.peer_dict(p) for p in exchange.list_peers(session)])


@peers_group.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Stop pulling a peer; the copies already pulled from it stay."""
    with services().db.session() as session:
        exchange.remove_peer(session, name, actor=actor())
    echo({"deleted": name})


@peers_group.command("trust")
@click.argument("name")
@click.argument("level", type=click.Choice(exchange.TRUST_LEVELS))
def trust(name: str, level: str) -> None:
    """Whether what the peer sends next arrives confirmed (trusted) or pending (review)."""
    with services().db.session() as session:
        echo(exchange.peer_dict(exchange.update_peer(session, name, trust=level, actor=actor())))


@peers_group.command("manifests")
@click.argument("name")
@click.argument("switch", type=click.Choice(["on", "off"]))
def manifests(name: str, switch: str) -> None:
    """Whether the peer's shared manifest records are pulled from now on (those already pulled stay)."""
    with services().db.session() as session:
        echo(exchange.peer_dict(exchange.update_peer(session, name, manifests=switch == "on", actor=actor())))


@peers_group.command("pull")
@click.argument("name", required=False)
def pull(name: str | None) -> None:
    """Pull one peer (or all) now, in this process."""
    from worker.exchange import peer_pull  # the worker's feed reader, run here in-process

    svc = services()
    if name is None:
        click.echo(json.dumps(peer_pull.pull_all(svc), indent=2))
        return
    with svc.db.session() as session:
        peer_id = exchange.get_peer(session, name).id
    echo(peer_pull.pull_peer(svc, peer_id))
