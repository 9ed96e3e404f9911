"""Start-up and single-task latency of the producer and the CLI, each next to its raw bound.

    .venv/bin/python bench/startup.py              # ~1 minute on 2 cores
    .venv/bin/python bench/startup.py --quick      # fewer runs, for a smoke test
    .venv/bin/python bench/startup.py --json out.json

The whole-process figures are of the package as a user installs it: a wheel built from the
working tree (python/, as ``pip wheel`` builds it) and installed with pip into a throwaway venv
(``--venv``, by default ``dothis-startup-venv`` in the temporary directory; made, with the
dependencies from PyPI, on the first run and kept for the next ones; ``--fresh-venv`` makes it
again), with the bytecode pip compiles at install. Each of them and its bound run with that venv's
interpreter. The in-process figures (close, round trip) run in this interpreter.

It starts its own redis-server (loopback, free port, no persistence) and one
``dothis worker --pool inline`` serving ``dothis.examples`` (the worker's side as small as it
gets), from the installed venv, and stops both by pid at the end. Every figure is a median;
whole-process figures give wall time and CPU time (user + sys, the child's own accounting:
steadier than wall time on a busy machine). Commands A and B are run in turn (A B A B ...), so a
ratio compares runs made under the same conditions.

- import: ``python -c "import dothis"``; bound ``python -c pass``.
- enqueue --wait: ``dothis enqueue echo text=x --wait`` against the running worker; bound a
  Python script that imports redis-py, SUBSCRIBEs, sends HSET + LPUSH, waits for the message and
  HGETs the value. The script is written as a user would write it: its interpreter's exit
  traverses the heap (tens of ms after ``import redis``), which the ``dothis`` command spares
  itself (cli/common.py, ``Commands``), so the ratio can come out below 1.
- close: ``Queue.close()`` with its results subscription up.
- round trip: ``Queue.enqueue(...).wait()``, one task at a time; bound a redis-py loop sending
  EVALSHA enqueue.lua (the same script and fields), reading the message, HMGET.

The round trip's producer share is dothis's p50 minus the raw loop's p50 (same worker, same
server, blocks of each in turn), and the producer process's CPU time per task next to the raw
loop's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from dothis import Queue
from dothis.store.resources import lua_source

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"
DEFAULT_VENV = Path(tempfile.gettempdir()) / "dothis-startup-venv"
QUEUE = "startup"

# The targets (ms).
TARGETS = {"import": 100.0, "enqueue_wait": 300.0, "close": 1.0, "producer_share_p50": 0.5}

RAW_ENQUEUE_WAIT = """
import sys, uuid, datetime, redis
url, q = sys.argv[1], sys.argv[2]
r = redis.Redis.from_url(url)
sub = r.pubsub()
sub.subscribe(q + ":results")
sub.get_message(timeout=5)
task_id = str(uuid.uuid4())
key = f"{q}:task:{task_id}"
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
pipe = r.pipeline(transaction=False)
pipe.hset(key, mapping={"function": "echo", "state": "pending", "args": '{"text": "x"}',
                        "pending-created": now})
pipe.lpush(q + ":pending", task_id)
pipe.execute()
while True:
    message = sub.get_message(timeout=5)
    if message is None:
        sys.exit("no result")
    if message["type"] == "message" and message["data"] == key.encode():
        break
print(task_id)
print(r.hget(key, "result-value").decode())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, cpu ms) of one whole process; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=60)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def paired(a: list[str], b: list[str], runs: int, env: dict[str, str]) -> dict[str, float]:
    """A and B in turn, after one warm-up each: medians of wall and cpu, and of the ratios."""
    timed_run(a, env)
    timed_run(b, env)
    rows: list[tuple[float, float, float, float]] = []
    for _ in range(runs):
        rows.append((*timed_run(a, env), *timed_run(b, env)))
    return {
        "wall": median([r[0] for r in rows]), "cpu": median([r[1] for r in rows]),
        "bound_wall": median([r[2] for r in rows]), "bound_cpu": median([r[3] for r in rows]),
        "ratio_wall": median([r[0] / r[2] for r in rows]),
        "ratio_cpu": median([r[1] / r[3] for r in rows]),
    }  # fmt: skip


class Installed:
    """The package as a user installs it: a wheel of the working tree, pip-installed (not
    editable) into a venv of its own, whose ``python`` and ``dothis`` the timed commands run."""

    def __init__(self, venv: Path, fresh: bool) -> None:
        self.venv = venv
        self.python = str(venv / "bin" / "python")
        self.dothis = str(venv / "bin" / "dothis")
        if fresh and venv.exists():
            shutil.rmtree(venv)
        if not (venv / "bin" / "python").exists():
            print(f"making {venv} (the dependencies come from PyPI)", file=sys.stderr)
            _check([base_python(), "-m", "venv", str(venv)])
        with tempfile.TemporaryDirectory(prefix="dothis-startup-wheel-") as dist:
            # Built as tests/packaging builds it (the lua/ and schema/ copies included).
            _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", dist, str(PYTHON_DIR)])  # fmt: skip
            (wheel,) = Path(dist).glob("dothis-*.whl")
            pip = [self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            _check([*pip, str(wheel)])  # the dependencies, when the venv lacks any
            _check([*pip, "--force-reinstall", "--no-deps", str(wheel)])  # this tree's code
        self.versions = json.loads(_check([self.python, "-c", VERSIONS]))


VERSIONS = """
import json, sys
from importlib.metadata import PackageNotFoundError, version
def get(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None
names = ("dothis", "redis", "hiredis", "click", "opentelemetry-api", "opentelemetry-sdk")
print(json.dumps({"python": sys.version.split()[0], **{n: get(n) for n in names}}))
"""


def base_python() -> str:
    """The interpreter this one's venv was made from (venvs should not nest)."""
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or sys.executable


def _check(argv: list[str]) -> str:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout)[-800:]}")  # fmt: skip
    return done.stdout


class Servers:
    """A redis-server and one ``dothis worker --pool inline``, stopped by pid."""

    def __init__(self, redis_server: str, env: dict[str, str], dothis: str) -> None:
        self.env = env
        self.dothis = dothis
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.redis = subprocess.Popen(
            [redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.worker: subprocess.Popen[bytes] | None = None
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def start_worker(self) -> None:
        self.worker = subprocess.Popen(
            [self.dothis, "worker", "--url", self.url, "--queue", QUEUE, "--pool", "inline",
             "--log-level", "WARNING", "dothis.examples"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env,
        )  # fmt: skip
        with Queue(QUEUE, self.url) as queue:
            queue.enqueue("echo", text="ready").wait(timeout=60)

    def stop(self) -> None:
        for process in (self.worker, self.redis):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def measure_close(url: str, runs: int) -> float:
    """Queue.close() with the results subscription up (after a wait), in ms."""
    took = []
    for _ in range(runs):
        queue = Queue(QUEUE, url)
        queue.enqueue("echo", text="x").wait(timeout=30)
        started = time.perf_counter()
        queue.close()
        took.append((time.perf_counter() - started) * 1000)
    return median(took)


class RawLoop:
    """One task the way a minimal redis-py producer does it: EVALSHA enqueue.lua (the same
    script and fields as Queue.enqueue), wait for the message on its own subscription, HMGET
    the outcome; one thread."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, protocol=2)
        self.sha = self.client.script_load(lua_source("enqueue"))
        self.sub = self.client.pubsub()
        self.sub.subscribe(f"{QUEUE}:results")
        while self.sub.get_message(timeout=5) is None:
            pass

    def once(self) -> None:
        task_id = str(uuid.uuid4())
        key = f"{QUEUE}:task:{task_id}"
        self.client.execute_command(
            "EVALSHA", self.sha, 3, key, f"{QUEUE}:pending", f"{QUEUE}:scheduled", task_id,
            "back", "1", "0", "function", "echo", "state", "pending", "args", '{"text":"x"}',
            "pending-created", "2026-01-01T00:00:00.000000Z",
        )  # fmt: skip
        expected = key.encode()
        while True:
            message = self.sub.parse_response(block=True)
            if message[0] == b"message" and message[2] == expected:
                break
        self.client.execute_command("HMGET", key, "state", "result", "result-value")

    def close(self) -> None:
        self.sub.close()
        self.client.close()


class DothisLoop:
    """``Queue.enqueue(...).wait()``, one task at a time."""

    def __init__(self, url: str) -> None:
        self.queue = Queue(QUEUE, url)

    def once(self) -> None:
        self.queue.enqueue("echo", text="x").wait(timeout=30)

    def close(self) -> None:
        self.queue.close()


def round_trips(url: str, n: int, blocks: int) -> dict[str, float]:
    """dothis and the raw loop, ``n`` tasks each, in ``blocks`` alternating blocks. Each block
    has only its own subscription up (a listener of the other loop would wake on every message
    and take CPU from the loop being timed), and starts with a few untimed tasks."""
    times: dict[str, list[float]] = {"dothis": [], "raw": []}
    cpu: dict[str, float] = {"dothis": 0.0, "raw": 0.0}
    per_block = max(1, n // blocks)
    loops: tuple[tuple[str, Callable[[str], Any]], ...] = (("dothis", DothisLoop), ("raw", RawLoop))
    for _ in range(blocks):
        for name, make in loops:
            loop = make(url)
            for _ in range(20):  # warm-up
                loop.once()
            started_cpu = time.process_time()
            for _ in range(per_block):
                started = time.perf_counter()
                loop.once()
                times[name].append((time.perf_counter() - started) * 1000)
            cpu[name] += (time.process_time() - started_cpu) * 1000
            loop.close()
    count = per_block * blocks
    return {
        "p50": median(times["dothis"]), "p99": percentile(times["dothis"], 0.99),
        "raw_p50": median(times["raw"]), "raw_p99": percentile(times["raw"], 0.99),
        "cpu_per_task": cpu["dothis"] / count, "raw_cpu_per_task": cpu["raw"] / count,
        "n": count,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each whole process")
    parser.add_argument("--n", type=int, default=4000, help="round trips of each loop")
    parser.add_argument("--quick", action="store_true", help="5 runs, 1000 round trips")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument(
        "--venv",
        type=Path,
        default=DEFAULT_VENV,
        help=f"the venv the package is installed into (default {DEFAULT_VENV})",
    )
    parser.add_argument("--fresh-venv", action="store_true", help="make that venv again")
    options = parser.parse_args()
    runs, n = (5, 1000) if options.quick else (options.runs, options.n)

    installed = Installed(options.venv, options.fresh_venv)
    # The timed commands see no settings of dothis's, nothing on the path that would shadow the
    # installed package, and the bytecode caches pip wrote at install.
    dropped = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONPYCACHEPREFIX", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DOTHIS_") and k not in dropped}  # fmt: skip
    servers = Servers(options.redis_server, env, installed.dothis)
    try:
        figures: dict[str, Any] = {"runs": runs, "installed": installed.versions}
        print(f"measuring: {runs} runs of each command, {n} round trips; installed in "
              f"{installed.venv}: {installed.versions}", file=sys.stderr)  # fmt: skip
        figures.update(whole_processes(installed.python, installed.dothis, servers, runs, env))
        figures["close"] = measure_close(servers.url, max(runs, 20))
        figures["round_trip"] = round_trips(servers.url, n, blocks=10)
    finally:
        servers.stop()
    report(figures)
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=2))


def whole_processes(
    python: str, dothis: str, servers: Servers, runs: int, env: dict[str, str]
) -> dict[str, Any]:
    """The figures of whole processes, each next to its bound run by the same interpreter."""
    bare = [python, "-c", "pass"]
    figures = {
        "import": paired([python, "-c", "import dothis"], bare, runs, env),
        "import_cli": paired([python, "-c", "import dothis.cli"], bare, runs, env),
        "import_redis": paired([python, "-c", "import redis"], bare, runs, env),
    }
    servers.start_worker()
    figures["enqueue_wait"] = paired(
        [dothis, "enqueue", "--url", servers.url, "--queue", QUEUE, "echo", "text=x", "--wait"],
        [python, "-c", RAW_ENQUEUE_WAIT, servers.url, QUEUE], runs, env,
    )  # fmt: skip
    return figures


def report(figures: dict[str, Any]) -> None:
    def verdict(value: float, target: float) -> str:
        return f"{'met' if value < target else 'NOT met'} (< {target:g})"

    installed = ", ".join(f"{name} {version}" for name, version in figures["installed"].items()
                          if version)  # fmt: skip
    print(f"\ninstalled from a wheel, as a user gets it: {installed}")
    print(f"medians of {figures['runs']} runs; wall ms (cpu ms); ratio = dothis / bound, "
          "taken run by run\n")  # fmt: skip
    print("| figure | dothis | bound | ratio wall (cpu) | target ms |")
    print("| --- | --- | --- | --- | --- |")
    rows = [
        ("import dothis", "import", "python -c pass", TARGETS["import"]),
        ("import dothis.cli", "import_cli", "python -c pass", None),
        ("import redis (redis-py alone)", "import_redis", "python -c pass", None),
        ("dothis enqueue --wait", "enqueue_wait", "raw redis-py script", TARGETS["enqueue_wait"]),
    ]
    for label, key, bound, target in rows:
        f = figures[key]
        print(f"| {label} | {f['wall']:.1f} ({f['cpu']:.1f}) | {bound}: {f['bound_wall']:.1f} "
              f"({f['bound_cpu']:.1f}) | {f['ratio_wall']:.2f} ({f['ratio_cpu']:.2f}) | "
              f"{verdict(f['wall'], target) if target else '-'} |")  # fmt: skip
    print(f"| Queue.close() | {figures['close']:.3f} | - | - | "
          f"{verdict(figures['close'], TARGETS['close'])} |")  # fmt: skip
    rt = figures["round_trip"]
    share = rt["p50"] - rt["raw_p50"]
    print(f"\nround trip, one task at a time, {rt['n']} each, `dothis worker --pool inline`:\n")
    print("| loop | p50 ms | p99 ms | producer CPU ms per task |")
    print("| --- | --- | --- | --- |")
    print(f"| dothis Queue.enqueue().wait() | {rt['p50']:.3f} | {rt['p99']:.3f} | "
          f"{rt['cpu_per_task']:.3f} |")  # fmt: skip
    print(f"| raw redis-py (EVALSHA, message, HMGET) | {rt['raw_p50']:.3f} | {rt['raw_p99']:.3f} "
          f"| {rt['raw_cpu_per_task']:.3f} |")  # fmt: skip
    print(f"\nproducer share of the p50 (dothis - raw): {share:.3f} ms, "
          f"{verdict(share, TARGETS['producer_share_p50'])}; "
          f"ratio p50 {rt['p50'] / rt['raw_p50']:.2f}, CPU per task "
          f"{rt['cpu_per_task'] / rt['raw_cpu_per_task']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
