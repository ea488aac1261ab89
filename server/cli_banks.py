"""``credence banks ...``: the same curation as the API, from a terminal on the server."""
from __future__ import annotations

import getpass
import hashlib
import json
from pathlib import Path

import click
from sqlalchemy import select

from server import bank_search, banks, models
from server.config import get_settings
from server.errors import ApiError
from server.media_types import VIDEO_TYPES, sniff
from server.services import Services


def _services() -> Services:
    return Services(get_settings())


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _echo(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


class _Errors(click.Group):
    """Show refusals (unknown bank, wrong state, bad hash) as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            raise click.ClickException(exc.message) from exc


@click.group("banks", cls=_Errors)
def banks_group() -> None:
    """Banks of known fakes and originals."""


@banks_group.command("list")
def list_banks() -> None:
    with _services().db.session() as session:
        counts = banks.entry_counts(session)
        _echo([banks.bank_dict(b, counts.get(b.id)) for b in session.scalars(select(models.Bank).order_by(models.Bank.name))])


@banks_group.command("create")
@click.argument("name")
@click.option("--kind", type=click.Choice(banks.KINDS), required=True)
@click.option("--description", default="")
def create(name: str, kind: str, description: str) -> None:
    with _services().db.session() as session:
        _echo(banks.bank_dict(banks.create_bank(session, name=name, kind=kind, actor=_actor(), description=description)))


@banks_group.command("entries")
@click.argument("name")
@click.option("--status", type=click.Choice(banks.STATUSES), default=None)
def entries(name: str, status: str | None) -> None:
    with _services().db.session() as session:
        bank = banks.get_bank(session, name)
        query = select(models.BankEntry).where(models.BankEntry.bank_id == bank.id)
        if status:
            query = query.where(models.BankEntry.status == status)
        _echo([banks.entry_dict(e, bank) for e in session.scalars(query.order_by(models.BankEntry.submitted_at))])


def _file_hashes(path: Path) -> dict[str, object]:
    """An image's sha256/PDQ/pHash, or a video's sha256/MD5/keyframe PDQs, as the pipeline computes them."""
    from worker.stages import hashes
    from worker.stages.decode import DecodeError, decode

    data = path.read_bytes()
    if sniff(data[:512]) in VIDEO_TYPES:
        from worker.stages.keyframes import VideoError, VideoLimits, extract
        from worker.stages.video_hashes import video_hashes

        try:
            vh = video_hashes(data, extract(data, VideoLimits.from_settings(get_settings()))[1])
        except VideoError as exc:
            raise click.ClickException(f"{path}: {exc.reason}") from exc
        return {"media_kind": "video", "sha256": vh.sha256, "md5": vh.md5, "frames": list(vh.frames)}
    try:
        h = hashes.compute(decode(data, get_settings().max_pixels).image)
    except DecodeError as exc:
        raise click.ClickException(f"{path}: {exc.reason}") from exc
    return {"sha256": hashlib.sha256(data).hexdigest(), "pdq": h.pdq, "pdq_quality": h.pdq_quality, "phash": h.phash}


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
    values: dict[str, object] = {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}
    if file_path:
        values = _file_hashes(file_path)
    with _services().db.session() as session:
        entry = banks.submit_entry(session, banks.get_bank(session, name), actor=_actor(), label=label, notes=notes,
                                   source_links=list(links), **values)
        _echo(banks.entry_dict(entry))


def _decide(entry_id: str, action: str, note: str) -> None:
    from worker import bank_jobs

    svc = _services()
    with svc.db.session() as session:
        entry = banks.get_entry(session, entry_id)
        changed = banks.decide(session, entry, action=action, actor=_actor(), note=note)
        result = banks.entry_dict(entry)
    if changed:
        result["rematched_changed"] = bank_jobs.rematch_entry(svc, entry_id)
    _echo(result)


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


@banks_group.command("search")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sha256")
@click.option("--pdq")
@click.option("--phash")
@click.option("--md5", help="A video file's MD5.")
def search(file_path: Path | None, sha256: str | None, pdq: str | None, phash: str | None, md5: str | None) -> None:
    """What do the banks hold that looks like this? (an image or a video)"""
    query = {"sha256": sha256, "pdq": pdq, "phash": phash, "md5": md5}
    frames = None
    if file_path:
        hashed = _file_hashes(file_path)
        query = {k: hashed.get(k) for k in query}
        frames = hashed.get("frames")
    query = {k: banks.check_hex(k, v) for k, v in query.items()}
    if not any(query.values()) and not frames:
        raise click.UsageError("give --file or at least one hash")
    settings = get_settings()
    with _services().db.session() as session:
        _echo(bank_search.search(session, **query, frames=frames, frame_threshold=settings.vpdq_frame_threshold,
                                 match_share=settings.vpdq_match_share))
