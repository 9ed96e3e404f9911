"""dothis, Python producer and Python worker: the system under test.

Also the worker's task module: ``dothis worker ... dothis_py`` registers ``noop``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from dothis import Call, Queue, task
from dothis.examples import sleep as _sleep  # noqa: F401  (registers "sleep" with the worker)


@task
def noop() -> None:
    """Does nothing: the benchmark measures the queue, not the task."""


@task
async def asleep(seconds: float) -> float:
    """Sleeps on the worker's event loop (no thread or child process per task)."""
    await asyncio.sleep(seconds)
    return seconds


def _system():  # built lazily, so that the worker importing this module stays light
    from common import System

    class DothisPy(System):
        name = "dothis"
        recommended = int(os.environ.get("BENCH_DOTHIS_CONCURRENCY", "16"))

        def setup(self) -> None:
            if getattr(self, "q", None) is not None:
                self.q.close()
            self.q = Queue(self.queue, url=self.url)

        def enqueue_one(self, i: int) -> None:
            self.q.enqueue("noop")

        def enqueue_bulk(self, n: int) -> None:
            calls = [Call("noop") for _ in range(n)]
            for start in range(0, n, 50_000):  # bounded memory for 10^6 tasks
                self.q.enqueue_many(calls[start:start + 50_000])

        def roundtrip(self, i: int) -> None:
            self.q.enqueue("noop").wait(timeout=30)

        def sleep_task(self, seconds: float, n: int) -> None:
            self.sleeping = True
            self.q.enqueue_many([Call("asleep", {"seconds": seconds}) for _ in range(n)])

        def close(self) -> None:
            if getattr(self, "q", None) is not None:
                self.q.close()

        def worker_argv(self, concurrency: int) -> list[str]:
            if getattr(self, "sleeping", False):  # async sleepers: no process pool to fork
                return [sys.executable, "dothis_worker.py", self.url, self.queue, str(concurrency),
                        "pool=thread"]
            dothis = os.path.join(os.path.dirname(sys.executable), "dothis")
            # The worker as a user starts it: no flags but the queue, the URL and the module
            # (the process pool, its timeouts and crash isolation). DOTHIS_BENCH_WORKER_ARGS adds
            # flags (bench/run.py's tuned row: "--pool inline --prefetch 100"). One worker
            # process, as every row of the table; BENCH_DOTHIS_PROCESSES=N runs N under the
            # supervisor, and an empty value passes no --processes (the command's default: one
            # per CPU; or a revision older than the flag, with --commit).
            extra = os.environ.get("DOTHIS_BENCH_WORKER_ARGS", "")
            processes = os.environ.get("BENCH_DOTHIS_PROCESSES", "1")
            return [dothis, "worker", "--url", self.url, "--queue", self.queue,
                    "--concurrency", str(concurrency), "--log-level", "WARNING", *extra.split(),
                    *(["--processes", processes] if processes else []), "dothis_py"]

        def done(self, n: int) -> int:
            pipe = self.raw.pipeline(transaction=False)
            pipe.llen(f"{self.queue}:pending")
            pipe.llen(f"{self.queue}:executing")
            pending, executing = pipe.execute()
            return n - pending - executing

    return DothisPy


if __name__ == "__main__":
    from common import main

    main(_system())
