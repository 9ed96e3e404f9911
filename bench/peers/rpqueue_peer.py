"""rpqueue: tasks in a sorted set and a hash per queue; results saved with save_results."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

import rpqueue

from common import Cursor, System, main, worker_entry


def _connect(url: str) -> None:
    parts = urlsplit(url)
    rpqueue.set_redis_connection_settings(parts.hostname, parts.port or 6379,
                                          int((parts.path or "/0").strip("/") or 0))


_connect(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))


@rpqueue.task(queue=b"bench", save_results=600)
def noop() -> None:
    pass


def _worker(concurrency: int) -> None:
    rpqueue.execute_tasks(queues=[b"bench"], threads_per_process=concurrency, processes=1,
                          module="rpqueue_peer")


class Rpqueue(System):
    name = "rpqueue"
    recommended = 1  # threads_per_process default

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        # result:<id> holds '' while the task runs and its JSON once it returned
        self.cursor = Cursor(self.raw, "GET", lambda reply: reply not in (None, b""))

    def setup(self) -> None:
        self.cursor.reset()

    def enqueue_one(self, i: int) -> None:
        taskid = noop.execute().taskid
        self.cursor.add(b"result:" + (taskid if isinstance(taskid, bytes) else taskid.encode()))

    def roundtrip(self, i: int) -> None:
        assert noop.execute().wait(30), "no result within 30 s"  # polls every 10 ms

    def worker_argv(self, concurrency: int) -> list[str]:
        self.worker_env = {"BENCH_URL": self.url}
        return [sys.executable, "rpqueue_peer.py", "worker", str(concurrency)]

    def done(self, n: int) -> int:
        return self.cursor.count()


if __name__ == "__main__":
    worker_entry(lambda c: __import__("rpqueue_peer")._worker(c))
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import rpqueue_peer

    main(rpqueue_peer.Rpqueue)
