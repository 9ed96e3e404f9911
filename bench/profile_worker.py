"""Profile the dothis worker while it drains a pre-filled queue: py-spy samples and Redis commands.

Run by run.py (full and default modes); alone: python bench/profile_worker.py URL [N] [C]
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"


def _commandstats(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _frame(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    for marker in ("site-packages", "src", "lib"):
        if marker in parts:
            parts = parts[len(parts) - parts[::-1].index(marker):]
            break
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def profile(url: str, main_python: Path, peers_venv: Path, n: int, concurrency: int,
            logdir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(PEERS))
    import redis

    from dothis import Call, Queue

    from common import stop_process, tree_pids

    pyspy = peers_venv / "bin" / "py-spy"
    client = redis.Redis.from_url(url)
    client.flushall()
    queue = Queue("bench", url=url)
    for start in range(0, n, 10_000):
        queue.enqueue_many([Call("noop") for _ in range(min(10_000, n - start))])
    queue.close()
    before = _commandstats(client)
    worker = subprocess.Popen(
        [str(main_python.parent / "dothis"), "worker", "--url", url, "--queue", "bench", "--processes", "1",
         "--concurrency", str(concurrency), "--log-level", "WARNING", "dothis_py"],
        cwd=PEERS, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PEERS), os.environ.get("PYTHONPATH")]))},
        start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    raw = logdir / "dothis-worker-pyspy.txt"
    spy = None
    spy_error = None
    if pyspy.exists():
        time.sleep(0.3)
        spy = subprocess.Popen([str(pyspy), "record", "--pid", str(worker.pid), "--format", "raw",
                                "--rate", "250", "--subprocesses", "--output", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    else:
        spy_error = "py-spy is not installed in bench/.peers-venv"
    started = time.perf_counter()
    while client.llen("bench:pending") + client.llen("bench:executing") > 0:
        if time.perf_counter() - started > 300 or worker.poll() is not None:
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    after = _commandstats(client)
    processes = len(tree_pids(worker.pid))
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            err = "py-spy did not stop"
        if spy.returncode not in (0, None) and not raw.exists():
            spy_error = (err or "").strip().splitlines()[-1:] or ["py-spy failed"]
            spy_error = spy_error[0]
    stop_process(worker)

    calls = {name: (after.get(name, 0) - before.get(name, 0)) / n for name in after}
    calls = {name: v for name, v in calls.items() if v > 0.001 and name not in ("llen", "info|commandstats", "info")}
    # LMOVE runs inside take.lua as well as on its own: commandstats cannot tell them apart
    top_level = {"evalsha", "eval", "blmove", "multi", "exec", "ping", "lrange"}
    round_trips = sum(v for name, v in calls.items() if name in ("evalsha", "eval", "blmove"))

    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if raw.exists():
        for line in raw.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame(f) for f in stack.split(";") if f and not f.startswith("process ")
                      and not f.startswith("thread ")]
            if not frames:
                continue
            total += count
            self_time[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count

    lines = [f"py-spy, {n:,} no-op tasks drained at concurrency {concurrency} in {seconds:.1f} s "
             f"({n / seconds:,.0f}/s; {processes} process(es) in the worker tree; samples of all "
             f"threads and processes, idle waits included).", ""]
    if spy_error:
        lines.append(f"py-spy: {spy_error}")
    if total:
        lines += ["| self % | function (leaf frames) |", "|---|---|"]
        lines += [f"| {100 * c / total:.1f} | {name} |" for name, c in self_time.most_common(15)]
        lines += ["", "| inclusive % | function |", "|---|---|"]
        lines += [f"| {100 * c / total:.1f} | {name} |" for name, c in inclusive.most_common(25)]
    lines += ["", "Redis commands per task during the drain (commands run inside scripts included):", "",
              "| command | per task |", "|---|---|"]
    lines += [f"| {name}{' (top level)' if name in top_level else ''} | {v:.2f} |"
              for name, v in sorted(calls.items(), key=lambda kv: -kv[1])]
    lines += ["", "Calls per task the worker sends (EVALSHA + BLMOVE; many tasks' calls share one "
                  f"write): {round_trips:.2f}"]
    return {
        "n": n, "concurrency": concurrency, "seconds": seconds, "rate": n / seconds,
        "commands_per_task": calls, "round_trips_per_task": round_trips,
        "self": self_time.most_common(30), "inclusive": inclusive.most_common(40),
        "samples": total, "pyspy_error": spy_error, "markdown": "\n".join(lines),
        "raw_profile": str(raw),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(PEERS))
    result = profile(sys.argv[1], Path(sys.executable), BENCH / ".peers-venv",
                     int(sys.argv[2]) if len(sys.argv) > 2 else 10_000,
                     int(sys.argv[3]) if len(sys.argv) > 3 else 16, Path("/tmp"))
    print(result["markdown"])
