"""Drain rate of one queue on a single Redis, of one hash-tagged queue on a three-master Redis
Cluster, and of one queue over three shards on that cluster (SPEC.md 11.2), with one worker
process and with three, side by side, measured the same way (docs/topology.md):

    .venv/bin/python bench/topology.py [--tasks 3000] [--concurrency 8]

Each run enqueues the tasks first (enqueue_many, the `echo` function), then starts one
`dothis worker --burst --pool inline` process (or three) and times from its first finished task to its last
(the worker's start-up is left out). The servers are the Python tests' own fixtures
(python/tests/topology/servers.py): private redis-server processes on loopback, stopped by pid.
The cost of a Sentinel failover is measured by python/tests/topology/test_sentinel.py, which
prints the seconds without progress and the tasks lost.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python" / "tests")]

from topology.servers import Cluster, Group  # noqa: E402

from dothis import Queue  # noqa: E402


def single() -> tuple[Group, str]:
    group = Group("dothis-bench-single-")
    node = group.start([])
    from support import wait_until  # noqa: PLC0415

    from topology.servers import plain  # noqa: PLC0415

    def answers() -> bool:
        try:
            return bool(plain(node.port).ping())
        except Exception:  # noqa: BLE001
            return False

    wait_until(answers, timeout=15)
    return group, f"redis://127.0.0.1:{node.port}/0"


def drain(url: str, name: str, tasks: int, concurrency: int, cluster: bool,
          shards: int | None = None, processes: int = 1) -> float:
    """Tasks per second from the first finished task to the last, with ``processes`` worker
    processes (each `--processes 1`); ``shards``: one logical queue over that many shards."""
    flags = ["--cluster"] if cluster else []
    if shards:
        flags += ["--shards", str(shards)]
    with Queue(name, url, cluster=cluster or None, shards=shards) as queue:
        for start in range(0, tasks, 500):
            queue.enqueue_many([("echo", {"text": str(i)}) for i in range(start, min(tasks, start + 500))])
        keys = [f"{part.name}:succeeded" for part in getattr(queue, "parts", None) or [queue]]
        workers = [subprocess.Popen(
            [sys.executable, "-m", "dothis", "worker", "--url", url, "--queue", name, *flags,
             "--processes", "1", "--burst", "--pool", "inline", "--concurrency", str(concurrency),
             "--log-level", "WARNING", "dothis.examples"],
        ) for _ in range(processes)]  # fmt: skip

        def done() -> int:
            return sum(int(queue.redis.zcard(key)) for key in keys)

        first = None
        while (count := done()) < tasks and any(worker.poll() is None for worker in workers):
            if count and first is None:
                first = (time.monotonic(), count)
            time.sleep(0.005)
        end = time.monotonic()
        for worker in workers:
            worker.wait(timeout=60)
    if first is None:
        raise SystemExit(f"the worker drained nothing on {url}")
    return (tasks - first[1]) / (end - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    options = parser.parse_args()
    group, url = single()
    cluster = Cluster()
    try:
        name = f"bench{uuid.uuid4().hex[:6]}"
        args = (options.tasks, options.concurrency)
        rows = [("one queue, single Redis", drain(url, name, *args, cluster=False))]
        rows.append(("one tagged queue, 3-master cluster",
                     drain(cluster.url, f"{{{name}}}", *args, cluster=True)))
        rows.append(("3-shard queue, 3-master cluster",
                     drain(cluster.url, f"{name}s1", *args, cluster=True, shards=3)))
        rows.append(("one tagged queue, cluster, 3 workers",
                     drain(cluster.url, f"{{{name}p3}}", *args, cluster=True, processes=3)))
        rows.append(("3-shard queue, cluster, 3 workers",
                     drain(cluster.url, f"{name}s3", *args, cluster=True, shards=3, processes=3)))
    finally:
        group.stop()
        cluster.stop()
    print(f"{'topology':<40}{'tasks/s':>10}")
    for label, rate in rows:
        print(f"{label:<40}{rate:>10.0f}")


if __name__ == "__main__":
    main()
