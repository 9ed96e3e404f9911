"""The results of a run as tables (text, Markdown) and as a machine-readable report (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .casefile import Case
from .coverage import load_untestable
from .orchestrator import Column, Outcome
from .requirements import PROFILES, Requirement


def cell(outcome: Outcome) -> str:
    if outcome.status in ("skip", "gap"):
        reason = outcome.detail.split(" | ")[0]
        return f"{outcome.status} ({reason if len(reason) <= 40 else reason[:37] + '...'})"
    return outcome.status


def render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[n]) for r in [header, *rows]) for n in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*["-" * w for w in widths]),
                      *[fmt.format(*r).rstrip() for r in rows]])


def table(cases: list[Case], columns: list[Column], results: dict[tuple[str, str], Outcome],
          markdown: bool) -> str:
    rows = [[f"{c.area}/{c.id}", *[cell(results[(c.id, col.name)]) for col in columns]] for c in cases]
    return render(["case", *[col.name for col in columns]], rows, markdown)


def summary(columns: list[Column], results: dict[tuple[str, str], Outcome]) -> list[str]:
    lines = []
    for column in columns:
        counts: dict[str, int] = {}
        for (_case, name), outcome in results.items():
            if name == column.name:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
        lines.append(f"{column.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return lines


def case_profiles(case: Case, profile_ids: dict[str, set[str]]) -> list[str]:
    """The profiles a case belongs to: those holding every requirement it cites."""
    cited = set(case.data.get("requirements", []))
    return [name for name in PROFILES if cited <= profile_ids[name]]


def profiles_reached(cases: list[Case], column: Column, results: dict[tuple[str, str], Outcome],
                     profile_ids: dict[str, set[str]]) -> dict[str, Any]:
    """Per profile: how its cases went in this column, and whether the profile is reached.

    A profile's cases are those of the matching role (producer cases for the producer profile,
    worker cases for the worker profiles) whose requirements all belong to it. It is reached when
    at least one of them ran and none failed, was a gap or was skipped for a reason other than a
    missing role."""
    out: dict[str, Any] = {}
    for name in PROFILES:
        role = "producer" if name == "producer" else "worker"
        members = [c for c in cases if c.tests == role and name in case_profiles(c, profile_ids)]
        counts: dict[str, int] = {}
        for case in members:
            status = results[(case.id, column.name)].status
            counts[status] = counts.get(status, 0) + 1
        passed = counts.get("pass", 0)
        blocked = sum(n for s, n in counts.items() if s != "pass")
        out[name] = {"cases": len(members), "counts": counts, "reached": passed > 0 and blocked == 0}
    return out


def reached_names(profiles: dict[str, Any]) -> list[str]:
    return [name for name in PROFILES if profiles[name]["reached"]]


def json_report(cases: list[Case], columns: list[Column], results: dict[tuple[str, str], Outcome],
                reqs: dict[str, Requirement], profile_ids: dict[str, set[str]], seconds: float) -> dict[str, Any]:
    untestable = load_untestable()
    by_req: dict[str, Any] = {}
    for rid, req in reqs.items():
        citing = [c for c in cases if rid in c.data.get("requirements", [])]
        per_column = {}
        for column in columns:
            statuses = [results[(c.id, column.name)].status for c in citing]
            ran = [s for s in statuses if s != "skip"]
            per_column[column.name] = ("untestable" if rid in untestable else "not covered" if not citing
                                       else "skip" if not ran else "pass" if all(s == "pass" for s in ran)
                                       else "fail")
        by_req[rid] = {"level": req.level, "section": req.section,
                       "profiles": [p for p in PROFILES if rid in profile_ids[p]],
                       "cases": [c.id for c in citing], "untestable": untestable.get(rid), "status": per_column}
    profiles = {col.name: profiles_reached(cases, col, results, profile_ids) for col in columns}
    return {
        "suite": "dothis-conformance", "protocol": 1, "seconds": round(seconds, 1),
        "columns": [{"name": col.name, "producer": col.producer, "worker": col.worker,
                     "only": col.only, "profiles": profiles[col.name],
                     "profiles_reached": reached_names(profiles[col.name])} for col in columns],
        "cases": [{"id": c.id, "area": c.area, "tests": c.tests, "requirements": c.data.get("requirements", []),
                   "profiles": case_profiles(c, profile_ids),
                   "results": {col.name: {"status": results[(c.id, col.name)].status,
                                          "detail": results[(c.id, col.name)].detail[:4000],
                                          "seconds": round(results[(c.id, col.name)].seconds, 2)}
                               for col in columns}} for c in cases],
        "requirements": by_req,
        "summary": {status: sum(1 for o in results.values() if o.status == status)
                    for status in ("pass", "FAIL", "skip", "gap", "XPASS")},
    }


def markdown_report(cases: list[Case], columns: list[Column], results: dict[tuple[str, str], Outcome],
                    report: dict[str, Any], matrix: str | None, seconds: float) -> str:
    body = ["# dothis conformance results", "",
            f"{len(cases)} cases; generated by dothis-conformance in {seconds:.0f}s.", "",
            table(cases, columns, results, markdown=True), "", "## Profiles reached", ""]
    body += [f"- {col['name']}: {', '.join(col['profiles_reached']) or 'none'}" for col in report["columns"]]
    if matrix:
        body += ["", "## Parity matrix (producer cases: producer by worker)", "", matrix]
    gaps = [(col.name, c, r) for col in columns for c, r in col.gaps.items()]
    if gaps:
        body += ["", "## Known gaps", "", *[f"- {n} / {c}: {r}" for n, c, r in gaps]]
    return "\n".join(body) + "\n"


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
