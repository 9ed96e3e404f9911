"""Command lines: `conformance/run.py` in this repository, and `dothis-conformance` (the kit).

    dothis-conformance run --harness "COMMAND" [--profile NAME] [--report FILE.json] [--markdown FILE.md]
    dothis-conformance coverage
    dothis-conformance check
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .casefile import CASES_DIR, CONFORMANCE, SPEC, Case, check_anchors, load_cases
from .coverage import coverage
from .orchestrator import Column, Outcome, run_columns
from .report import (case_profiles, json_report, markdown_report, profiles_reached, reached_names, render,
                     summary, table, write_json)
from .requirements import PROFILES, profiles, requirements

IMPLEMENTATIONS = CONFORMANCE / "implementations.yaml"
MATRIX_PRODUCERS = ("python", "node", "redis-cli")
MATRIX_WORKERS = ("python", "node")


def validate(cases_dir: Path, config: dict[str, Any], strict_coverage: bool) -> tuple[list[Case], list[str]]:
    """The cases, and every problem that stops a run (exit status 2)."""
    cases, problems = load_cases(cases_dir)
    if not SPEC.exists():
        return cases, problems + ["SPEC.md does not exist"]
    problems += check_anchors(cases)
    result = coverage(cases)
    problems += [p for p in result.problems if strict_coverage or "cited by no case" not in p]
    known_ids = {c.id for c in cases}
    for name, entry in config.items():
        for gap in (entry.get("gaps") or {}):
            if gap not in known_ids and cases_dir == CASES_DIR:
                problems.append(f"implementations.yaml: {name} lists a gap for unknown case {gap!r}")
    return cases, problems


def select(cases: list[Case], patterns: list[str] | None) -> list[Case]:
    if not patterns:
        return cases
    return [c for c in cases if any(fnmatch.fnmatch(c.id, p) or fnmatch.fnmatch(f"{c.area}/{c.id}", p)
                                    for p in patterns)]


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--case", action="append", help="run only cases whose id or area/id matches this glob (repeatable)")
    parser.add_argument("--cases", type=Path, default=CASES_DIR, help="directory of <area>/<id>.yaml case files")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown to this file")
    parser.add_argument("--report", type=Path, help="also write the machine-readable report (JSON) to this file")
    parser.add_argument("--redis-server", default="redis-server", help="redis-server binary")
    parser.add_argument("-j", "--jobs", type=int, default=3,
                        help="cases run at once, each lane with its own redis-server and harnesses (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case as it runs")
    parser.add_argument("--cluster", action="store_true",
                        help="run on a Redis Cluster of three masters per lane: queue names carry a hash tag "
                             "({conf-...}), the URL ends in ?cluster=1, redis-cli runs with -c")


def finish(args: argparse.Namespace, cases: list[Case], columns: list[Column],
           results: dict[tuple[str, str], Outcome], started: float, matrix: str | None = None) -> dict[str, Any]:
    """Print the table and the profiles; write --report and --markdown. Returns the report."""
    seconds = time.monotonic() - started
    profile_ids = profiles()
    report = json_report(cases, columns, results, requirements(), profile_ids, seconds)
    print()
    print(table(cases, columns, results, markdown=False))
    if matrix:
        print()
        print("parity matrix (producer cases; rows: producer, columns: worker)")
        print(matrix)
    print()
    for line in summary(columns, results):
        print(line)
    for column in report["columns"]:
        print(f"profiles reached by {column['name']}: {', '.join(column['profiles_reached']) or 'none'}")
    if args.report:
        write_json(args.report, report)
    if args.markdown:
        args.markdown.write_text(markdown_report(cases, columns, results, report, matrix, seconds), encoding="utf-8")
    failed = sum(1 for o in results.values() if o.failed)
    passed = sum(1 for o in results.values() if o.status == "pass")
    skipped = sum(1 for o in results.values() if o.status in ("skip", "gap"))
    print(f"conformance: {passed} passed, {failed} failed, {skipped} skipped")
    return report


# ---------------------------------------------------------------- conformance/run.py

def matrix_columns(config: dict[str, Any], main: list[Column]) -> list[Column]:
    """The parity columns a main run does not already hold: producer>worker, producer cases."""
    have = {(c.producer, c.worker or ("python" if c.producer == "redis-cli" else c.producer)) for c in main}
    extra = []
    for producer in MATRIX_PRODUCERS:
        for worker in MATRIX_WORKERS:
            if (producer, worker) not in have and producer in config and worker in config:
                # the producer's gaps hold as in its own column; the worker's may fail here too
                extra.append(Column(f"{producer}>{worker}", producer, worker, "producer",
                                    dict(config[producer].get("gaps") or {}), dict(config[worker].get("gaps") or {})))
    return extra


def matrix_table(cases: list[Case], columns: list[Column], results: dict[tuple[str, str], Outcome]) -> str:
    """One table: rows producer by worker, each cell the producer cases' tally."""
    by_pair = {}
    for column in columns:
        worker = column.worker or ("python" if column.producer == "redis-cli" else column.producer)
        by_pair[(column.producer, worker)] = column
    rows = []
    producer_cases = [c for c in cases if c.tests == "producer"]
    for producer in MATRIX_PRODUCERS:
        row = [producer]
        for worker in MATRIX_WORKERS:
            column = by_pair.get((producer, worker))
            if column is None:
                row.append("-")
                continue
            statuses = [results[(c.id, column.name)].status for c in producer_cases]
            ran = [s for s in statuses if s != "skip"]
            bad = [s for s in ran if s != "pass"]
            row.append(f"{len(ran) - len(bad)}/{len(ran)} pass" + (f", {len(bad)} not" if bad else ""))
        rows.append(row)
    return render(["producer \\ worker", *MATRIX_WORKERS], rows, markdown=False)


def repo_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance/run.py", description="Run the dothis conformance cases "
                                     "against the implementations of implementations.yaml.")
    parser.add_argument("--impl", action="append", help="implementation to run (repeatable); default: python and redis-cli")
    parser.add_argument("--matrix", action="store_true", help="also run the parity matrix: every producer "
                        f"({', '.join(MATRIX_PRODUCERS)}) with every worker ({', '.join(MATRIX_WORKERS)}) on the producer cases")
    parser.add_argument("--check-only", action="store_true",
                        help="validate case files, SPEC.md anchors and requirement coverage, run nothing")
    parser.add_argument("--require-spec", action="store_true", help="(kept for compatibility: SPEC.md is always required)")
    common_arguments(parser)
    args = parser.parse_args(argv)
    config = yaml.safe_load(IMPLEMENTATIONS.read_text(encoding="utf-8"))
    cases, problems = validate(args.cases, config, strict_coverage=args.check_only and args.cases == CASES_DIR)
    if problems:
        print("malformed cases:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    print(f"{len(cases)} case files valid, every cited SPEC.md anchor and requirement exists")
    if args.check_only:
        return 0
    cases = select(cases, args.case)
    names = args.impl or ["python", "redis-cli"]
    unknown = [n for n in names if n not in config]
    if unknown:
        print(f"unknown implementation(s) {unknown}; known: {sorted(config)}", file=sys.stderr)
        return 2
    columns = [Column(n, n, None, None, dict(config[n].get("gaps") or {})) for n in names]
    if args.matrix:
        columns += matrix_columns(config, columns)
    started = time.monotonic()
    try:
        results = run_columns(cases, columns, config, args.jobs, args.redis_server, args.verbose,
                              args.cluster)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    matrix = matrix_table(cases, columns, results) if args.matrix else None
    finish(args, cases, columns, results, started, matrix)
    return 1 if any(o.failed for o in results.values()) else 0


# ---------------------------------------------------------------- dothis-conformance

def kit_run(args: argparse.Namespace) -> int:
    cwd = os.getcwd()
    config: dict[str, Any] = {"harness": {"command": shlex.split(args.harness), "cwd": cwd,
                                          "producer": "library", "reference": args.worker is None}}
    if args.worker:
        config["worker"] = {"command": shlex.split(args.worker), "cwd": cwd, "producer": "library", "reference": True}
    cases, problems = validate(args.cases, {}, strict_coverage=False)
    if problems:
        print("malformed cases:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    cases = select(cases, args.case)
    profile_ids = profiles()
    if args.profile:
        role = "producer" if args.profile == "producer" else "worker"
        cases = [c for c in cases if c.tests == role and args.profile in case_profiles(c, profile_ids)]
    column = Column("harness", "harness", None, None, {})
    started = time.monotonic()
    try:
        results = run_columns(cases, [column], config, args.jobs, args.redis_server, args.verbose,
                              args.cluster)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    finish(args, cases, [column], results, started)
    if column.unavailable:
        print(f"the harness is not usable: {column.unavailable}", file=sys.stderr)
        return 1
    failed = any(o.failed for o in results.values())
    if args.profile:
        reached = args.profile in reached_names(profiles_reached(cases, column, results, profile_ids))
        print(f"profile {args.profile}: {'reached' if reached else 'NOT reached'}")
        return 1 if failed or not reached else 0
    return 1 if failed else 0


def kit_coverage(args: argparse.Namespace) -> int:
    cases, problems = load_cases(args.cases)
    if problems:
        print("malformed cases:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    result = coverage(cases)
    musts = sum(1 for r in result.requirements.values() if r.level == "MUST")
    print(f"{len(result.requirements)} requirements ({musts} MUST): {len(result.cited)} cited by cases, "
          f"{len(result.untestable)} untestable; SHOULD not covered: {', '.join(result.uncovered_shoulds) or '-'}")
    for problem in result.problems:
        print(f"coverage: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def kit_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dothis-conformance", description="The dothis protocol's conformance "
                                     "suite: runs its cases against any implementation's harness (README.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the cases against a harness")
    run.add_argument("--harness", required=True, help="the command that starts the harness (split like a shell "
                     "command line, no shell features; working directory: the current one)")
    run.add_argument("--worker", help="the command of a harness with the worker role, for a producer-only --harness")
    run.add_argument("--profile", choices=PROFILES, help="run only that profile's cases; exit 0 only if it is reached")
    common_arguments(run)
    cov = sub.add_parser("coverage", help="check that every MUST of SPEC.md is cited by a case or untestable")
    cov.add_argument("--cases", type=Path, default=CASES_DIR, help=argparse.SUPPRESS)
    sub.add_parser("check", help="validate the case files, SPEC.md anchors and requirement ids")
    args = parser.parse_args(argv)
    if args.command == "run":
        return kit_run(args)
    if args.command == "coverage":
        return kit_coverage(args)
    cases, problems = validate(CASES_DIR, {}, strict_coverage=True)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print(f"{len(cases)} case files" + (" valid" if not problems else ": problems above"))
    return 2 if problems else 0
