"""What every command shares: the error line, the options, a Redis client, JSON and tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any, TypeVar

import click
import redis
from rich.console import Console

from dothis.errors import DothisError
from dothis.store import faults
from dothis.store.connection import SyncClient, connect, resolve_url, translate_errors
from dothis.wire import codec
from dothis.wire.clock import now, parse_iso
from dothis.wire.protocol import DEFAULT_QUEUE

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """One line on stderr, ``error: <message>``, and exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class StillRunning(CliError):
    """``enqueue --wait`` ran out of time: exit status 2, as before."""

    exit_code = 2


class Commands(click.Group):
    """The ``dothis`` group: any DothisError (or Redis refusal) a command raises becomes the
    one-line ``error:`` message, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DothisError as error:
            raise CliError(str(error)) from error
        except redis.RedisError as error:
            raise CliError(faults.describe(error)) from error


url_option = click.option(
    "--url", envvar="DOTHIS_REDIS_URL", default=None,
    help="Redis URL [env DOTHIS_REDIS_URL; default redis://127.0.0.1:6379/0].",
)  # fmt: skip
queue_option = click.option(
    "--queue", "-q", envvar="DOTHIS_QUEUE", default=DEFAULT_QUEUE, show_default=True,
    help="Queue name [env DOTHIS_QUEUE].",
)  # fmt: skip
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON only."
)


def queues_option(help_text: str, default: tuple[str, ...] = ()) -> Callable[[F], F]:
    """``--queue`` given any number of times (or as DOTHIS_QUEUE, names split by spaces)."""
    return click.option(
        "--queue", "-q", "queues", envvar="DOTHIS_QUEUE", multiple=True, default=default,
        show_default=bool(default), help=f"{help_text} [env DOTHIS_QUEUE].",
    )  # fmt: skip


@contextmanager
def open_client(url: str | None) -> Iterator[tuple[SyncClient, str]]:
    """A plain client (for reads that belong to no one queue) and its resolved URL."""
    resolved = resolve_url(url)
    with translate_errors(resolved):
        client = connect(resolved)
    try:
        yield client, resolved
    finally:
        client.close()


def emit_json(data: Any, *, compact: bool = False) -> None:
    """Machine-readable output: one JSON document on stdout (``compact``: on one line)."""
    click.echo(json.dumps(data, indent=None if compact else 2, ensure_ascii=False, default=str))


def console() -> Console:
    """Human output (the current stdout, so CliRunner captures it); no colour unless a tty, and
    no markup: task data like ``[Errno 2]`` is printed as it is."""
    return Console(highlight=False, markup=False, emoji=False)


def decode_json(text: str | None) -> Any:
    """A JSON field's value, or the text itself when it is not JSON (None stays None)."""
    if text is None:
        return None
    try:
        return codec.decode(text)
    except ValueError:
        return text


def pretty(value: Any) -> str:
    """A decoded JSON value for a human: strings bare, the rest as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def age_seconds(timestamp: str | None, until: str | None = None) -> float | None:
    """Seconds from a protocol timestamp to ``until`` (another one) or now; None if unreadable."""
    if not timestamp:
        return None
    try:
        end: datetime = parse_iso(until) if until else now()
        return round(max(0.0, (end - parse_iso(timestamp)).total_seconds()), 3)
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """``0.25s``, ``42s``, ``3m 05s``, ``2h 03m``, ``4d 02h``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                          ("m", 60, "s", 1)):  # fmt: skip
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // small_size:02d}{small}"
    return f"{whole}s"
