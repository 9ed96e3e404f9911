"""Shared measurement code for the Python drivers (one driver file per system in this folder).

A driver is run as ``<python> bench/peers/<system>.py --url URL --figure FIGURE [--n N] [-c C]``
and prints one JSON object on its last line of stdout. It only needs redis-py, so the same code
runs in the project's environment (dothis, raw) and in the peers' environment.

A driver subclasses ``System`` and fills in what its library offers:

- ``enqueue_one(i)`` / ``enqueue_bulk(n)``: producer side (bulk may fall back to one at a time);
- ``worker_argv(concurrency)``: the command that starts one worker process on the queue;
- ``done(n)``: how many tasks have a result visible to a producer (cheap: one or two commands);
- ``roundtrip(i)``: enqueue one task and wait for its result with the library's own wait call.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
DRAIN_TIMEOUT = float(os.environ.get("BENCH_DRAIN_TIMEOUT", "240"))


# -- process helpers -------------------------------------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc; no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_bytes(pid: int) -> int:
    """Memory of a process tree (a worker and its children), in bytes: the sum of each member's
    PSS (proportional set size), so pages that forked children share are counted once."""
    total = 0
    for member in tree_pids(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def process_count(pid: int) -> int:
    return len(tree_pids(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process tree (live members only)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in tree_pids(pid):
        try:
            with open(f"/proc/{member}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def stop_process(proc: subprocess.Popen[Any], grace: float = 8.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


# -- Redis-side figures ----------------------------------------------------------------------------


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def key_memory(client: redis.Redis) -> tuple[int, int]:
    """(number of keys, sum of MEMORY USAGE over every key), SAMPLES 0 = exact."""
    total, count = 0, 0
    batch: list[bytes] = []

    def flush() -> None:
        nonlocal total
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
        total += sum(int(v or 0) for v in pipe.execute())
        batch.clear()

    for key in client.scan_iter(count=1000):
        batch.append(key)
        count += 1
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    return count, total


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


# -- the system interface --------------------------------------------------------------------------


class System:
    """One task queue, driven through its own Python API."""

    name = "system"
    #: concurrency of one worker process that the system recommends (its default, or its docs')
    recommended = 1
    #: extra environment for the worker process
    worker_env: dict[str, str] = {}

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.raw = redis.Redis.from_url(url)

    # producer side
    def setup(self) -> None:
        """Connect producer objects (called after FLUSHALL, before any timing)."""

    def enqueue_one(self, i: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> None:
        for i in range(n):
            self.enqueue_one(i)

    def roundtrip(self, i: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    # worker side
    def worker_argv(self, concurrency: int) -> list[str]:
        raise NotImplementedError

    def worker_cwd(self) -> str:
        return str(HERE)

    def done(self, n: int) -> int:
        """How many of the n queued tasks have a result a producer can see."""
        raise NotImplementedError

    def sleep_task(self, seconds: float, n: int) -> None:
        raise NotImplementedError


def start_worker(system: System, concurrency: int, log_path: str | None = None) -> subprocess.Popen[Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.update(system.worker_env)
    log = open(log_path or os.devnull, "wb")
    return subprocess.Popen(
        system.worker_argv(concurrency),
        cwd=system.worker_cwd(),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_done(system: System, n: int, proc: subprocess.Popen[Any], started: float,
              poll: float = 0.002, total: int = 0) -> tuple[float, float, int]:
    """Poll until n of ``total`` results are visible. Returns (t_end, t_first, count_at_first)."""
    first_t, first_count = None, 0
    deadline = started + DRAIN_TIMEOUT
    last_count, last_change = -1, started
    while True:
        count = system.done(total or n)
        now = time.perf_counter()
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change > 30:
            raise RuntimeError(f"no progress for 30 s at {count}/{n} tasks")
        if count and first_t is None:
            first_t, first_count = now, count
        if count >= n:
            return now, first_t or now, first_count
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} after {count}/{n} tasks")
        if now > deadline:
            raise RuntimeError(f"drain timed out after {DRAIN_TIMEOUT:.0f} s at {count}/{n} tasks")
        time.sleep(poll)


def wait_ready(system: System, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """Start a worker on an empty queue and wait until it has run one task."""
    system.enqueue_one(-1)
    deadline = time.perf_counter() + timeout
    while system.done(1) < 1:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} before running a task")
        if time.perf_counter() > deadline:
            raise RuntimeError("worker did not run a first task within 30 s")
        time.sleep(0.01)


# -- figures ---------------------------------------------------------------------------------------


def fig_enqueue(system: System, n: int) -> dict[str, Any]:
    system.setup()
    system.enqueue_one(-2)  # warm the connection and any script cache outside the timing
    system.raw.flushall()
    system.setup()
    system.enqueue_one(-2)
    started = time.perf_counter()
    for i in range(n):
        system.enqueue_one(i)
    seconds = time.perf_counter() - started
    return {"rate": n / seconds, "seconds": seconds, "n": n}


def fig_bulk(system: System, n: int) -> dict[str, Any]:
    system.setup()
    system.enqueue_one(-2)
    system.raw.flushall()
    system.setup()
    system.raw.execute_command("MEMORY", "PURGE")
    mem0 = used_memory(system.raw)
    keys0 = system.raw.dbsize()
    started = time.perf_counter()
    system.enqueue_bulk(n)
    seconds = time.perf_counter() - started
    system.raw.execute_command("MEMORY", "PURGE")
    mem1 = used_memory(system.raw)
    keys, usage = key_memory(system.raw)
    return {
        "rate": n / seconds,
        "seconds": seconds,
        "n": n,
        "memory_per_task": (mem1 - mem0) / n,
        "key_usage_per_task": usage / n,
        "keys_per_task": (keys - keys0) / n,
    }


def fig_drain(system: System, n: int, concurrency: int, log_path: str | None = None,
              prefill: bool = True, target: int = 0) -> dict[str, Any]:
    """Pre-fill n tasks, start a worker, time until ``target`` (default: all n) are done."""
    target = target or n
    prefill_rate = None
    if prefill:
        system.raw.flushall()
        system.setup()
        t0 = time.perf_counter()
        system.enqueue_bulk(n)
        prefill_rate = n / (time.perf_counter() - t0)
        system.raw.execute_command("MEMORY", "PURGE")
    memory = used_memory(system.raw)
    cpu0 = redis_cpu(system.raw)
    cmd0 = redis_commands(system.raw)
    started = time.perf_counter()
    proc = start_worker(system, concurrency, log_path)
    try:
        end, first, first_count = wait_done(system, target, proc, started, total=n)
        cpu1 = redis_cpu(system.raw)
        cmd1 = redis_commands(system.raw)
        worker_cpu = cpu_seconds(proc.pid)
        rss = rss_bytes(proc.pid)
        processes = process_count(proc.pid)
    finally:
        stop_process(proc)
    steady = (target - first_count) / (end - first) if end > first else float("nan")
    n_total, n = n, target
    return {
        "queued": n_total,
        "prefill_rate": prefill_rate,
        "used_memory_queued": memory,
        "rate": n / (end - started),
        "steady_rate": steady,
        "seconds": end - started,
        "startup_seconds": first - started,
        "n": n,
        "concurrency": concurrency,
        "redis_cpu_per_task_us": (cpu1 - cpu0) / n * 1e6,
        "redis_commands_per_task": (cmd1 - cmd0) / n,
        "worker_cpu_per_task_us": worker_cpu / n * 1e6,
        "worker_rss": rss,
        "worker_processes": processes,
    }


def fig_latency(system: System, n: int, concurrency: int = 1,
                log_path: str | None = None) -> dict[str, Any]:
    system.raw.flushall()
    system.setup()
    proc = start_worker(system, concurrency, log_path)
    try:
        wait_ready(system, proc)
        for i in range(min(20, max(2, n // 5))):  # warm-up
            system.roundtrip(-100 - i)
        samples = []
        for i in range(n):
            started = time.perf_counter()
            system.roundtrip(i)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        stop_process(proc)
    samples.sort()
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "mean_ms": statistics.fmean(samples),
        "n": n,
        "concurrency": concurrency,
    }


def main(factory: type[System]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--figure", required=True,
                        choices=["enqueue", "bulk", "drain", "latency", "sleep", "info"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("-c", "--concurrency", type=int, default=0)
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--log", default=None)
    parser.add_argument("--target", type=int, default=0, help="drain: stop timing after this many")
    opts = parser.parse_args()
    system = factory(opts.url, opts.queue)
    concurrency = opts.concurrency or system.recommended
    try:
        if opts.figure == "info":
            result: dict[str, Any] = {"recommended": system.recommended}
        elif opts.figure == "enqueue":
            result = fig_enqueue(system, opts.n)
        elif opts.figure == "bulk":
            result = fig_bulk(system, opts.n)
        elif opts.figure == "drain":
            result = fig_drain(system, opts.n, concurrency, opts.log, target=opts.target)
        elif opts.figure == "latency":
            result = fig_latency(system, opts.n, opts.concurrency or 1, opts.log)
        else:  # sleep: n sleep tasks at once, pre-filled
            system.raw.flushall()
            system.setup()
            system.sleep_task(opts.sleep, opts.n)
            result = fig_drain(system, opts.n, concurrency, opts.log, prefill=False)
            result["ideal_seconds"] = opts.sleep * -(-opts.n // concurrency)
    finally:
        system.close()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


class Cursor:
    """Counts finished tasks of systems that keep one result key per task and no counter.

    Walks the ids in enqueue order in pipelined batches, from the first one not yet seen done;
    ``ready(reply)`` tells whether a task's reply (to ``command`` on its key) means done.
    """

    def __init__(self, raw: redis.Redis, command: str = "EXISTS",
                 ready: Any = lambda reply: bool(reply)) -> None:
        self.raw, self.command, self.ready = raw, command, ready
        self.keys: list[str] = []
        self.position = 0

    def reset(self) -> None:
        self.keys, self.position = [], 0

    def add(self, key: str) -> None:
        self.keys.append(key)

    def count(self) -> int:
        batch = 4  # grows while every key checked is done, so a poll costs few commands
        while self.position < len(self.keys):
            chunk = self.keys[self.position:self.position + batch]
            pipe = self.raw.pipeline(transaction=False)
            for key in chunk:
                pipe.execute_command(self.command, key)
            done = 0
            for reply in pipe.execute():
                if not self.ready(reply):
                    break
                done += 1
            self.position += done
            if done < len(chunk):
                break
            batch = min(batch * 4, 1024)
        return self.position


def worker_entry(run: Any) -> None:
    """``python <driver>.py worker C``: run the system's worker in this process."""
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        run(int(sys.argv[2]))
        sys.exit(0)
