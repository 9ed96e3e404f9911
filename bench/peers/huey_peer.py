"""huey with RedisHuey: a list per queue, results in a hash, the thread consumer."""

from __future__ import annotations

import os
import sys

from huey import RedisHuey

from common import System, main

huey = RedisHuey("bench", url=os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0"),
                 store_none=True)  # so that a task returning None has a visible result


@huey.task()
def noop() -> None:
    pass


class Huey(System):
    name = "huey"
    recommended = 4  # thread workers; the consumer's default is 1

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.worker_env = {"BENCH_URL": url}
        self.results_key = None

    def enqueue_one(self, i: int) -> None:
        noop()

    def roundtrip(self, i: int) -> None:
        noop()(blocking=True, timeout=30)  # huey's wait polls with backoff

    def worker_argv(self, concurrency: int) -> list[str]:
        consumer = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
        return [consumer, "huey_peer.huey", "-k", "thread", "-w", str(concurrency)]

    def done(self, n: int) -> int:
        # every finished task leaves its result (None is stored too) in the results hash
        return self.raw.hlen(huey.storage.result_key)


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import huey_peer  # the task must be registered under its module name, not __main__

    main(huey_peer.Huey)
