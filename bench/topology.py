"""Drain rate of one queue on a single Redis and of one hash-tagged queue on a three-master Redis
Cluster, side by side, measured the same way (docs/topology.md):

    .venv/bin/python bench/topology.py [--tasks 3000] [--concurrency 8]

Each run enqueues the tasks first (enqueue_many, the `echo` function), then starts one
`dothis worker --burst --pool inline` process and times from its first finished task to its last
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


def drain(url: str, name: str, tasks: int, concurrency: int, cluster: bool) -> float:
    """Tasks per second from the first finished task to the last."""
    flags = ["--cluster"] if cluster else []
    with Queue(name, url, cluster=cluster or None) as queue:
        for start in range(0, tasks, 500):
            queue.enqueue_many([("echo", {"text": str(i)}) for i in range(start, min(tasks, start + 500))])
        worker = subprocess.Popen(
            [sys.executable, "-m", "dothis", "worker", "--url", url, "--queue", name, *flags,
             "--processes", "1", "--burst", "--pool", "inline", "--concurrency", str(concurrency),
             "--log-level", "WARNING", "dothis.examples"],
        )  # fmt: skip
        key, first = f"{name}:succeeded", None
        while (done := int(queue.redis.zcard(key))) < tasks and worker.poll() is None:
            if done and first is None:
                first = (time.monotonic(), done)
            time.sleep(0.005)
        end = time.monotonic()
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
        one = drain(url, name, options.tasks, options.concurrency, cluster=False)
        tagged = drain(cluster.url, f"{{{name}}}", options.tasks, options.concurrency, cluster=True)
    finally:
        group.stop()
        cluster.stop()
    print(f"{'topology':<36}{'tasks/s':>10}")
    print(f"{'one queue, single Redis':<36}{one:>10.0f}")
    print(f"{'one tagged queue, 3-master cluster':<36}{tagged:>10.0f}")


if __name__ == "__main__":
    main()
