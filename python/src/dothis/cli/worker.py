"""``dothis worker``: serve queues with the functions some modules register."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dothis.cli.common import CliError, F, queues_option, url_option
from dothis.cli.config import config_option
from dothis.errors import DothisError
from dothis.wire.protocol import DEFAULT_QUEUE
from dothis.wire.shards import MAX_SHARDS, Shards, expand, groups
from dothis.worker import Worker, WorkerOptions
from dothis.worker.logs import FORMATS
from dothis.worker.logs import configure as configure_logging
from dothis.worker.options import POOLS

DEFAULTS = {field.name: field.default for field in dataclasses.fields(WorkerOptions)}


class PrefetchType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A count of tasks, or ``auto`` (None)."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value == "auto":
            return None
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = -1
        if count < 0:
            self.fail(f"{value!r} is neither a count of tasks (0 or more) nor auto", param, ctx)
        return count


PREFETCH = PrefetchType()


# The flags that set a WorkerOptions field each, with that field's own default: (field, extra
# flag declarations, click settings).
TUNING: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("concurrency", ("-c",), {"help": "Tasks run at once."}),
    ("prefetch", (), {"type": PREFETCH, "default": "auto", "help": "Tasks claimed ahead of "
                      "free slots (they wait in executing, owned by this worker, and are "
                      "recovered if it dies); auto: as many as it starts within 50 ms at its "
                      "recent pace (none while its tasks are slow)."}),
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
                          "help": "Serve Prometheus metrics on this port (default: none); with "
                          "--processes N, the workers serve on PORT, PORT+1, ... PORT+N-1."}),
    ("metrics_host", (), {"help": "The address the metrics port listens on."}),
]  # fmt: skip


def with_tuning(command: F) -> F:
    """Add the TUNING flags to ``command``; they reach it as keyword arguments of those names."""
    for name, decls, settings in reversed(TUNING):
        flag = "--" + name.replace("_", "-")
        option = click.option(
            flag, *decls, name, **{"default": DEFAULTS[name], "show_default": True, **settings}
        )
        command = option(command)
    return command


@click.command()
@config_option(None)
@url_option
@queues_option("Queue to serve; repeat for several, highest priority first", (DEFAULT_QUEUE,))
@click.option("--shards", type=click.IntRange(1, MAX_SHARDS), default=None, envvar="DOTHIS_SHARDS",
              help="Serve each --queue as one logical queue over N shards, {QUEUE.0} ... "
              "{QUEUE.N-1}, claiming from them in turn; N must match the count the queue was "
              "declared with (SPEC.md 11.2) [env DOTHIS_SHARDS].")  # fmt: skip
@with_tuning
@click.option("--worker-id", default=None, help="Worker id (default: a new UUID); with "
              "--processes N, the other workers are ID-2 ... ID-N.")  # fmt: skip
@click.option("--processes", type=click.IntRange(min=1), default=None,
              show_default="the number of CPUs", help="Worker processes, each serving the queues "
              "with these settings, under one supervisor that starts again any that dies; 1: the "
              "worker runs in this process, with no supervisor.")  # fmt: skip
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
    shards: int | None,
    worker_id: str | None,
    processes: int | None,
    log_level: str,
    log_format: str,
    modules: tuple[str, ...],
    **tuned: Any,
) -> None:
    """Run the functions that MODULES register: module names (dothis.examples) or paths to
    Python files (./mytasks.py)."""
    from dothis.worker import supervisor

    count = processes or supervisor.default_processes()
    try:
        options = WorkerOptions(**tuned)
        make = _maker(list(queues), url, worker_id, options, shards)
        serving = make(count - 1)  # checks every setting, and the longest worker id
        if count > 1 and not supervisor.SUPPORTED:
            raise ValueError("--processes above 1 needs Linux")
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    configure_logging(log_level.lower(), log_format)
    _preflight(url, expand(list(queues), shards))
    sys.path.insert(0, os.getcwd())
    for module in modules:
        load(module)
    if count > 1:  # forked before any connection: each child makes and runs its own worker
        ran = supervisor.Supervisor(lambda slot: _serve(make, slot), count, options.grace_seconds)
        raise SystemExit(ran.run())
    serving.run()
    if serving.forced.is_set():
        # Threads still running plain functions cannot be stopped; their tasks are back in pending.
        logging.shutdown()
        os._exit(1)


def _preflight(url: str | None, served: list[str | Shards]) -> None:
    """Once, before any worker process starts: queue names fit the topology (hash tags on a
    cluster), a warning when writes are not replicated (docs/topology.md), and each sharded queue
    has the declared shard count (SPEC.md 11.2: refused here, not in every worker process)."""
    import redis

    from dothis.store.connection import connect, preflight, resolve_url
    from dothis.store.shards import declare

    resolved = resolve_url(url)
    names = [name for group in groups(served) for name in group]
    preflight(resolved, names, logging.getLogger("dothis.worker"))
    sharded = [item for item in served if isinstance(item, Shards)]
    if sharded:
        try:
            client = connect(resolved)
        except DothisError:
            return  # an unreachable Redis is left to the worker to report
        try:
            for item in sharded:
                declare(client, item)
        except (redis.RedisError, OSError):
            return  # left to the worker, which checks again
        finally:
            client.close()


def _maker(
    queues: list[str],
    url: str | None,
    worker_id: str | None,
    options: WorkerOptions,
    shards: int | None = None,
) -> Callable[[int], Worker]:
    """The worker of each supervisor slot (0 when it runs alone): ``--worker-id`` ID gives ID,
    ID-2, ID-3...; ``--metrics-port`` P gives P, P+1, P+2..."""
    from dothis.worker.supervisor import slot_worker_id

    def make(slot: int) -> Worker:
        port = options.metrics_port
        if port and port + slot > 65535:
            raise ValueError(f"--metrics-port {port} leaves no port for worker process {slot + 1}")
        mine = dataclasses.replace(options, metrics_port=port + slot) if port else options
        return Worker(queues, url, worker_id=slot_worker_id(worker_id, slot), options=mine,
                      shards=shards)  # fmt: skip

    return make


def _serve(make: Callable[[int], Worker], slot: int) -> int:
    """One worker process of the supervisor's, run to its end: its exit status. An error is the
    one ``error:`` line it is when the worker runs alone."""
    import redis

    from dothis.store import faults

    try:
        serving = make(slot)
        serving.run()
    except DothisError as error:
        CliError(str(error)).show()
        return 1
    except redis.RedisError as error:
        CliError(faults.describe(error)).show()
        return 1
    return 1 if serving.forced.is_set() else 0


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
