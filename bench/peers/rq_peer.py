"""rq: one job hash per task, FIFO list, a forked work horse per job (rq's default worker)."""

from __future__ import annotations

import os
import sys

from common import System, main


def noop() -> None:
    pass


class Rq(System):
    name = "rq"
    recommended = 1  # one job at a time per worker process; rq scales with more processes

    def setup(self) -> None:
        from rq import Queue

        self.q = Queue(self.queue, connection=self.raw)

    def enqueue_one(self, i: int) -> None:
        self.q.enqueue("rq_peer.noop")

    def enqueue_bulk(self, n: int) -> None:
        from rq import Queue

        for start in range(0, n, 1000):
            self.q.enqueue_many([Queue.prepare_data("rq_peer.noop")
                                 for _ in range(min(1000, n - start))])

    def roundtrip(self, i: int) -> None:
        job = self.q.enqueue("rq_peer.noop")
        result = job.latest_result(timeout=30)
        assert result is not None, "no result within 30 s"

    def worker_argv(self, concurrency: int) -> list[str]:
        rq = os.path.join(os.path.dirname(sys.executable), "rq")
        return [rq, "worker", "--url", self.url, "--logging_level", "WARNING", self.queue]

    def done(self, n: int) -> int:
        return self.raw.zcard(f"rq:finished:{self.queue}")


if __name__ == "__main__":
    main(Rq)
