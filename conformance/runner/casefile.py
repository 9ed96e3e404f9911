"""Case files: loading, schema validation, SPEC.md anchors and ${variable} substitution."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

PACKAGE = Path(__file__).resolve().parent
if (PACKAGE / "data" / "cases").is_dir():
    # installed as the dothis_conformance kit: data/ holds the cases, case schema, SPEC.md, schema/, lua/
    CONFORMANCE = REPO = PACKAGE / "data"
else:
    # this repository: conformance/runner/, with SPEC.md, schema/ and lua/ at the root
    CONFORMANCE = PACKAGE.parent
    REPO = CONFORMANCE.parent
CASES_DIR = CONFORMANCE / "cases"
CASE_SCHEMA = CONFORMANCE / "case.schema.json"
SPEC = REPO / "SPEC.md"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster

PRODUCER_OPS = ("enqueue", "enqueue_many", "fetch", "length", "wait", "cancel")


@dataclass
class Case:
    path: Path
    area: str
    data: dict[str, Any]
    anchors: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def tests(self) -> str:
        return str(self.data["tests"])

    def all_steps(self) -> list[dict[str, Any]]:
        return [*self.data.get("setup", []), *self.data["steps"], *self.data["expectations"]]

    def uses_library_producer(self) -> bool:
        """True when a step needs a library producer (not raw commands)."""
        return any(op in step for step in self.all_steps() for op in PRODUCER_OPS)


def shown(path: Path) -> Path:
    """A path relative to conformance/ when it is inside it."""
    try:
        return path.relative_to(CONFORMANCE)
    except ValueError:
        return path


class CaseError(Exception):
    """A case file is malformed."""


def load_cases(cases_dir: Path = CASES_DIR) -> tuple[list[Case], list[str]]:
    """Every case file, validated. Returns the cases and a list of problems (empty when all good)."""
    schema = json.loads(CASE_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    cases: list[Case] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(cases_dir.glob("*/*.yaml")):
        rel = shown(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        except yaml.YAMLError as exc:
            problems.append(f"{rel}: not YAML: {exc}")
            continue
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            for err in errors[:5]:
                where = "/".join(str(p) for p in err.absolute_path) or "(root)"
                problems.append(f"{rel}: {where}: {err.message[:300]}")
            continue
        if data["id"] != path.stem:
            problems.append(f"{rel}: id {data['id']!r} must equal the file name {path.stem!r}")
            continue
        if data["id"] in seen:
            problems.append(f"{rel}: id {data['id']!r} also used by {shown(seen[data['id']])}")
            continue
        seen[data["id"]] = path
        spec = data["spec"]
        anchors = [spec] if isinstance(spec, str) else list(spec)
        cases.append(Case(path=path, area=path.parent.name, data=data, anchors=anchors))
    for stray in sorted(cases_dir.glob("**/*")):
        if stray.is_file() and (stray.suffix != ".yaml" or stray.parent.parent != cases_dir):
            problems.append(f"{shown(stray)}: not a case file (expected cases/<area>/<id>.yaml)")
    return cases, problems


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (before duplicate suffixes)."""
    text = re.sub(r"<[^>]+>", "", heading)          # inline HTML
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = text.strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch.isalnum() or cat.startswith("M"):
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def spec_anchors(spec_path: Path = SPEC) -> set[str]:
    """Every anchor of SPEC.md: heading slugs (with GitHub's -1, -2 suffixes) and explicit ids."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    in_fence = False
    for line in spec_path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            base = github_slug(match.group(2).replace("`", ""))
            n = counts.get(base, 0)
            counts[base] = n + 1
            anchors.add(base if n == 0 else f"{base}-{n}")
        for explicit in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
            anchors.add(explicit)
    return anchors


def check_anchors(cases: list[Case], spec_path: Path = SPEC) -> list[str]:
    """Problems with cited anchors; empty when every anchor exists."""
    if not spec_path.exists():
        return []
    known = spec_anchors(spec_path)
    problems = []
    for case in cases:
        for anchor in case.anchors:
            slug = anchor.split("#", 1)[1]
            if slug not in known:
                problems.append(f"{shown(case.path)}: cites {anchor}, which SPEC.md does not have")
    return problems


_VAR = re.compile(r"\$\{([^}]*)\}")
_REPEAT = re.compile(r"^repeat\((\d+),(.*)\)$", re.S)


def substitute(value: Any, variables: dict[str, str]) -> Any:
    """Replace ${name} in every string of value (recursively)."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            rep = _REPEAT.match(name)
            if rep:
                return rep.group(2) * int(rep.group(1))
            if name not in variables:
                raise CaseError(f"unknown variable ${{{name}}}")
            return variables[name]
        return _VAR.sub(one, value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value
