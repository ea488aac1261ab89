"""``credence provenance export/import``: the manifest repository as files (docs/repository.md), so an
instance that cannot pull another's feed can still recover the credentials it saw."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from server.cli.common import Refusals, actor, echo, services
from server.provenance import repository
from server.queue import enqueue_revalidate_manifest


@click.group("provenance", cls=Refusals)
def provenance_group() -> None:
    """The manifest repository (valid Content Credentials kept for stripped copies)."""


@provenance_group.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout).")
def export(output: Path | None) -> None:
    """Every served manifest as JSON lines, with its store and thumbnail."""
    svc = services()
    with svc.db.session() as session:
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for line in repository.export_lines(session, svc.store.get):
                out.write(line)
        finally:
            if output:
                out.close()


@provenance_group.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(source: Path) -> None:
    """Import a file ``provenance export`` wrote: all or nothing, idempotent."""
    with source.open("rb") as handle:
        data = handle.read(repository.MAX_IMPORT_BYTES + 1)
    if len(data) > repository.MAX_IMPORT_BYTES:
        raise click.ClickException("import file is too large")
    svc = services()
    try:
        with svc.db.session() as session:
            result = repository.import_lines(session, data, svc.store.put, actor=actor())
    except repository.ImportRejected as exc:
        for problem in exc.problems[:50]:
            click.echo(problem, err=True)
        raise click.ClickException(f"nothing imported: {len(exc.problems)} problem(s)") from exc
    # The stores are re-validated against this instance's trust lists by a worker (native code on hostile bytes,
    # under a task's time limits), never in this process; until then a match on them decides nothing.
    for manifest_id in result.ids:
        svc.enqueue(enqueue_revalidate_manifest, manifest_id)
    echo({"created": result.created, "unchanged": result.unchanged, "revalidating": len(result.ids)})


@provenance_group.command("revalidate")
@click.option("--all", "everything", is_flag=True,
              help="Every imported record, not only those never re-validated (e.g. after `credence trust update`).")
def revalidate(everything: bool) -> None:
    """Re-validate imported manifest stores against this instance's trust lists (worker tasks)."""
    svc = services()
    with svc.db.session() as session:
        ids = repository.imported_ids(session, pending_only=not everything)
    for manifest_id in ids:
        svc.enqueue(enqueue_revalidate_manifest, manifest_id)
    echo({"revalidating": len(ids)})


@provenance_group.command("publish")
def publish() -> None:
    """Put on the exchange feed the manifests kept before CREDENCE_SHARE_MANIFESTS was turned on (peers pull them)."""
    svc = services()
    if not svc.settings.share_manifests:
        raise click.ClickException("CREDENCE_SHARE_MANIFESTS is off: turn it on first (docs/exchange-feed.md)")
    with svc.db.session() as session:
        count = repository.publish_existing(session)
    echo({"published": count})


@provenance_group.command("expire")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Forget records untouched for this many days (default: CREDENCE_REPOSITORY_RETENTION_DAYS).")
def expire(days: int | None) -> None:
    """Forget repository records no check, import or re-validation has touched for a while (the retention)."""
    svc = services()
    days = days or svc.settings.repository_retention_days
    if not days:
        raise click.ClickException("no retention set: pass --days or set CREDENCE_REPOSITORY_RETENTION_DAYS")
    with svc.db.session() as session:
        gone = repository.expire(session, days)
    echo({"expired": gone, "days": days})
