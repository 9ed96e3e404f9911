"""The config file: a TOML table of option names, read into click's ``default_map``.

Click then gives every setting its precedence: a flag, else an environment variable, else the
config file, else the default. Top-level keys apply to every command that has the option; a
table named after a command (``[worker]``) applies to that command and wins over the top level::

    url = "redis://redis:6379/0"
    queue = "emails"

    [worker]
    concurrency = 8
    modules = ["myapp.tasks"]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dothis.cli.common import CliError, F


def _names(param: click.Parameter) -> set[str]:
    """The keys that set ``param``: its name and its long option names, ``-`` read as ``_``."""
    names = {param.name or ""}
    if isinstance(param, click.Option):
        names |= {opt.lstrip("-").replace("-", "_") for opt in param.opts if opt.startswith("--")}
    return names - {"", "help", "version", "config", "yes", "y"}


def _for_command(command: click.Command, table: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """(the default_map of ``command`` from ``table``, the keys of ``table`` it used)."""
    found: dict[str, Any] = {}
    used: set[str] = set()
    for param in command.params:
        for key, value in table.items():
            if key.replace("-", "_") in _names(param) and param.name:
                several = getattr(param, "multiple", False) or param.nargs != 1
                found[param.name] = [value] if several and isinstance(value, str) else value
                used.add(key)
    return found, used


class CommandDefaults(dict[str, Any]):
    """The group's default_map: one table per command, made (and checked) when click asks for
    it, i.e. for the command that runs. The commands are imported lazily (cli/__init__.py), so
    a config file does not make ``dothis enqueue`` import every other command: a table's keys
    are checked when its command runs, and a top-level key the running command does not take
    is looked up in the other commands (importing them) before it is called unknown."""

    def __init__(self, group: click.Group, config: dict[str, Any], source: str) -> None:
        super().__init__()
        self.group = group
        self.source = source
        self.shared = {key: value for key, value in config.items() if not isinstance(value, dict)}
        self.tables = {key: value for key, value in config.items() if isinstance(value, dict)}
        unknown = set(self.tables) - set(group.commands)  # the names only: nothing imported
        if unknown:
            raise CliError(f"config file {source}: no command {sorted(unknown)[0]!r}")

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self and name in self.group.commands:
            self[name] = self._table(name)
        return super().get(name, default)

    def _table(self, name: str) -> dict[str, Any]:
        found, used = _for_command(self.group.commands[name], self.shared)
        table = self.tables.get(name, {})
        own, used_own = _for_command(self.group.commands[name], table)
        stray = set(table) - used_own
        if stray:
            raise CliError(f"config file {self.source}: [{name}] has no setting "
                           f"{sorted(stray)[0]!r}")  # fmt: skip
        unused = set(self.shared) - used
        for other in self.group.commands if unused else ():
            unused -= _for_command(self.group.commands[other], self.shared)[1]
        if unused:
            raise CliError(f"config file {self.source}: unknown setting {sorted(unused)[0]!r}")
        return {**found, **own}


def load(path: str) -> dict[str, Any]:
    import tomllib  # only when a config file is given

    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CliError(f"config file {path}: {error}") from error


def _apply(ctx: click.Context, _param: click.Parameter, path: str | None) -> None:
    """Read the config file before the other options (the option is eager)."""
    if path is None:
        return
    group = ctx.command if ctx.parent is None else ctx.parent.command
    if not isinstance(group, click.Group):
        return
    settings = CommandDefaults(group, load(path), path)
    ctx.default_map = settings if ctx.parent is None else settings.get(ctx.info_name or "", {})


def config_option(envvar: str | None) -> Callable[[F], F]:
    """``--config FILE``: on the group (with DOTHIS_CONFIG) and on each command."""
    return click.option(
        "--config", type=click.Path(dir_okay=False), envvar=envvar, is_eager=True,
        expose_value=False, callback=_apply, allow_from_autoenv=False,
        help="A TOML file of settings (option names as keys); flags and environment variables "
        "win over it" + (f" [env {envvar}]." if envvar else "."),
    )  # fmt: skip
