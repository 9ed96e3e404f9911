"""celery with the Redis broker and the Redis result backend; prefork pool (celery's default)."""

from __future__ import annotations

import os
import sys

from celery import Celery, group

from common import Cursor, System, main

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
app = Celery("celery_peer", broker=URL, backend=URL)
app.conf.update(task_default_queue="bench", worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)


@app.task
def noop() -> None:
    pass


class CeleryPeer(System):
    name = "celery"
    recommended = os.cpu_count() or 1  # prefork's default: one child per CPU

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.cursor = Cursor(self.raw)
        self.worker_env = {"BENCH_URL": url}

    def setup(self) -> None:
        self.cursor.reset()

    def enqueue_one(self, i: int) -> None:
        result = noop.delay()
        self.cursor.add(f"celery-task-meta-{result.id}")

    def enqueue_bulk(self, n: int) -> None:
        for start in range(0, n, 1000):  # no bulk API: a group sends one message per task
            results = group(noop.s() for _ in range(min(1000, n - start))).apply_async()
            for result in results.results:
                self.cursor.add(f"celery-task-meta-{result.id}")

    def roundtrip(self, i: int) -> None:
        noop.delay().get(timeout=30)

    def worker_argv(self, concurrency: int) -> list[str]:
        celery = os.path.join(os.path.dirname(sys.executable), "celery")
        return [celery, "-A", "celery_peer", "worker", "--pool", "prefork", "-c", str(concurrency),
                "--loglevel", "WARNING", "-Q", "bench"]

    def done(self, n: int) -> int:
        return self.cursor.count()


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import celery_peer  # the app reads its URL at import; tasks named after the module

    main(celery_peer.CeleryPeer)
