"""``dothis worker``: serve queues with the functions some modules register."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from dothis.cli.common import CliError, F, queues_option, url_option
from dothis.cli.config import config_option
from dothis.wire.protocol import DEFAULT_QUEUE
from dothis.worker import Worker, WorkerOptions
from dothis.worker.logs import FORMATS
from dothis.worker.logs import configure as configure_logging
from dothis.worker.options import POOLS

DEFAULTS = {field.name: field.default for field in dataclasses.fields(WorkerOptions)}


# The flags that set a WorkerOptions field each, with that field's own default: (field, extra
# flag declarations, click settings).
TUNING: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("concurrency", ("-c",), {"help": "Tasks run at once."}),
    ("prefetch", (), {"help": "Tasks claimed ahead of free slots (they wait in executing, owned "
                      "by this worker, and are recovered if it dies)."}),
    ("pool", (), {"type": click.Choice(POOLS), "help": "Where plain functions run: child "
                  "processes (a try can be stopped at its timeout), threads, or inline on the "
                  "worker's event loop (fastest; for short functions only: timeouts are not "
                  "enforced and heartbeats wait for each call)."}),
    ("timeout", (), {"type": float, "show_default": False, "help": "Seconds a try may run when "
                     "its task sets no timeout (default: no limit)."}),
    ("retry_base_ms", (), {"help": "Backoff before the first retry; doubles per retry, with "
                           "jitter."}),
    ("retry_max_ms", (), {}),
    ("schedule_ms", (), {"help": "How often to move due scheduled tasks to pending."}),
    ("lease_ms", (), {"help": "Worker key TTL: how long after its last heartbeat a worker "
                      "counts as dead."}),
    ("heartbeat_ms", (), {}),
    ("reap_ms", (), {"help": "How often to look for tasks of dead workers."}),
    ("max_claims", (), {"help": "Claims after which a task whose worker keeps dying fails "
                        "(worker-lost)."}),
    ("max_value_bytes", (), {}),
    ("max_fields", (), {}),
    ("result_ttl", (), {"help": "Seconds a succeeded task's hash is kept when it sets no "
                        "result-ttl (-1: forever)."}),
    ("failure_ttl", (), {"help": "Seconds a failed, cancelled or expired task's hash is kept "
                         "when it sets no failure-ttl (-1: forever)."}),
    ("grace_seconds", (), {"help": "After SIGTERM, how long running tasks may finish before "
                           "they go back to pending (a second signal does it at once)."}),
    ("burst", (), {"is_flag": True, "show_default": False, "help": "Run what is queued now "
                   "(pending, and scheduled tasks already due), then exit."}),
    ("metrics_port", (), {"type": click.IntRange(1, 65535), "show_default": False,
                          "help": "Serve Prometheus metrics on this port (default: none)."}),
    ("metrics_host", (), {"help": "The address the metrics port listens on."}),
]  # fmt: skip


def with_tuning(command: F) -> F:
    """Add the TUNING flags to ``command``; they reach it as keyword arguments of those names."""
    for name, decls, settings in reversed(TUNING):
        flag = "--" + name.replace("_", "-")
        option = click.option(
            flag, *decls, name, default=DEFAULTS[name], **{"show_default": True, **settings}
        )
        command = option(command)
    return command


@click.command()
@config_option(None)
@url_option
@queues_option("Queue to serve; repeat for several, highest priority first", (DEFAULT_QUEUE,))
@with_tuning
@click.option("--worker-id", default=None, help="Worker id (default: a new UUID).")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option("--log-format", type=click.Choice(FORMATS), default="text", show_default=True,
              help="Log lines as text, or as JSON objects for log pipelines.")  # fmt: skip
@click.argument("modules", nargs=-1, required=True)
def worker(
    url: str | None,
    queues: tuple[str, ...],
    worker_id: str | None,
    log_level: str,
    log_format: str,
    modules: tuple[str, ...],
    **tuned: Any,
) -> None:
    """Run the functions that MODULES register: module names (dothis.examples) or paths to
    Python files (./mytasks.py)."""
    try:
        serving = Worker(list(queues), url, worker_id=worker_id, options=WorkerOptions(**tuned))
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    configure_logging(log_level.lower(), log_format)
    sys.path.insert(0, os.getcwd())
    for module in modules:
        load(module)
    serving.run()
    if serving.forced.is_set():
        # Threads still running plain functions cannot be stopped; their tasks are back in pending.
        logging.shutdown()
        os._exit(1)


def load(module: str) -> None:
    """Import a module by name, or run a Python file given by its path, for its registrations."""
    path = Path(module)
    if module.endswith(".py") or os.sep in module or path.is_file():
        if not path.is_file():
            raise CliError(f"no such file: {module}")
        sys.path.insert(0, str(path.resolve().parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CliError(f"cannot load {module} as a Python module")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = loaded
        spec.loader.exec_module(loaded)
        return
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise CliError(
            f"cannot import module {module!r} ({error}): is it installed, or on PYTHONPATH? "
            "(a file can be given by its path: ./mytasks.py)"
        ) from error
