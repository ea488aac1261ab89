"""The ``credence`` command: run it, feed it, manage it."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import click

from server.auth import ROLES, create_key, list_keys, revoke_key
from server.cli.banks import banks_group
from server.cli.common import Refusals, actor, echo, services
from server.cli.detectors import detectors_group
from server.cli.exchange import identity_cmd, peers_group
from server.cli.provenance import provenance_group
from server.cli.users import users_group
from server.config import get_settings
from server.schemas import KeyCreateRequest, parse

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


# Commands that read or write the record: on a fresh data dir they would meet an empty database.
SCHEMA_COMMANDS = frozenset({"keys", "banks", "peers", "identity", "users", "provenance"})


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Credence: can I trust this image?"""
    if ctx.invoked_subcommand in SCHEMA_COMMANDS and not {"--help", "-h"} & set(sys.argv[1:]):
        ensure_schema()


def ensure_schema() -> None:
    """The embedded SQLite database is migrated on first use, as `credence serve` does; a configured
    database is the operator's to migrate, so a missing or old schema is one clear line, not a traceback."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from server.migrate import alembic_config, upgrade

    settings = get_settings()
    url = settings.sqlalchemy_url
    try:
        if not settings.database_url:
            upgrade(url)
            return
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot use the database ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if current != head:
        state = "has no Credence schema yet" if current is None else f"is at revision {current}, not {head}"
        raise click.ClickException(f"the database {state}: run `credence db upgrade` first")


@main.command()
@click.option("--host", default=None, help="Listen address (default CREDENCE_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default CREDENCE_PORT, 8080).")
@click.option("--threads", type=int, default=8, show_default=True, help="HTTP worker threads.")
@click.option("--no-worker", is_flag=True, help="Do not start the bundled Celery worker.")
def serve(host: str | None, port: int | None, threads: int, no_worker: bool) -> None:
    """Run API and worker in one process tree (embedded default: SQLite, no Redis needed)."""
    from waitress import create_server

    from server.app import create_app
    from server.migrate import upgrade

    settings = get_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    worker = None
    if not no_worker:
        # the bundled worker's metrics join the API's /metrics (its files, summed, on each scrape)
        from server.metrics import fresh_dir

        metrics_dir = fresh_dir(settings.resolved_data_dir / "worker-metrics")
        app.config["CREDENCE_WORKER_METRICS_DIR"] = str(metrics_dir)
        worker = _spawn_worker(["fetch", "cpu", "gpu"], settings.worker_concurrency, beat=True,
                               env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, hold_batches=True)
    _allow_connections(settings.http_connection_limit)
    # waitress reads requests in its event loop, not in the threads: an idle or slow socket costs a
    # connection slot only, and is closed after channel_timeout without a byte. poll(), not select():
    # select() cannot watch descriptors past 1024.
    server = create_server(app, host=host, port=port, threads=threads,
                           connection_limit=settings.http_connection_limit,
                           channel_timeout=settings.http_channel_timeout_s,
                           cleanup_interval=max(1, min(10, settings.http_channel_timeout_s // 2)),
                           asyncore_use_poll=True, backlog=2048)
    actual_port = server.socket.getsockname()[1] if hasattr(server, "socket") else port
    click.echo(f"Credence listening on http://{host}:{actual_port} "
               f"(data in {settings.resolved_data_dir}, database {settings.sqlalchemy_url.split('://')[0]}, "
               f"broker {settings.celery_broker_url.split('://')[0]})", err=False)
    sys.stdout.flush()

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()


def _allow_connections(limit: int) -> None:
    """Raise the open-file limit so the connection limit, not EMFILE, is what bounds the server."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limit + 256  # database, broker, media files, the worker's pipes
    if soft != resource.RLIM_INFINITY and soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when `credence serve` dies, even by SIGKILL
    (Linux PR_SET_PDEATHSIG): Celery's warm shutdown then stops its pool and embedded beat too, so no
    orphaned beat sweeps the broker beside the next one."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def arm() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(70)

    return arm


def _celery_argv(queues: list[str], concurrency: int, beat: bool, hold_batches: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "-Q", ",".join(queues), "--concurrency", str(concurrency), "--loglevel", "INFO",
            "--hostname", f"credence-{'-'.join(queues)}-{os.getpid()}@%h"]
    if queues == ["gpu"] or hold_batches:
        # celery-batches can only gather what the worker has prefetched: let a gpu-only worker hold a batch.
        # `credence serve`'s worker, the only one, too: the detection requests it holds keep their prefetch
        # slots until their batch runs, and with one slot per process every other task of a page waited.
        argv += ["--prefetch-multiplier", str(get_settings().detect_batch_size)]
    if beat:
        argv.append("--beat")
    return argv


def _spawn_worker(queues: list[str], concurrency: int, beat: bool, env: dict[str, str],
                  hold_batches: bool = False) -> subprocess.Popen:
    return subprocess.Popen(_celery_argv(queues, concurrency, beat, hold_batches),
                            cwd=Path(__file__).resolve().parents[2],
                            env=env, preexec_fn=_die_with_parent(os.getpid()))


@main.command()
@click.option("-Q", "--queues", default="fetch,cpu,gpu", show_default=True, help="Queues to consume.")
@click.option("-c", "--concurrency", type=int, default=None, help="Worker processes (default CREDENCE_WORKER_CONCURRENCY).")
@click.option("--beat", is_flag=True, help="Also run the periodic sweeper of stale checks (run exactly one).")
def worker(queues: str, concurrency: int | None, beat: bool) -> None:
    """Run a Celery worker for the given queues (production shape)."""
    settings = get_settings()
    argv = _celery_argv([q for q in queues.split(",") if q], concurrency or settings.worker_concurrency, beat)
    if settings.worker_metrics_port and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="credence-worker-metrics-")
    os.execv(argv[0], argv)


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(target: str, as_json: bool) -> None:
    """Check a file or URL in-process (no services needed) and print the verdict."""
    from server.config import PIPELINE_VERSION
    from server.verdicts import unavailable
    from worker.fetch.common import FetchLimits, FetchRefused
    from worker.fetch.media import fetch
    from worker.pipeline.runner import analyze

    settings = get_settings()
    matcher = _local_banks(settings)
    if target.startswith(("http://", "https://")):
        try:
            data = fetch(target, FetchLimits.from_settings(settings)).data
            verdict = analyze(data, settings, matcher=matcher).verdict
        except FetchRefused as exc:
            verdict = unavailable(f"Could not check: {exc.reason}.", stage="fetch", code=exc.code,
                                  sha256=None, versions={"pipeline": PIPELINE_VERSION})
    else:
        path = Path(target)
        if not path.is_file():
            raise click.UsageError(f"{target} is neither a file nor an http(s) URL")
        if path.stat().st_size > settings.fetch_max_bytes:
            raise click.UsageError(f"{target} is larger than {settings.fetch_max_bytes:,} bytes")
        data = path.read_bytes()
        verdict = analyze(data, settings, matcher=matcher).verdict
    from worker.detection import gate as detection

    if detection.is_pending(verdict.versions):  # detectors configured: the gpu stage, here in-process
        from server.media_store import MediaStore
        from worker.detection.jobs import detect_in_process

        verdict = detect_in_process(data, verdict, settings, MediaStore(settings.media_path))
    if as_json:
        click.echo(json.dumps(verdict.model_dump(mode="json"), indent=2))
        return
    click.echo(f"{verdict.level.value}: {verdict.label}")
    click.echo(verdict.summary)
    if verdict.sha256:
        click.echo(f"sha256 {verdict.sha256}")
    for item in verdict.evidence:
        click.echo(f"  - [{item.stage}/{item.kind}] {item.summary}")


def _local_banks(settings):
    """The banks of this deployment's database when it has them; a bare machine checks without."""
    from sqlalchemy.exc import SQLAlchemyError

    from server.banks import service as banks
    from server.db import Database
    from worker.banks.matcher import BankMatcher

    if not settings.database_url and not (settings.resolved_data_dir / "credence.db").exists():
        return None
    db = Database(settings.sqlalchemy_url)
    try:
        with db.session() as session:
            banks.generation_state(session)
    except SQLAlchemyError:
        return None
    return BankMatcher(db, settings.pdq_threshold, settings.phash_threshold,
                       vpdq_frame_threshold=settings.vpdq_frame_threshold, vpdq_match_share=settings.vpdq_match_share)


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default head)."""
    from server.migrate import upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from server.migrate import downgrade

    downgrade(get_settings().sqlalchemy_url, revision)
    click.echo(f"database at {revision}")


@main.group(cls=Refusals)
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--name", default="cli", show_default=True, help="Who or what the key is for.")
def keys_create(role: str, name: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    body = parse(KeyCreateRequest, {"role": role, "name": name})  # the API's rule: a name of 1-200 characters
    key, row = create_key(services().db, role=body.role, name=body.name, actor=actor())
    click.echo(key)
    click.echo(f"id {row.id}, role {row.role}; store the key now, it is not shown again", err=True)


@keys.command("list")
def keys_list() -> None:
    """Every key (id, name, prefix, role, when made and revoked), never the key itself."""
    echo(list_keys(services().db))


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once (as DELETE /api/v1/keys/<id>)."""
    info = revoke_key(services().db, key_id, actor=actor())
    if info is None:
        raise click.ClickException("no such key")
    echo(info)


@main.group()
def trust() -> None:
    """C2PA trust lists (signer and time-stamp authority anchors)."""


@trust.command("update")
def trust_update() -> None:
    """Download the C2PA Trust List and TSA Trust List into the data dir, with a record of when and from where."""
    from worker.fetch.common import FetchRefused
    from worker.trust import RECORD_FILE, trust_dir
    from worker.trust_update import update_trust_lists

    settings = get_settings()
    try:
        record = update_trust_lists(settings)
    except (FetchRefused, ValueError) as exc:
        raise click.ClickException(f"trust lists not updated: {getattr(exc, 'reason', exc)}") from exc
    for entry in record["lists"]:
        click.echo(f"{entry['file']}: {entry['certificates']} certificates from {entry['url']}")
    click.echo(f"recorded in {trust_dir(settings) / RECORD_FILE} at {record['updated_at']}")


for _group in (banks_group, detectors_group, peers_group, identity_cmd, users_group, provenance_group):
    main.add_command(_group)
