"""The ``dothis`` command: a worker, enqueue, and the tools to watch and manage queues.

Every setting comes from, in this order: a flag; an environment variable (``DOTHIS_REDIS_URL``,
``DOTHIS_QUEUE``, else ``DOTHIS_<COMMAND>_<OPTION>``, e.g. ``DOTHIS_WORKER_CONCURRENCY``); the
config file (``--config FILE`` or ``DOTHIS_CONFIG``, see cli/config.py); the default.
"""

from __future__ import annotations

import click

from dothis.cli.common import Commands, LazyCommands
from dothis.cli.config import config_option

# Each command, by name, in the module that defines it: a command's module (and what it needs:
# redis-py, rich, the worker) is imported only when that command runs, or for --help.
COMMANDS = {
    "worker": "dothis.cli.worker:worker",
    "enqueue": "dothis.cli.enqueue:enqueue",
    "info": "dothis.cli.status:info",
    "inspect": "dothis.cli.inspect:inspect",
    "check": "dothis.cli.status:check",
    "failed": "dothis.cli.manage:failed",
    "requeue": "dothis.cli.manage:requeue",
    "cancel": "dothis.cli.manage:cancel",
    "delete": "dothis.cli.manage:delete",
    "empty": "dothis.cli.manage:empty",
    "purge": "dothis.cli.manage:purge",
    "metrics": "dothis.cli.metrics:metrics",
    "acl": "dothis.cli.acl:acl",
    "dashboard": "dothis.cli.dashboard:dashboard",
}


@click.group(cls=Commands, commands=LazyCommands(COMMANDS),
             context_settings={"auto_envvar_prefix": "DOTHIS",
                               "help_option_names": ["-h", "--help"]})  # fmt: skip
@click.version_option(package_name="dothis")
@config_option("DOTHIS_CONFIG")
def main() -> None:
    """dothis: a task queue with a language-neutral Redis protocol.

    Settings: a flag wins over its environment variable (DOTHIS_REDIS_URL, DOTHIS_QUEUE,
    DOTHIS_<COMMAND>_<OPTION>), which wins over the config file (--config or DOTHIS_CONFIG: a
    TOML table of option names, with a [command] table for one command's own)."""


__all__ = ["COMMANDS", "main"]
