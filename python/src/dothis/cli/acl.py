"""``dothis acl``: the ``ACL SETUSER`` line of a least-privilege Redis user for a producer, a
worker or a read-only monitor of some queues (SPEC.md ACL; the rules are ``store/acl.py``)."""

from __future__ import annotations

import secrets

import click

from dothis.cli.common import emit_json, json_option
from dothis.errors import InvalidArguments
from dothis.store.acl import PASSWORD_PLACEHOLDER, ROLES, rules


@click.command()
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="producer: enqueue and read results; worker: run the queues' tasks; "
                   "monitor: read only (dothis info, inspect, the dashboard).")  # fmt: skip
@click.option("--queue", "-q", "queues", multiple=True, required=True,
              help="A queue the user may use; give it once per queue.")  # fmt: skip
@click.option("--user", default=None, help="The user name [default: dothis-ROLE].")
@click.option("--password-placeholder", is_flag=True,
              help=f"Write >{PASSWORD_PLACEHOLDER} for the password, to replace, instead of a "
                   "new random one.")  # fmt: skip
@json_option
def acl(
    role: str, queues: tuple[str, ...], user: str | None, password_placeholder: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Print the ACL SETUSER line that creates a Redis user with only the permissions ROLE
    needs on the queues named by --queue.

    Run the line as an admin (redis-cli, or a line of an ACL file), then connect with
    redis://USER:PASSWORD@HOST:6379/0. Without --password-placeholder the line sets a new
    random password, shown only there.
    """
    try:
        found = rules(role, queues)
    except ValueError as error:
        raise InvalidArguments(f"{error}: fix --role or --queue") from error
    name = user or f"dothis-{role}"
    password = PASSWORD_PLACEHOLDER if password_placeholder else secrets.token_urlsafe(24)
    if as_json:
        emit_json({**found.as_data(), "user": name, "line": found.line(name, password),
                   "command": found.setuser(name, password)})  # fmt: skip
        return
    click.echo(found.line(name, password))
