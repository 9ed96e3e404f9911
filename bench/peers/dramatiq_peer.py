"""dramatiq with the Redis broker and the Redis results backend (store_results=True)."""

from __future__ import annotations

import os
import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from common import System, main

URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/0")
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, queue_name="bench")
def noop() -> None:
    pass


class Dramatiq(System):
    name = "dramatiq"
    recommended = 8  # threads per process, dramatiq's default

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(url, queue)
        self.worker_env = {"BENCH_URL": url}

    def enqueue_one(self, i: int) -> None:
        noop.send()

    def roundtrip(self, i: int) -> None:
        noop.send().get_result(block=True, timeout=30_000)

    def worker_argv(self, concurrency: int) -> list[str]:
        exe = os.path.join(os.path.dirname(sys.executable), "dramatiq")
        return [exe, "dramatiq_peer", "--processes", "1", "--threads", str(concurrency),
                "--queues", "bench"]

    def done(self, n: int) -> int:
        # a message stays in <ns>:<queue>.msgs until it is acked, after its result is stored
        pipe = self.raw.pipeline(transaction=False)
        pipe.hlen("dramatiq:bench.msgs")
        pipe.llen("dramatiq:bench")
        msgs, _ = pipe.execute()
        return n - msgs


if __name__ == "__main__":
    os.environ["BENCH_URL"] = sys.argv[sys.argv.index("--url") + 1]
    import dramatiq_peer

    main(dramatiq_peer.Dramatiq)
