"""Coverage of SPEC.md's requirements by the conformance cases.

    python conformance/runner/coverage.py        # or: dothis-conformance coverage

Every MUST of SPEC.md (section 1.5) must be cited by at least one case (its `requirements`) or be
listed in untestable.yaml with the reason no case can check it. Exit status 1 when one is neither,
or when a case or untestable.yaml names an id SPEC.md does not have.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "runner"

from .casefile import CASES_DIR, CONFORMANCE, SPEC, Case, load_cases  # noqa: E402
from .requirements import Requirement, profiles, requirements  # noqa: E402

UNTESTABLE = CONFORMANCE / "untestable.yaml"


@dataclass
class Coverage:
    requirements: dict[str, Requirement]
    cited: dict[str, list[str]]  # id -> case ids
    untestable: dict[str, str]  # id -> reason
    problems: list[str] = field(default_factory=list)

    @property
    def uncovered_musts(self) -> list[str]:
        return [r.id for r in self.requirements.values()
                if r.level == "MUST" and r.id not in self.cited and r.id not in self.untestable]

    @property
    def uncovered_shoulds(self) -> list[str]:
        return [r.id for r in self.requirements.values()
                if r.level == "SHOULD" and r.id not in self.cited and r.id not in self.untestable]


def load_untestable(path: Path = UNTESTABLE) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    return {str(k): str(v) for k, v in (data or {}).items()}


def coverage(cases: list[Case], spec_path: Path = SPEC, untestable_path: Path = UNTESTABLE) -> Coverage:
    reqs = requirements(spec_path)
    untestable = load_untestable(untestable_path)
    cited: dict[str, list[str]] = {}
    problems: list[str] = []
    for case in cases:
        for rid in case.data.get("requirements", []):
            if rid not in reqs:
                problems.append(f"{case.area}/{case.id}: cites {rid}, which SPEC.md does not have")
            cited.setdefault(rid, []).append(case.id)
    for rid, reason in untestable.items():
        if rid not in reqs:
            problems.append(f"untestable.yaml: {rid} is not a requirement of SPEC.md")
        elif rid in cited:
            problems.append(f"untestable.yaml: {rid} is cited by {', '.join(cited[rid])}: remove it")
        if not reason.strip():
            problems.append(f"untestable.yaml: {rid} needs a reason")
    listed = set().union(*profiles(spec_path).values())
    for rid in reqs:
        if rid not in listed and rid not in untestable:
            problems.append(f"SPEC.md: {rid} is in no profile of section 14 and not in untestable.yaml")
    result = Coverage(reqs, cited, untestable, problems)
    result.problems += [f"{rid} (MUST, {reqs[rid].section}) is cited by no case and not listed in "
                        f"untestable.yaml" for rid in result.uncovered_musts]
    return result


def main(argv: list[str] | None = None) -> int:
    cases_dir = Path(argv[0]) if argv else CASES_DIR
    cases, problems = load_cases(cases_dir)
    if problems:
        print("malformed cases:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    result = coverage(cases)
    musts = [r for r in result.requirements.values() if r.level == "MUST"]
    print(f"{len(result.requirements)} requirements ({len(musts)} MUST): "
          f"{len(result.cited)} cited by cases, {len(result.untestable)} untestable, "
          f"{len(result.uncovered_shoulds)} SHOULD not covered ({', '.join(result.uncovered_shoulds) or '-'})")
    for problem in result.problems:
        print(f"coverage: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
