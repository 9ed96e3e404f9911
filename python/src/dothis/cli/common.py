"""What every command shares: the error line, the options, a Redis client, JSON and tables."""

from __future__ import annotations

import gc
import importlib
import json
import sys
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from dothis.errors import DothisError
from dothis.wire.protocol import DEFAULT_QUEUE

if TYPE_CHECKING:
    from rich.console import Console

    from dothis.store.connection import SyncClient

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """One line on stderr, ``error: <message>``, and exit status 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class StillRunning(CliError):
    """``enqueue --wait`` ran out of time: exit status 2, as before."""

    exit_code = 2


class LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands, each imported from its module the first time it is looked up
    (click's "lazily loading subcommands"): ``dothis enqueue`` imports the enqueue command's
    module only, never the worker, Prometheus or rich. Listing the names imports nothing;
    ``dothis --help`` and a config file (which is checked against every command) import all."""

    def __init__(self, where: dict[str, str]) -> None:
        self._where = dict(where)  # name -> "module:attribute"
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            if name not in self._where:
                raise KeyError(name)
            module, _, attribute = self._where[name].partition(":")
            loaded = getattr(importlib.import_module(module), attribute)
            if not isinstance(loaded, click.Command):
                raise TypeError(f"{self._where[name]} is not a click command")
            command = self._loaded[name] = loaded
        return command

    def __contains__(self, name: object) -> bool:
        return name in self._where or name in self._loaded

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._where.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        del self._where[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


class Commands(click.Group):
    """The ``dothis`` group: any DothisError (or Redis refusal) a command raises becomes the
    one-line ``error:`` message, never a traceback.

    Run as the process's own command (``main()`` without arguments: the ``dothis`` script), it
    keeps the garbage collector off the objects start-up makes, which all live until the exit:
    the collector is off while the command's module and its imports load, and what they made is
    then frozen (``gc.freeze``: never traversed again) before it is turned back on for the
    command itself; at the end everything is frozen, so the interpreter's exit does not traverse
    the whole heap again (its passes took a third of a short command's time). Called from code
    (``main([...])``, click's CliRunner) it leaves the collector alone."""

    _collector_paused = False

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs.get("args") is not None or not gc.isenabled():
            return super().main(*args, **kwargs)
        gc.disable()
        self._collector_paused = True
        try:
            return super().main(*args, **kwargs)
        finally:
            self._resume_collector()
            gc.freeze()

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        resolved = super().resolve_command(ctx, args)  # imports the command's module
        self._resume_collector()
        return resolved

    def _resume_collector(self) -> None:
        if self._collector_paused:
            self._collector_paused = False
            gc.freeze()
            gc.enable()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DothisError as error:
            raise CliError(str(error)) from error
        except Exception as error:
            # A Redis error can only come from a command that imported redis-py itself.
            redis = sys.modules.get("redis")
            if redis is None or not isinstance(error, redis.RedisError):
                raise
            from dothis.store import faults
            from dothis.store.acl import explain_noperm

            denied = explain_noperm(error)
            raise CliError(str(denied) if denied else faults.describe(error)) from error


_CONNECTION = "dothis.connection"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """--tls-ca, --tls-cert, --tls-key and --cluster: kept for ``_with_settings`` (they are
    eager, so they are read before --url whatever their order)."""
    if value and param.name:
        ctx.meta.setdefault(_CONNECTION, {})[param.name] = value


def _with_settings(ctx: click.Context, _: click.Parameter, url: str | None) -> str | None:
    """The URL with the connection flags written into it (store/topology.py), so everything the
    command does reaches the server the same way."""
    settings = ctx.meta.get(_CONNECTION)
    if not settings:
        return url
    from dothis.store.connection import resolve_url
    from dothis.store.topology import with_settings

    try:
        return with_settings(resolve_url(url), **settings)
    except DothisError as error:
        raise click.BadParameter(str(error), ctx=ctx, param_hint="--url") from error


_CONNECTION_FLAGS = (
    ("--tls-ca", "FILE", "CA certificate(s) that signed the server's certificate, for rediss:// "
     "URLs [env DOTHIS_TLS_CA; default: the system's CAs]."),
    ("--tls-cert", "FILE", "Client certificate, for a server that asks for one [env "
     "DOTHIS_TLS_CERT]."),
    ("--tls-key", "FILE", "The client certificate's key [env DOTHIS_TLS_KEY]."),
)  # fmt: skip


def url_option(command: F) -> F:
    """``--url`` and the flags that say how to reach it: TLS files and ``--cluster``."""
    command = click.option(
        "--cluster", is_flag=True, default=False, expose_value=False, is_eager=True,
        callback=_remember, help="The URL names a node of a Redis Cluster; queue names then "
        "carry a hash tag, {emails} [env DOTHIS_CLUSTER=1].",
    )(command)  # fmt: skip
    for flag, metavar, text in reversed(_CONNECTION_FLAGS):
        command = click.option(flag, metavar=metavar, default=None, expose_value=False,
                               is_eager=True, callback=_remember, help=text)(command)  # fmt: skip
    return click.option(
        "--url", envvar="DOTHIS_REDIS_URL", default=None, callback=_with_settings,
        help="Redis URL: redis://, rediss:// (TLS) or redis+sentinel://H:P[,H:P]/SERVICE[/DB] "
        "[env DOTHIS_REDIS_URL; default redis://127.0.0.1:6379/0].",
    )(command)  # fmt: skip


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
    from dothis.store.connection import connect, resolve_url, translate_errors

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
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False)
