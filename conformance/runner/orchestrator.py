"""The orchestrator: runs the cases against columns of implementations, lane by lane.

A column pairs a producer with a worker: `python` is the Python producer with the Python worker,
`redis-cli` a person typing commands with the reference worker, and a parity column such as
`node>python` the Node producer with the Python worker (producer cases only).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, cast

import redis
import redis.cluster

from .casefile import REPO, Case
from .harness_client import Harness, HarnessBroken
from .redis_server import RedisCluster, RedisServer
from .steps import CaseRun, StepFailed

# The queue the harnesses' schedule conformance-tick fires into (README.md, "Harness protocol"):
# conf-periodic, or {conf-periodic} on a cluster, told to the harnesses in this variable.
PERIODIC_QUEUE_VARIABLE = "DOTHIS_CONFORMANCE_PERIODIC_QUEUE"


@dataclass
class Outcome:
    status: str  # pass | FAIL | skip | gap | XPASS
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("FAIL", "XPASS")


@dataclass
class Column:
    """A column of the table: a producer, the worker that serves it, and the cases it runs."""

    name: str
    producer: str
    worker: str | None = None  # None: the producer's own worker, else the reference worker
    only: str | None = None  # "producer": only the cases that test a producer
    gaps: dict[str, str] = field(default_factory=dict)  # case id -> reason; a pass is an XPASS
    soft_gaps: dict[str, str] = field(default_factory=dict)  # the same, but a pass is a pass (matrix cells)
    unavailable: str | None = None


class Implementation:
    def __init__(self, name: str, config: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.config = config
        self.env = dict(env or {})
        self.harness: Harness | None = None
        self.unavailable: str | None = None
        self.roles: list[str] = ["producer"] if config.get("producer") == "raw" else []

    @property
    def raw(self) -> bool:
        return self.config.get("producer") == "raw"

    def start(self) -> None:
        root = Path(self.config.get("cwd") or REPO)
        missing = [p for p in self.config.get("requires", []) if not (root / p).exists()]
        if missing:
            self.unavailable = f"{', '.join(missing)} not found"
            return
        command = self.config.get("command")
        if not command:
            return
        argv = [part.replace("{python}", sys.executable) for part in command]
        self.harness = Harness(self.name, argv, root, self.env)
        try:
            hello = self.harness.start()
        except Exception as exc:  # noqa: BLE001 - reported as the column's skip reason
            self.unavailable = f"harness did not start: {exc}"
            self.harness.close()
            self.harness = None
            return
        self.roles = list(hello.get("roles", []))

    def restart_if_broken(self) -> None:
        if self.harness is not None and not self.harness.alive():
            self.harness.close()
            self.start()

    def close(self) -> None:
        if self.harness is not None:
            self.harness.close()


def reference_name(config: dict[str, Any]) -> str | None:
    return next((n for n, c in config.items() if c.get("reference")), None)


class Lane:
    """One private redis-server (or Redis Cluster) plus its own harness processes; runs cases one
    at a time."""

    def __init__(self, config: dict[str, Any], redis_binary: str, cluster: bool = False) -> None:
        self.config = config
        self.redis_binary = redis_binary
        self.cluster = cluster
        self.impls: dict[str, Implementation] = {}
        self.error: str | None = None

    def impl(self, name: str) -> Implementation:
        if name not in self.impls:
            periodic = "{conf-periodic}" if self.cluster else "conf-periodic"
            impl = Implementation(name, self.config[name], {PERIODIC_QUEUE_VARIABLE: periodic})
            impl.start()
            self.impls[name] = impl
        impl = self.impls[name]
        impl.restart_if_broken()
        return impl

    def pair(self, column: Column) -> tuple[Implementation, Implementation | None]:
        producer = self.impl(column.producer)
        if column.worker is not None:
            return producer, self.impl(column.worker)
        if "worker" in producer.roles or producer.unavailable:
            return producer, producer
        ref = reference_name(self.config)
        return producer, (self.impl(ref) if ref else None)

    def drain(self, work: queue.Queue[tuple[Column, Case]],
              record: Callable[[Column, Case, Outcome], None]) -> None:
        server: RedisServer | RedisCluster
        try:
            server = RedisCluster(self.redis_binary) if self.cluster else RedisServer(self.redis_binary)
            server.start()
        except RuntimeError as exc:
            self.error = str(exc)
            return
        client = (server.client() if isinstance(server, RedisCluster)
                  else redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10))
        try:
            while True:
                try:
                    column, case = work.get_nowait()
                except queue.Empty:
                    return
                producer, worker = self.pair(column)
                reason = applicability(case, column, producer, worker, self.cluster)
                if reason:
                    outcome = Outcome("skip", reason)
                else:
                    assert worker is not None
                    outcome = run_case(case, producer, worker, server, client, column)
                record(column, case, outcome)
        finally:
            for impl in self.impls.values():
                impl.close()
            client.close()
            server.stop()


def applicability(case: Case, column: Column, producer: Implementation,
                  worker: Implementation | None, cluster: bool = False) -> str | None:
    """None when the case applies to the column, else the skip reason."""
    if producer.unavailable:
        return producer.unavailable
    skip = (case.data.get("cluster") or {}).get("skip") if cluster else None
    if skip:
        return f"on a cluster: {skip}"
    if column.only and case.tests != column.only:
        return f"{column.only} cases only"
    library = case.uses_library_producer()
    if case.tests == "worker" and column.worker is None and "worker" not in producer.roles:
        return "no worker role"
    if producer.raw and library:
        return "needs a library producer"
    if not producer.raw and "worker" not in producer.roles and column.worker is None and not library:
        return "raw producer only (redis-cli column)"
    if worker is None or worker.harness is None or "worker" not in worker.roles:
        return worker.unavailable if worker is not None and worker.unavailable else "no worker available"
    return None


def run_case(case: Case, producer: Implementation, worker: Implementation, server: RedisServer | RedisCluster,
             client: redis.Redis | redis.cluster.RedisCluster, column: Column) -> Outcome:
    started = time.monotonic()
    cluster = server if isinstance(server, RedisCluster) else None
    if cluster is not None:
        cast(redis.cluster.RedisCluster, client).flushall(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    else:
        client.flushall()
    run = CaseRun(case, server.port, client, None if producer.raw else producer.harness, worker.harness,
                  cluster=cluster)
    try:
        run.run()
        outcome = Outcome("pass")
    except (StepFailed, HarnessBroken) as exc:
        logs = run.failure_logs()
        outcome = Outcome("FAIL", str(exc) + ("\n" + "\n".join(logs) if logs else ""))
    except redis.RedisError as exc:
        outcome = Outcome("FAIL", f"Redis error: {exc}")
    finally:
        run.cleanup()
    outcome.seconds = time.monotonic() - started
    if case.id in column.soft_gaps and case.id not in column.gaps and outcome.status == "FAIL":
        return Outcome("gap", f"{column.soft_gaps[case.id]} | {outcome.detail}", outcome.seconds)
    if case.id in column.gaps:
        reason = column.gaps[case.id]
        outcome = (Outcome("XPASS", f"passes but is listed as a gap ({reason}): remove it from implementations.yaml",
                           outcome.seconds)
                   if outcome.status == "pass" else Outcome("gap", f"{reason} | {outcome.detail}", outcome.seconds))
    return outcome


def run_columns(cases: list[Case], columns: list[Column], config: dict[str, Any], jobs: int,
                redis_binary: str, verbose: bool, cluster: bool = False) -> dict[tuple[str, str], Outcome]:
    """Every case of every column, `jobs` lanes at once (each with its own redis-server, or its own
    three-master Redis Cluster when `cluster`); returns (case id, column name) -> outcome."""
    work: queue.Queue[tuple[Column, Case]] = queue.Queue()
    # slow cases first, interleaving columns, so that the lanes finish together
    for case in sorted(cases, key=lambda c: -float(c.data.get("timeout_s", 15))):
        for column in columns:
            work.put((column, case))
    results: dict[tuple[str, str], Outcome] = {}
    lock = threading.Lock()
    lanes = [Lane(config, redis_binary, cluster) for _ in range(max(1, jobs))]

    def record(column: Column, case: Case, outcome: Outcome) -> None:
        with lock:
            results[(case.id, column.name)] = outcome
            if verbose or outcome.status not in ("pass", "skip"):
                print(f"[{column.name}] {case.area}/{case.id}: {outcome.status} ({outcome.seconds:.1f}s)", flush=True)
                if outcome.status not in ("pass", "skip") and outcome.detail:
                    print("    " + outcome.detail.replace("\n", "\n    "), flush=True)

    threads = [threading.Thread(target=lane.drain, args=(work, record), daemon=True) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lane in lanes:
        if lane.error:
            raise RuntimeError(f"lane error: {lane.error}")
    for column in columns:
        column.unavailable = next((lane.impls[column.producer].unavailable for lane in lanes
                                   if column.producer in lane.impls and lane.impls[column.producer].unavailable), None)
    return results
