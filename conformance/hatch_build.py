"""Build hook: the wheel carries the runner as dothis_conformance, and its data.

SPEC.md, schema/ and lua/ live once, at the repository root, beside conformance/; an sdist
carries copies at its own root. This hook takes each from wherever it is, so a wheel builds from
the repository, from a copy of it, and from the sdist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "dothis_conformance"
OWN = {"runner": PACKAGE, "cases": f"{PACKAGE}/data/cases",
       "case.schema.json": f"{PACKAGE}/data/case.schema.json",
       "untestable.yaml": f"{PACKAGE}/data/untestable.yaml", "README.md": f"{PACKAGE}/data/README.md"}
SHARED = {"SPEC.md": f"{PACKAGE}/data/SPEC.md", "schema": f"{PACKAGE}/data/schema", "lua": f"{PACKAGE}/data/lua"}


def located(root: Path, name: str) -> Path:
    for candidate in (root / name, root.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is neither in {root} nor in {root.parent}: build from the dothis repository "
                            "(conformance/ beside SPEC.md, schema/ and lua/) or from its sdist")


class ConformanceBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        force = build_data.setdefault("force_include", {})
        if self.target_name == "wheel":
            for name, target in OWN.items():
                force[str(root / name)] = target
            for name, target in SHARED.items():
                source = located(root, name)
                if name == "schema":  # the schemas and their examples, not schema/tests
                    for path in sorted(source.glob("*.json")):
                        force[str(path)] = f"{target}/{path.name}"
                    if (source / "examples").is_dir():
                        force[str(source / "examples")] = f"{target}/examples"
                else:
                    force[str(source)] = target
        elif self.target_name == "sdist":
            for name in SHARED:
                source = located(root, name)
                if source.parent != root:
                    force[str(source)] = name
