"""What every `credence` command group shares: the services, who acts, JSON output, one-line refusals,
and bank jobs run in this process."""
from __future__ import annotations

import getpass
import json
from typing import Any

import click

from server.config import get_settings
from server.errors import ApiError
from server.json_edge import UnsafeText
from server.services import Services


def services() -> Services:
    return Services(get_settings())


def actor() -> str:
    """The audit trail names the operator's login, as the API names the key."""
    return f"cli:{getpass.getuser()}"


def echo(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def refusal(exc: ApiError) -> str:
    """The API's message, with what its details say (which option, what is wrong), on one line."""
    return "; ".join([exc.message, *exc.problems()])


class Refusals(click.Group):
    """Show refusals (unknown bank, wrong state, bad hash) as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            raise click.ClickException(refusal(exc)) from exc
        except UnsafeText as exc:
            raise click.ClickException(str(exc)) from exc


class AtOnce:
    """The bank jobs (server.banks.service.Jobs) run here, not queued: the operator may run no worker, and
    each re-match returns how many verdicts it changed."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def hash_entry(self, entry_id: str) -> str:
        from worker.banks import jobs  # worker code, loaded only by the commands that run it

        return jobs.hash_entry(self.svc, entry_id)

    def rematch(self, entry_id: str) -> int:
        from worker.banks import jobs

        return jobs.rematch_entry(self.svc, entry_id)

    def rematch_removed(self, hashes: dict[str, Any]) -> int:
        from worker.banks import jobs

        return jobs.rematch_removed(self.svc, hashes)
