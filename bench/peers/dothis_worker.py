"""Start a dothis worker from Python, for settings the command line may not offer.

    python dothis_worker.py URL QUEUE CONCURRENCY [OPTION=VALUE ...]

Each OPTION is a field of dothis.worker.WorkerOptions; unknown ones are ignored (and reported on
stderr), so the benchmark keeps working while the worker's options change.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from dothis.worker import Worker, WorkerOptions

import dothis_py  # noqa: F401  (registers noop, sleep, asleep)


def main() -> None:
    url, queue, concurrency, *pairs = sys.argv[1:]
    known = {f.name: f for f in dataclasses.fields(WorkerOptions)}
    options: dict[str, object] = {"concurrency": int(concurrency)}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            print(f"dothis_worker: WorkerOptions has no {name!r}; ignored", file=sys.stderr)
            continue
        options[name] = int(value) if value.isdigit() else value
    logging.basicConfig(level=logging.WARNING)
    Worker(queue, url, options=WorkerOptions(**options)).run()


if __name__ == "__main__":
    main()
