"""What every `credence` command group shares: the services, who acts, JSON output, one-line refusals."""
from __future__ import annotations

import getpass
import json

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


class Refusals(click.Group):
    """Show refusals (unknown bank, wrong state, bad hash) as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            raise click.ClickException(exc.message) from exc
        except UnsafeText as exc:
            raise click.ClickException(str(exc)) from exc
