"""saq: asyncio jobs, Redis queue with a Lua enqueue; results read through Queue.apply."""

from __future__ import annotations

import asyncio
import os
import sys

from saq import Queue

from common import System, main


async def noop(ctx: dict) -> None:
    pass


settings = {
    "queue": Queue.from_url(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"), name="bench"),
    "functions": [noop],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "10")),
}


class Saq(System):
    name = "saq"
    recommended = 10  # the worker's default concurrency

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.loop = asyncio.new_event_loop()
        self.q = None

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def setup(self) -> None:
        if self.q is None:
            self.q = Queue.from_url(self.url, name="bench")
            self.run(self.q.connect())

    def enqueue_one(self, i: int) -> None:
        self.run(self.q.enqueue("noop"))

    def enqueue_bulk(self, n: int) -> None:
        async def many() -> None:  # no bulk API: 1,000 concurrent enqueue calls at a time
            for start in range(0, n, 1000):
                await asyncio.gather(*(self.q.enqueue("noop") for _ in range(min(1000, n - start))))
        self.run(many())

    def roundtrip(self, i: int) -> None:
        self.run(self.q.apply("noop", timeout=30))

    def worker_argv(self, concurrency: int) -> list[str]:
        self.worker_env = {"BENCH_URL": self.url, "BENCH_CONCURRENCY": str(concurrency)}
        return [os.path.join(os.path.dirname(sys.executable), "saq"), "saq_peer.settings", "--quiet"]

    def done(self, n: int) -> int:
        return n - self.raw.zcard("saq:bench:incomplete")  # queued and active jobs

    def close(self) -> None:
        if self.q is not None:
            self.run(self.q.disconnect())


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import saq_peer

    main(saq_peer.Saq)
