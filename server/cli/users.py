"""``credence users ...``: newsroom desk accounts, from a terminal on the server."""
from __future__ import annotations

import sys

import click
from sqlalchemy import select

from server.auth import ROLES
from server.cli.common import actor
from server.config import get_settings
from server.db import Database


def _db() -> Database:
    return Database(get_settings().sqlalchemy_url)


@click.group("users")
def users_group() -> None:
    """Desk users (sign-in for the newsroom pages under /desk)."""


@users_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="Same roles as API keys.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create(username: str, role: str, password_stdin: bool) -> None:
    """Create a desk user; the password is asked for (twice) unless --password-stdin."""
    from server.users import UserError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with _db().session() as session:
            user = create_user(session, username=username, password=password, role=role, actor=actor())
            click.echo(f"user {user.username} created with role {user.role}")
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc


@users_group.command("list")
def list_users() -> None:
    """Every desk user with role, creation and last sign-in."""
    from server import models

    with _db().session() as session:
        for user in session.scalars(select(models.User).order_by(models.User.username)):
            last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "never"
            click.echo(f"{user.username}\t{user.role}\tcreated {user.created_at.isoformat(timespec='seconds')}\t"
                       f"last sign-in {last}")


@users_group.command("delete")
@click.argument("username")
def delete(username: str) -> None:
    """Delete a desk user; their sessions stop working at the next request."""
    from server.users import UserError, delete_user

    try:
        with _db().session() as session:
            delete_user(session, username=username, actor=actor())
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"user {username} deleted")
