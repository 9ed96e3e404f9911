"""Helpers and fixtures shared by the schema and SPEC.md self-checks (imported by the tests)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "schema"
EXAMPLES_DIR = SCHEMA_DIR / "examples"
SPEC = REPO / "SPEC.md"
PRIMER = REPO / "docs" / "PRIMER.md"
LUA_DIR = REPO / "lua"
ID_BASE = "https://dothis.dev/schema/"


def load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.schema.json"))


@cache
def all_schemas() -> dict[str, dict[str, Any]]:
    """Schemas by file name. Cached: tests must not modify the result."""
    return {p.name: load_json(p) for p in schema_files()}


@cache
def registry() -> Registry:
    return Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in all_schemas().values()
    )


def validator(schema_file: str) -> Draft202012Validator:
    return Draft202012Validator(
        all_schemas()[schema_file],
        registry=registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


@pytest.fixture(scope="session")
def protocol() -> dict[str, Any]:
    return load_json(SCHEMA_DIR / "protocol.json")


@pytest.fixture(scope="session")
def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")
