"""Side-by-side benchmark of dothis, its peers and the raw Redis bound, against one redis-server.

    .venv/bin/python bench/run.py            # everything, about 15 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # smoke test: dothis + raw loops, small N, no installs
    .venv/bin/python bench/run.py --full     # adds the 10^6-task figures (much longer)

See bench/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
MAIN_PY = Path(sys.executable)
PEERS_VENV = BENCH / ".peers-venv"
ARQ_VENV = BENCH / ".peers-venv-arq"
NODE_DIR = BENCH / "node"
NODE_CLIENT = ROOT / "node-client"

# pip requirement and import name of each Python peer; arq pins redis<6, which the others outgrew,
# so it gets an environment of its own.
PY_PEERS: dict[str, tuple[str, str, Path]] = {
    "rq": ("rq", "rq", PEERS_VENV),
    "arq": ("arq", "arq", ARQ_VENV),
    "celery": ("celery[redis]", "celery", PEERS_VENV),
    "huey": ("huey", "huey", PEERS_VENV),
    "dramatiq": ("dramatiq[redis]", "dramatiq", PEERS_VENV),
    "saq": ("saq", "saq", PEERS_VENV),
    "taskiq": ("taskiq-redis", "taskiq_redis", PEERS_VENV),
    "rpqueue": ("rpqueue", "rpqueue", PEERS_VENV),
}
NODE_PEERS = ("bullmq", "bee-queue")
# What the peers' environment needs besides the peers: pip requirement -> import name (None: a
# command). redis-py is there for the drivers themselves (common.py), since not every peer pulls
# it in (huey does not).
TOOLS = {"matplotlib": "matplotlib", "py-spy": None, "hiredis": "hiredis", "redis": "redis"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- redis-server ----------------------------------------------------------------------------------


class RedisServer:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="dothis-bench-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--maxmemory-policy", "noeviction",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, check=True).stdout

    def version(self) -> str:
        for line in self.cli("INFO", "server").splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- installs --------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    """The most telling line of an error output: the last one naming an error, else the last."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "error" in line) and not line.startswith(("at ", "File ")):
            return line[:240]
    return lines[-1][:240] if lines else "no output"


def base_python() -> str:
    """The interpreter the project's .venv was made from (venvs should not nest)."""
    out = _run([str(MAIN_PY), "-c", "import sys; print(sys.base_prefix)"]).stdout.strip()
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3"):
        candidate = Path(out) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return shutil.which("python3") or sys.executable


def ensure_venv(venv: Path) -> str | None:
    if (venv / "bin" / "python").exists():
        return None
    proc = _run([base_python(), "-m", "venv", str(venv)])
    return None if proc.returncode == 0 else f"venv: {last_line(proc.stderr)}"


def importable(venv: Path, module: str) -> bool:
    python = venv / "bin" / "python"
    return python.exists() and _run([str(python), "-c", f"import {module}"]).returncode == 0


def install_peers(wanted: list[str]) -> dict[str, str]:
    """Install what is missing; returns {system: reason} for what could not be installed."""
    errors: dict[str, str] = {}
    for venv in {PY_PEERS[name][2] for name in wanted if name in PY_PEERS} | {PEERS_VENV}:
        problem = ensure_venv(venv)
        if problem:
            for name in wanted:
                if name in PY_PEERS and PY_PEERS[name][2] == venv:
                    errors[name] = problem
    tools = [t for t, m in TOOLS.items()
             if (m and not importable(PEERS_VENV, m)) or (m is None and not (PEERS_VENV / "bin" / t).exists())]
    if tools and (PEERS_VENV / "bin" / "pip").exists():
        log(f"installing into {PEERS_VENV.name}: {' '.join(tools)}")
        _run([str(PEERS_VENV / "bin" / "pip"), "install", "-q", *tools, "psutil"])
    for name in wanted:
        if name not in PY_PEERS or name in errors:
            continue
        requirement, module, venv = PY_PEERS[name]
        if importable(venv, module):
            continue
        log(f"installing {requirement} into {venv.name}")
        extra = ["hiredis"] if venv != PEERS_VENV else []
        proc = _run([str(venv / "bin" / "pip"), "install", "-q", requirement, *extra])
        if proc.returncode != 0 or not importable(venv, module):
            errors[name] = f"install failed: {last_line(proc.stderr or proc.stdout)}"
    node_wanted = [name for name in wanted if name in NODE_PEERS]
    if node_wanted and not (NODE_DIR / "node_modules" / "bullmq").exists():
        if shutil.which("npm") is None:
            for name in node_wanted:
                errors[name] = "install failed: npm not found"
        else:
            log("installing bench/node (npm ci)")
            proc = _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR)
            if proc.returncode != 0:
                for name in node_wanted:
                    errors[name] = f"install failed: {last_line(proc.stderr)}"
    return errors


def build_node_client(required: bool) -> str | None:
    """Build node-client/dist when it is missing (or always, outside quick mode)."""
    dist = NODE_CLIENT / "dist" / "esm" / "index.js"
    if not required:
        return None if dist.exists() else "node-client/dist not built (cd node-client && npm run build)"
    if shutil.which("npm") is None:
        return None if dist.exists() else "npm not found"
    if not (NODE_CLIENT / "node_modules").exists():
        proc = _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_CLIENT)
        if proc.returncode != 0:
            return f"npm ci failed: {last_line(proc.stderr)}"
    proc = _run(["npm", "run", "build"], cwd=NODE_CLIENT)
    if proc.returncode != 0 and not dist.exists():
        return f"build failed: {last_line(proc.stderr or proc.stdout)}"
    return None


# -- running drivers -------------------------------------------------------------------------------


@dataclass
class Driver:
    key: str
    label: str
    argv: list[str]
    figures: tuple[str, ...]
    recommended: int = 1
    notes: str = ""
    env: dict[str, str] = field(default_factory=dict)


def python_driver(key: str, label: str, venv_python: Path, script: str, figures: tuple[str, ...],
                  notes: str = "", env: dict[str, str] | None = None) -> Driver:
    return Driver(key, label, [str(venv_python), str(PEERS / script)], figures, notes=notes,
                  env=env or {})


def node_driver(key: str, label: str, script: str, figures: tuple[str, ...], notes: str = "") -> Driver:
    return Driver(key, label, ["node", str(PEERS / script)], figures, notes=notes)


class Runner:
    def __init__(self, server: RedisServer, reps: int, logdir: Path) -> None:
        self.server = server
        self.reps = reps
        self.logdir = logdir
        self.env = dict(os.environ)
        self.env["BENCH_DOTHIS_BIN"] = str(MAIN_PY.parent / "dothis")
        self.env.pop("DOTHIS_REDIS_URL", None)

    def once(self, driver: Driver, figure: str, n: int, concurrency: int = 0,
             extra: list[str] | None = None, timeout: float = 300) -> dict[str, Any]:
        worker_log = self.logdir / f"{driver.key}-{figure}-worker.log"
        argv = [*driver.argv, "--url", self.server.url, "--figure", figure, "--n", str(n),
                "--log", str(worker_log)]
        if concurrency:
            argv += ["-c", str(concurrency)]
        argv += extra or []
        env = {**self.env, **driver.env}
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                                  cwd=PEERS, start_new_session=True)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"timed out after {timeout:.0f} s") from error
        with open(self.logdir / f"{driver.key}.log", "a") as handle:
            handle.write(f"$ {' '.join(argv)}\n{proc.stderr}\n{proc.stdout}\n")
        if proc.returncode != 0:
            raise RuntimeError(last_line(proc.stderr or proc.stdout))
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def median(self, driver: Driver, figure: str, n: int, concurrency: int = 0,
               extra: list[str] | None = None, reps: int | None = None,
               timeout: float = 300) -> dict[str, Any]:
        runs = []
        for _ in range(reps or self.reps):
            runs.append(self.once(driver, figure, n, concurrency, extra, timeout))
        return median_of(runs)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": len(runs)}
    for name in runs[0]:
        values = [run.get(name) for run in runs]
        numbers = [v for v in values if isinstance(v, int | float) and v == v]
        out[name] = statistics.median(numbers) if numbers else values[0]
    out["runs"] = runs
    return out


# -- redis-benchmark -------------------------------------------------------------------------------


def redis_benchmark(server: RedisServer, requests: int, reps: int) -> dict[str, Any]:
    """requests/s of the commands a task needs, without (-P 1) and with (-P 100) pipelining."""
    if shutil.which("redis-benchmark") is None:
        return {"error": "redis-benchmark not found"}
    server.cli("FLUSHALL")
    sha = server.cli("SCRIPT", "LOAD", "return 1").strip()
    # LMOVE rotates one list onto itself, so it never runs dry
    server.cli("RPUSH", "bench:rot", *[f"id-{i}" for i in range(1000)])
    commands = {
        "HSET": ["HSET", "bench:task:__rand_int__", "state", "pending"],
        "LPUSH": ["LPUSH", "bench:list", "11111111-2222-2222-2222-333333333333"],
        "LMOVE": ["LMOVE", "bench:rot", "bench:rot", "RIGHT", "LEFT"],
        "RPOPLPUSH": ["RPOPLPUSH", "bench:rot", "bench:rot"],
        "EVALSHA": ["EVALSHA", sha, "0"],
    }
    out: dict[str, Any] = {}
    for name, command in commands.items():
        for pipeline in (1, 100):
            rates = []
            for _ in range(reps):
                proc = _run(["redis-benchmark", "-p", str(server.port), "-n", str(requests),
                             "-c", "50", "-P", str(pipeline), "-r", "100000", "--csv", *command])
                rows = [line for line in proc.stdout.splitlines() if line and not line.startswith('"test"')]
                try:
                    rates.append(float(rows[-1].split(",")[1].strip('"')))
                except (IndexError, ValueError):
                    out[f"{name} P{pipeline}"] = {"error": last_line(proc.stderr or proc.stdout)}
                    break
            else:
                out[f"{name} P{pipeline}"] = {"rate": statistics.median(rates), "runs": rates}
            if name == "LPUSH":
                server.cli("DEL", "bench:list")
    server.cli("FLUSHALL")
    return out


# -- the plan --------------------------------------------------------------------------------------


@dataclass
class Sizes:
    enqueue: int
    bulk: int
    drain: int
    latency: int
    soak: int
    sweep: int
    raw_step: int
    raw_batch: int
    benchmark: int
    depths: tuple[int, ...]
    depth_sample: int
    sleepers: int


QUICK = Sizes(enqueue=2000, bulk=2000, drain=2000, latency=100, soak=0, sweep=0, raw_step=2000,
              raw_batch=2000, benchmark=10_000, depths=(), depth_sample=0, sleepers=0)
DEFAULT = Sizes(enqueue=5000, bulk=20_000, drain=5000, latency=500, soak=50_000, sweep=4000,
                raw_step=5000, raw_batch=20_000, benchmark=100_000, depths=(10_000, 100_000),
                depth_sample=5000, sleepers=5000)
FULL = Sizes(**{**DEFAULT.__dict__, "soak": 1_000_000, "depths": (10_000, 100_000, 1_000_000)})

# Per-peer sizes for the slow ones (tasks per figure), so that no single peer eats the time
# budget: rq forks a process per job, celery enqueues a few hundred tasks/s, and the round trips
# of arq, saq, taskiq and huey are set by their polling intervals (0.1 to 1 s).
PEER_SIZES: dict[str, dict[str, int]] = {
    "rq": {"enqueue": 1000, "bulk": 2000, "drain": 120, "latency": 50},
    "celery": {"enqueue": 1000, "bulk": 1000, "drain": 1000, "latency": 200},
    "arq": {"drain": 1000, "latency": 5},
    "saq": {"drain": 2000, "latency": 5},
    "taskiq": {"drain": 500, "latency": 5},
    "huey": {"drain": 3000, "latency": 50},
    "dramatiq": {"drain": 800, "latency": 100},
    "rpqueue": {"drain": 3000, "latency": 100},
}


def bytecode_as_installed(src: Path) -> None:
    """Start dothis as an installed package starts: with the bytecode caches pip writes at install.
    The package measured is imported from source (the repository's python/src, or a --commit
    snapshot), and with PYTHONDONTWRITEBYTECODE set (some environments set it) every worker start
    would compile its modules again, a cost no installed peer pays. So the caches are written once
    here (``__pycache__``, ignored by git) and the drivers run without that setting."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    compileall.compile_dir(str(src / "dothis"), quiet=1)


def plan_peers(sizes: Sizes, quick: bool) -> list[Driver]:
    py_main = MAIN_PY
    drivers = [python_driver("dothis", "dothis (Python)", py_main, "dothis_py.py",
                             ("enqueue", "bulk", "drain", "latency"))]
    # The same worker tuned for short tasks (no timeouts, no crash isolation), and on every core.
    drivers.append(python_driver("dothis-tuned", "dothis, --pool inline --prefetch 100", py_main,
                                 "dothis_py.py", ("drain",),
                                 env={"DOTHIS_BENCH_WORKER_ARGS": "--pool inline --prefetch 100"}))
    drivers.append(python_driver("dothis-cores", f"dothis, --processes default ({os.cpu_count()})",
                                 py_main, "dothis_py.py", ("drain",),
                                 env={"BENCH_DOTHIS_PROCESSES": ""}))
    if (NODE_CLIENT / "dist" / "esm" / "index.js").exists() or not quick:
        drivers.append(node_driver("dothis-node", "dothis (Node producer)", "dothis_node.mjs",
                                   ("enqueue", "bulk", "latency")))
    if quick:
        return drivers
    all_figures = ("enqueue", "bulk", "drain", "latency")
    for name, (_, _, venv) in PY_PEERS.items():
        drivers.append(python_driver(name, name, venv / "bin" / "python", f"{name}_peer.py", all_figures))
    for name in NODE_PEERS:
        drivers.append(node_driver(name, name, f"{name.replace('-', '_')}_peer.mjs", all_figures))
    return drivers


def try_figure(results: dict[str, Any], key: str, figure: str, thunk: Callable[[], dict[str, Any]]) -> None:
    started = time.time()
    try:
        results.setdefault(key, {})[figure] = thunk()
        log(f"  {key:<12} {figure:<14} {summary(results[key][figure])}  ({time.time() - started:.0f} s)")
    except Exception as error:  # noqa: BLE001  (a failing system is a row, not an abort)
        results.setdefault(key, {})[figure] = {"error": str(error) or type(error).__name__}
        log(f"  {key:<12} {figure:<14} error: {error}  ({time.time() - started:.0f} s)")


def summary(result: dict[str, Any]) -> str:
    parts = []
    for name in ("rate", "steady_rate", "p50_ms", "p99_ms", "memory_per_task", "redis_cpu_per_task_us"):
        if isinstance(result.get(name), int | float):
            parts.append(f"{name}={result[name]:.4g}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke test: dothis + raw, small N, no installs")
    mode.add_argument("--full", action="store_true", help="add the 10^6-task figures")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 3; quick 1)")
    parser.add_argument("--only", default="", help="comma-separated systems to run (e.g. dothis,rq)")
    parser.add_argument("--no-install", action="store_true", help="never install peers")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling the dothis worker")
    parser.add_argument("--merge", default="",
                        help="start from the results of an earlier run (its JSON) and replace only "
                             "the systems run now (use with --only)")
    parser.add_argument("--commit", default="",
                        help="measure dothis as committed at this revision (python/src, lua, schema "
                             "exported to a temporary folder) instead of the working tree")
    parser.add_argument("--dothis-concurrency", type=int, default=0,
                        help="skip the sweep and use this concurrency for dothis")
    opts = parser.parse_args()
    sizes = QUICK if opts.quick else FULL if opts.full else DEFAULT
    reps = opts.reps or (1 if opts.quick else 3)
    mode_name = "quick" if opts.quick else "full" if opts.full else "default"
    only = {name.strip() for name in opts.only.split(",") if name.strip()}
    started = time.time()

    git = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = bool(_run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "python/src", "lua",
                       "schema", "node-client/src"]).stdout.strip())
    measured = f"working tree at {git}{' with uncommitted changes' if dirty else ''}"
    source = ROOT / "python" / "src"  # the dothis package measured
    if opts.commit:
        snapshot = Path(tempfile.mkdtemp(prefix="dothis-bench-src-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", opts.commit, "python/src", "lua",
                                  "schema"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(snapshot / "python" / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
        sys.path.insert(0, str(snapshot / "python" / "src"))
        source = snapshot / "python" / "src"
        rev = _run(["git", "-C", str(ROOT), "rev-parse", "--short", opts.commit]).stdout.strip()
        measured = f"commit {rev} (Python package, scripts and node-client)"
        if not opts.quick and (NODE_CLIENT / "node_modules").exists():
            # the Node producer too, built from the same revision with the current node_modules
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", opts.commit, "node-client"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive, check=True)
            (snapshot / "node-client" / "node_modules").symlink_to(NODE_CLIENT / "node_modules")
            build = _run(["npm", "run", "build"], cwd=snapshot / "node-client")
            if build.returncode == 0:
                os.environ["BENCH_NODE_CLIENT"] = str(snapshot / "node-client")
            else:
                measured += f"; node-client build at {rev} failed, using node-client/dist as built"
    log(f"dothis measured: {measured}")
    bytecode_as_installed(source)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logdir = RESULTS / f"logs-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)

    drivers = plan_peers(sizes, opts.quick)
    if only:
        drivers = [d for d in drivers if d.key in only or d.key.split("-")[0] in only]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    merged_meta: dict[str, Any] = {}
    if opts.merge:
        previous = json.loads(Path(opts.merge).read_text())
        results, merged_meta = previous["results"], previous["meta"]
        for driver in drivers:
            results.pop(driver.key, None)

    if not opts.quick:
        if not opts.no_install:
            errors.update(install_peers([d.key for d in drivers]))
        problem = None if os.environ.get("BENCH_NODE_CLIENT") else build_node_client(
            required=not opts.quick and not opts.no_install)
        if problem:
            errors["dothis-node"] = problem
    elif not (NODE_CLIENT / "dist" / "esm" / "index.js").exists():
        log("node-client/dist is missing: no Node rows in quick mode")

    server = RedisServer()
    log(f"redis-server {server.version()} on {server.url} (no persistence); mode {mode_name}, "
        f"{reps} repetition(s) per figure")
    runner = Runner(server, reps, logdir)
    meta = {
        "mode": mode_name, "reps": reps, "redis": server.version(),
        "python": platform.python_version(), "node": _run(["node", "--version"]).stdout.strip()
        if shutil.which("node") else None,
        "cpus": os.cpu_count(), "machine": platform.machine(), "kernel": platform.release(),
        "sizes": sizes.__dict__, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "dothis_measured": measured, "peer_sizes": {} if opts.quick else PEER_SIZES,
    }
    try:
        # 1. the raw bound
        if not only or "raw" in only:
            log("raw bound")
            raw = Driver("raw", "raw redis-py", [str(MAIN_PY), str(PEERS / "raw.py")], ())
            for figure, n in (("enqueue", sizes.enqueue), ("bulk", sizes.bulk),
                              ("drain-step", sizes.raw_step), ("drain-batch", sizes.raw_batch)):
                try_figure(results, "raw", figure,
                           lambda figure=figure, n=n: runner.median(_raw_driver(raw), figure, n))
            rb_started = time.time()
            results["redis-benchmark"] = redis_benchmark(server, sizes.benchmark, reps)
            log(f"  redis-benchmark ({time.time() - rb_started:.0f} s)")

        # 2. dothis and the peers
        dothis_concurrency = opts.dothis_concurrency
        for driver in drivers:
            if driver.key in errors:
                results[driver.key] = {"error": errors[driver.key]}
                log(f"{driver.label}: error: {errors[driver.key]}")
                continue
            log(driver.label)
            overrides = {} if opts.quick else PEER_SIZES.get(driver.key, {})
            info: dict[str, Any] = {}
            try:
                info = runner.once(driver, "info", 1)
            except Exception as error:  # noqa: BLE001
                results[driver.key] = {"error": str(error)}
                log(f"  error: {error}")
                continue
            driver.recommended = int(info.get("recommended", 1))
            if driver.key == "dothis" and "drain" in driver.figures:
                if not dothis_concurrency and sizes.sweep:
                    dothis_concurrency = sweep_dothis(runner, driver, sizes, results)
                dothis_concurrency = dothis_concurrency or driver.recommended
                driver.recommended = dothis_concurrency
            elif driver.key in ("dothis-tuned", "dothis-cores") and dothis_concurrency:
                driver.recommended = dothis_concurrency  # per process, as the default row's
            if "enqueue" in driver.figures:
                try_figure(results, driver.key, "enqueue",
                           lambda d=driver: runner.median(d, "enqueue", overrides.get("enqueue", sizes.enqueue)))
            if "bulk" in driver.figures:
                try_figure(results, driver.key, "bulk",
                           lambda d=driver: runner.median(d, "bulk", overrides.get("bulk", sizes.bulk)))
            if "drain" in driver.figures:
                try_figure(results, driver.key, "drain-c1",
                           lambda d=driver: runner.median(d, "drain", overrides.get("drain", sizes.drain), 1))
                if driver.recommended != 1:
                    try_figure(results, driver.key, "drain-rec",
                               lambda d=driver: runner.median(d, "drain", overrides.get("drain", sizes.drain), d.recommended))
                elif "rate" in results[driver.key].get("drain-c1", {}):
                    results[driver.key]["drain-rec"] = results[driver.key]["drain-c1"]
            if "latency" in driver.figures:
                try_figure(results, driver.key, "latency",
                           lambda d=driver: runner.median(d, "latency", overrides.get("latency", sizes.latency), 1))
            if "drain" in driver.figures and sizes.soak and driver.key in ("dothis", *PY_PEERS,
                                                                            *NODE_PEERS):
                soak = soak_size(results[driver.key], sizes.soak, opts.quick, driver.key == "dothis")
                try_figure(results, driver.key, "soak",
                           lambda d=driver, soak=soak: runner.once(d, "drain", soak, d.recommended,
                                                                   timeout=1800))

        # 3. scaling and profile of dothis
        dothis = next((d for d in drivers if d.key == "dothis"), None)
        if dothis is not None and "error" not in results.get("dothis", {}):
            for depth in sizes.depths:
                target = min(depth, sizes.depth_sample)
                try_figure(results, "dothis-scaling", f"depth-{depth}",
                           lambda depth=depth, target=target: runner.median(
                               dothis, "drain", depth, dothis.recommended,
                               ["--target", str(target)], timeout=1800))
            if sizes.sleepers:
                try_figure(results, "dothis-scaling", "executing-1000",
                           lambda: runner.median(dothis, "sleep", sizes.sleepers, 1000,
                                                 ["--sleep", "0.2"]))
            if not opts.quick and not opts.no_profile:
                from profile_worker import profile  # noqa: PLC0415

                try_figure(results, "dothis-profile", "drain",
                           lambda: profile(server.url, MAIN_PY, PEERS_VENV, sizes.drain,
                                           dothis.recommended, logdir))
    finally:
        server.stop()

    meta["seconds"] = time.time() - started
    if merged_meta:
        meta["merged"] = (f"{', '.join(d.key for d in drivers)} re-run at {meta['started']} "
                          f"({meta['seconds']:.0f} s) into the run of {merged_meta['started']}")
        meta["seconds"] = merged_meta["seconds"]
        meta["started"] = merged_meta["started"]
    meta["dothis_concurrency"] = results.get("dothis", {}).get("drain-rec", {}).get("concurrency")
    if "dothis" not in {d.key for d in drivers} and merged_meta:
        meta["dothis_concurrency"] = merged_meta.get("dothis_concurrency")
    from report import write_report  # noqa: PLC0415

    write_report(results, meta, [d.__dict__ for d in drivers], RESULTS, PEERS_VENV)
    log(f"done in {meta['seconds']:.0f} s; worker and driver logs in {logdir.relative_to(ROOT)}")


def _raw_driver(raw: Driver) -> Driver:
    return raw


def soak_size(system: dict[str, Any], soak: int, quick: bool, dothis: bool = False) -> int:
    """dothis drains `soak` tasks; a peer as many as it drains in about 6 s (at most `soak`)."""
    if quick:
        return soak
    rate = system.get("drain-rec", {}).get("steady_rate") or system.get("drain-c1", {}).get("steady_rate")
    if not isinstance(rate, int | float) or rate <= 0:
        return min(soak, 2000)
    if dothis:  # the full count: 50,000 by default, 1,000,000 with --full
        return soak
    return int(min(soak, max(600, rate * 6)))  # peers: what they drain in about 6 s


def sweep_dothis(runner: Runner, driver: Driver, sizes: Sizes, results: dict[str, Any]) -> int:
    """Drain at concurrency 1, 4, 16, 64; pick the fastest (a lower one when within 5 %)."""
    rates: dict[int, float] = {}
    for concurrency in (1, 4, 16, 64):
        try_figure(results, "dothis-sweep", f"c{concurrency}",
                   lambda c=concurrency: runner.median(driver, "drain", sizes.sweep, c, reps=1))
        rate = results["dothis-sweep"][f"c{concurrency}"].get("steady_rate")
        if isinstance(rate, int | float):
            rates[concurrency] = rate
    if not rates:
        return 0
    best = max(rates.values())
    chosen = min(c for c, r in rates.items() if r >= 0.95 * best)
    results["dothis-sweep"]["chosen"] = chosen
    log(f"  dothis concurrency: {chosen}")
    return chosen


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
