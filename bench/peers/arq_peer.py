"""arq: asyncio jobs in a sorted set, results as keys; the worker polls every poll_delay (0.5 s)."""

from __future__ import annotations

import asyncio
import os
import sys

from arq import create_pool
from arq.connections import RedisSettings

from common import System, main


async def noop(ctx: dict) -> None:
    pass


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"))
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))
    queue_name = "arq:queue"


class Arq(System):
    name = "arq"
    recommended = 10  # max_jobs, arq's default

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.loop = asyncio.new_event_loop()
        self.pool = None

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def setup(self) -> None:
        if self.pool is None:
            self.pool = self.run(create_pool(RedisSettings.from_dsn(self.url)))

    def enqueue_one(self, i: int) -> None:
        self.run(self.pool.enqueue_job("noop"))

    def enqueue_bulk(self, n: int) -> None:
        async def many() -> None:  # no bulk API: 1,000 concurrent enqueue_job calls at a time
            for start in range(0, n, 1000):
                await asyncio.gather(*(self.pool.enqueue_job("noop")
                                       for _ in range(min(1000, n - start))))
        self.run(many())

    def roundtrip(self, i: int) -> None:
        async def one() -> None:
            job = await self.pool.enqueue_job("noop")
            await job.result(timeout=30)  # polls every 0.5 s by default
        self.run(one())

    def worker_argv(self, concurrency: int) -> list[str]:
        self.worker_env = {"BENCH_URL": self.url, "BENCH_CONCURRENCY": str(concurrency)}
        return [os.path.join(os.path.dirname(sys.executable), "arq"), "arq_peer.WorkerSettings"]

    def done(self, n: int) -> int:
        return n - self.raw.zcard("arq:queue")  # a job leaves the queue set when it finishes

    def close(self) -> None:
        if self.pool is not None:
            self.run(self.pool.aclose())


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import arq_peer

    main(arq_peer.Arq)
