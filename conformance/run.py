#!/usr/bin/env python3
"""Run the dothis conformance cases against one or more implementations.

    .venv/bin/python conformance/run.py                      # python and redis-cli columns
    .venv/bin/python conformance/run.py --impl python --impl node --markdown report.md
    .venv/bin/python conformance/run.py --check-only         # validate case files and SPEC.md anchors

Exit status: 0 when every applicable case passed, 1 on any failure, 2 on malformed cases.
"""

from __future__ import annotations

import argparse
import fnmatch
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402
import yaml  # noqa: E402
from runner.casefile import CASES_DIR, CONFORMANCE, REPO, SPEC, Case, check_anchors, load_cases  # noqa: E402
from runner.harness_client import Harness, HarnessBroken  # noqa: E402
from runner.redis_server import RedisServer  # noqa: E402
from runner.steps import CaseRun, StepFailed  # noqa: E402

IMPLEMENTATIONS = CONFORMANCE / "implementations.yaml"


@dataclass
class Outcome:
    status: str  # pass | FAIL | skip | gap | XPASS
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("FAIL", "XPASS")


class Implementation:
    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.config = config
        self.gaps: dict[str, str] = dict(config.get("gaps") or {})
        self.harness: Harness | None = None
        self.unavailable: str | None = None
        self.roles: list[str] = ["producer"] if config.get("producer") == "raw" else []

    @property
    def raw(self) -> bool:
        return self.config.get("producer") == "raw"

    def start(self) -> None:
        missing = [p for p in self.config.get("requires", []) if not (REPO / p).exists()]
        if missing:
            self.unavailable = f"{', '.join(missing)} not found"
            return
        command = self.config.get("command")
        if not command:
            return
        argv = [part.replace("{python}", sys.executable) for part in command]
        self.harness = Harness(self.name, argv, REPO)
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


class Lane:
    """One private redis-server plus its own harness processes; runs cases one at a time."""

    def __init__(self, config: dict[str, Any], redis_binary: str) -> None:
        self.config = config
        self.redis_binary = redis_binary
        self.impls: dict[str, Implementation] = {}
        self.error: str | None = None

    def impl(self, name: str) -> Implementation:
        if name not in self.impls:
            impl = Implementation(name, self.config[name])
            impl.start()
            self.impls[name] = impl
        impl = self.impls[name]
        impl.restart_if_broken()
        return impl

    def drain(self, work: queue.Queue[tuple[Implementation, Case]],
              record: Callable[[Implementation, Case, Outcome], None]) -> None:
        try:
            server = RedisServer(self.redis_binary)
            server.start()
        except RuntimeError as exc:
            self.error = str(exc)
            return
        client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)
        ref_name = next(n for n, c in self.config.items() if c.get("reference"))
        try:
            while True:
                try:
                    column, case = work.get_nowait()
                except queue.Empty:
                    return
                impl = self.impl(column.name)
                needs_reference = "worker" not in impl.roles and not impl.unavailable
                reference = self.impl(ref_name) if needs_reference else None
                reason = applicability(case, impl, reference)
                outcome = Outcome("skip", reason) if reason else run_case(case, impl, reference, server, client)
                record(impl, case, outcome)
        finally:
            for impl in self.impls.values():
                impl.close()
            client.close()
            server.stop()


def applicability(case: Case, impl: Implementation, reference: Implementation | None) -> str | None:
    """None when the case applies to impl, else the skip reason."""
    if impl.unavailable:
        return impl.unavailable
    library = case.uses_library_producer()
    if case.tests == "worker" and "worker" not in impl.roles:
        return "no worker role"
    if impl.raw and library:
        return "needs a library producer"
    if not impl.raw and "worker" not in impl.roles and not library:
        return "raw producer only (redis-cli column)"
    if "worker" not in impl.roles and (reference is None or reference.harness is None):
        return "no reference worker available"
    return None


def run_case(case: Case, impl: Implementation, reference: Implementation | None,
             server: RedisServer, client: redis.Redis) -> Outcome:
    started = time.monotonic()
    client.flushall()
    worker_harness = impl.harness if "worker" in impl.roles else (reference.harness if reference else None)
    run = CaseRun(case, server.port, client, None if impl.raw else impl.harness, worker_harness)
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
    if case.id in impl.gaps:
        reason = impl.gaps[case.id]
        outcome = (Outcome("XPASS", f"passes but is listed as a gap ({reason}): remove it from implementations.yaml",
                           outcome.seconds)
                   if outcome.status == "pass" else Outcome("gap", f"{reason} | {outcome.detail}", outcome.seconds))
    return outcome


def table(cases: list[Case], impls: list[Implementation],
          results: dict[tuple[str, str], Outcome], markdown: bool) -> str:
    def cell(outcome: Outcome) -> str:
        if outcome.status in ("skip", "gap"):
            return f"{outcome.status} ({outcome.detail.split(' | ')[0]})"
        return outcome.status
    header = ["case", *[i.name for i in impls]]
    rows = [[f"{c.area}/{c.id}", *[cell(results[(c.id, i.name)]) for i in impls]] for c in cases]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[n]) for r in [header, *rows]) for n in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths]), *[fmt.format(*r) for r in rows]])


def summary(impls: list[Implementation], results: dict[tuple[str, str], Outcome]) -> list[str]:
    lines = []
    for impl in impls:
        counts: dict[str, int] = {}
        for (_case, name), outcome in results.items():
            if name == impl.name:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
        lines.append(f"{impl.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", action="append", help="implementation to run (repeatable); default: python and redis-cli")
    parser.add_argument("--case", action="append", help="run only cases whose id or area/id matches this glob (repeatable)")
    parser.add_argument("--cases", type=Path, default=CASES_DIR, help="directory of <area>/<id>.yaml case files")
    parser.add_argument("--markdown", type=Path, help="also write the pass table as Markdown to this file")
    parser.add_argument("--check-only", action="store_true", help="validate case files and SPEC.md anchors, run nothing")
    parser.add_argument("--require-spec", action="store_true", help="fail when SPEC.md is missing")
    parser.add_argument("--redis-server", default="redis-server", help="redis-server binary")
    parser.add_argument("-j", "--jobs", type=int, default=3,
                        help="cases run at once, each lane with its own redis-server and harnesses (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case as it runs")
    args = parser.parse_args(argv)

    cases, problems = load_cases(args.cases)
    if SPEC.exists():
        problems += check_anchors(cases)
    elif args.require_spec:
        problems.append("SPEC.md does not exist")
    else:
        print("note: SPEC.md does not exist yet; cited anchors were not checked", file=sys.stderr)
    config = yaml.safe_load(IMPLEMENTATIONS.read_text(encoding="utf-8"))
    known_ids = {c.id for c in cases}
    for name, entry in config.items():
        for gap in (entry.get("gaps") or {}):
            if gap not in known_ids and args.cases == CASES_DIR:
                problems.append(f"implementations.yaml: {name} lists a gap for unknown case {gap!r}")
    if problems:
        print("malformed cases:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    print(f"{len(cases)} case files valid" + (", every cited SPEC.md anchor exists" if SPEC.exists() else ""))
    if args.check_only:
        return 0
    if args.case:
        cases = [c for c in cases if any(fnmatch.fnmatch(c.id, p) or fnmatch.fnmatch(f"{c.area}/{c.id}", p) for p in args.case)]

    names = args.impl or ["python", "redis-cli"]
    unknown = [n for n in names if n not in config]
    if unknown:
        print(f"unknown implementation(s) {unknown}; known: {sorted(config)}", file=sys.stderr)
        return 2
    impls = [Implementation(n, config[n]) for n in names]
    work: queue.Queue[tuple[Implementation, Case]] = queue.Queue()
    for impl in impls:
        for case in cases:
            work.put((impl, case))
    results: dict[tuple[str, str], Outcome] = {}
    lock = threading.Lock()
    started = time.monotonic()
    lanes = [Lane(config, args.redis_server) for _ in range(max(1, args.jobs))]

    def record(impl: Implementation, case: Case, outcome: Outcome) -> None:
        with lock:
            results[(case.id, impl.name)] = outcome
            if args.verbose or outcome.status not in ("pass", "skip"):
                print(f"[{impl.name}] {case.area}/{case.id}: {outcome.status} ({outcome.seconds:.1f}s)", flush=True)
                if outcome.status not in ("pass", "skip") and outcome.detail:
                    print("    " + outcome.detail.replace("\n", "\n    "), flush=True)

    threads = [threading.Thread(target=lane.drain, args=(work, record), daemon=True) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lane in lanes:
        if lane.error:
            print(f"lane error: {lane.error}", file=sys.stderr)
            return 2
    # the column-level availability seen by any lane (identical in all of them)
    for impl in impls:
        impl.unavailable = next((lane.impls[impl.name].unavailable for lane in lanes
                                 if impl.name in lane.impls and lane.impls[impl.name].unavailable), None)

    print()
    print(table(cases, impls, results, markdown=False))
    print()
    for line in summary(impls, results):
        print(line)
    if args.markdown:
        body = ["# dothis conformance results", "",
                f"{len(cases)} cases; generated by conformance/run.py in {time.monotonic() - started:.0f}s.", "",
                table(cases, impls, results, markdown=True), ""]
        gaps = [(i.name, c, r) for i in impls for c, r in i.gaps.items()]
        if gaps:
            body += ["## Known gaps", "", *[f"- {n} / {c}: {r}" for n, c, r in gaps], ""]
        args.markdown.write_text("\n".join(body), encoding="utf-8")
    failed = sum(1 for o in results.values() if o.failed)
    passed = sum(1 for o in results.values() if o.status == "pass")
    skipped = sum(1 for o in results.values() if o.status in ("skip", "gap"))
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
