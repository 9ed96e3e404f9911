"""The ``dothis`` command: a worker, enqueue, and the tools to watch and manage queues.

Every setting comes from, in this order: a flag; an environment variable (``DOTHIS_REDIS_URL``,
``DOTHIS_QUEUE``, else ``DOTHIS_<COMMAND>_<OPTION>``, e.g. ``DOTHIS_WORKER_CONCURRENCY``); the
config file (``--config FILE`` or ``DOTHIS_CONFIG``, see cli/config.py); the default.
"""

from __future__ import annotations

import click

from dothis.cli import enqueue, inspect, manage, metrics, status, worker
from dothis.cli.common import Commands
from dothis.cli.config import config_option


@click.group(cls=Commands, context_settings={"auto_envvar_prefix": "DOTHIS",
                                             "help_option_names": ["-h", "--help"]})  # fmt: skip
@click.version_option(package_name="dothis")
@config_option("DOTHIS_CONFIG")
def main() -> None:
    """dothis: a task queue with a language-neutral Redis protocol.

    Settings: a flag wins over its environment variable (DOTHIS_REDIS_URL, DOTHIS_QUEUE,
    DOTHIS_<COMMAND>_<OPTION>), which wins over the config file (--config or DOTHIS_CONFIG: a
    TOML table of option names, with a [command] table for one command's own)."""


for command in (
    worker.worker, enqueue.enqueue, status.info, inspect.inspect, status.check, manage.failed,
    manage.requeue, manage.cancel, manage.empty, manage.purge, metrics.metrics,
):  # fmt: skip
    main.add_command(command)

__all__ = ["main"]
