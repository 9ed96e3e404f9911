"""taskiq with taskiq-redis: RedisStreamBroker (acknowledged delivery) and RedisAsyncResultBackend."""

from __future__ import annotations

import asyncio
import os
import sys

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from common import Cursor, System, main

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
# consumer_id "0": the group also reads messages queued before the worker started
broker = RedisStreamBroker(url=URL, queue_name="bench", consumer_id="0").with_result_backend(
    RedisAsyncResultBackend(redis_url=URL))


@broker.task
async def noop() -> None:
    pass


class Taskiq(System):
    name = "taskiq"
    recommended = 100  # --max-async-tasks default, in one worker process

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.loop = asyncio.new_event_loop()
        self.cursor = Cursor(self.raw)
        self.started = False

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def setup(self) -> None:
        self.cursor.reset()
        if not self.started:
            self.run(broker.startup())
            self.started = True

    async def _kiq(self) -> None:
        task = await noop.kiq()
        self.cursor.add(task.task_id)

    def enqueue_one(self, i: int) -> None:
        self.run(self._kiq())

    def enqueue_bulk(self, n: int) -> None:
        async def many() -> None:  # no bulk API: 1,000 concurrent kiq calls at a time
            for start in range(0, n, 1000):
                await asyncio.gather(*(self._kiq() for _ in range(min(1000, n - start))))
        self.run(many())

    def roundtrip(self, i: int) -> None:
        async def one() -> None:
            task = await noop.kiq()
            await task.wait_result(timeout=30)  # polls every 0.2 s by default
        self.run(one())

    def worker_argv(self, concurrency: int) -> list[str]:
        self.worker_env = {"BENCH_URL": self.url}
        return [os.path.join(os.path.dirname(sys.executable), "taskiq"), "worker",
                "taskiq_peer:broker", "--workers", "1", "--max-async-tasks", str(concurrency),
                "--log-level", "WARNING"]

    def done(self, n: int) -> int:
        return self.cursor.count()

    def close(self) -> None:
        if self.started:
            self.run(broker.shutdown())


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import taskiq_peer

    main(taskiq_peer.Taskiq)
