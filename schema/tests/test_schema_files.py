"""Each schema is a valid draft 2020-12 schema; examples and protocol.json validate as they should."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schema_support import (
    EXAMPLES_DIR,
    ID_BASE,
    SCHEMA_DIR,
    all_schemas,
    load_json,
    protocol,  # noqa: F401 - fixture
    schema_files,
    validator,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Every schema except common.schema.json (definitions only) has example folders.
EXAMPLE_SCHEMAS = [p.name for p in schema_files() if p.name != "common.schema.json"]


def example_name(schema_file: str) -> str:
    return schema_file.removesuffix(".schema.json")


def examples(kind: str) -> list[tuple[str, Path]]:
    return [
        (schema_file, path)
        for schema_file in EXAMPLE_SCHEMAS
        for path in sorted((EXAMPLES_DIR / example_name(schema_file) / kind).glob("*.json"))
    ]


def case_id(case: tuple[str, Path]) -> str:
    return f"{case[1].parent.parent.name}/{case[1].name}"


def test_expected_schemas_exist() -> None:
    names = {p.name for p in schema_files()}
    assert names == {
        "common.schema.json",
        "task.schema.json",
        "args.schema.json",
        "error.schema.json",
        "worker.schema.json",
        "results-message.schema.json",
        "outcome-message.schema.json",
        "rejected.schema.json",
        "protocol.schema.json",
        "scripts.schema.json",
    }


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = load_json(path)
    assert schema["$schema"] == DRAFT
    assert schema["$id"] == ID_BASE + path.name
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_schema_refs_resolve(path: Path) -> None:
    """Walk every $ref and resolve it against the registry of all schemas."""
    v = validator(path.name)
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_json(path))
    resolver = v._resolver  # noqa: SLF001 - the public API resolves lazily only while validating
    for ref in refs:
        resolver.lookup(ref)


@pytest.mark.parametrize("schema_file", EXAMPLE_SCHEMAS)
def test_each_schema_has_several_examples(schema_file: str) -> None:
    folder = EXAMPLES_DIR / example_name(schema_file)
    assert len(list((folder / "valid").glob("*.json"))) >= 3
    assert len(list((folder / "invalid").glob("*.json"))) >= 3


def test_example_folders_name_schemas() -> None:
    names = {example_name(s) for s in EXAMPLE_SCHEMAS}
    for folder in EXAMPLES_DIR.iterdir():
        assert folder.name in names, f"{folder} names no schema"
        assert {p.name for p in folder.iterdir()} <= {"valid", "invalid"}


@pytest.mark.parametrize("case", examples("valid"), ids=case_id)
def test_valid_example(case: tuple[str, Path]) -> None:
    schema_file, path = case
    errors = [e.message for e in validator(schema_file).iter_errors(load_json(path))]
    assert errors == []


@pytest.mark.parametrize("case", examples("invalid"), ids=case_id)
def test_invalid_example(case: tuple[str, Path]) -> None:
    schema_file, path = case
    assert not validator(schema_file).is_valid(load_json(path))


def test_seed_hash_is_a_valid_finished_hash() -> None:
    """The HGETALL printed in the original key schema is a finished, successful hash."""
    seed = {
        "function": "echo",
        "state": "finished",
        "args": '{\n  "text": "it worked!"\n}',
        "pending-created": "2015-12-05T00:19:01.834909Z",
        "executing-created": "2015-12-05T00:19:01.835324Z",
        "result-value": '"it worked!"',
        "result": "successful",
        "finished-created": "2015-12-05T00:19:01.835429Z",
    }
    assert validator("task.schema.json").is_valid(seed)
    assert load_json(EXAMPLES_DIR / "task" / "valid" / "finished-successful-seed.json") == seed


def test_protocol_json_validates(protocol: dict[str, Any]) -> None:
    errors = [e.message for e in validator("protocol.schema.json").iter_errors(protocol)]
    assert errors == []


def test_protocol_json_points_at_its_schema(protocol: dict[str, Any]) -> None:
    assert (SCHEMA_DIR / protocol["$schema"]).resolve() == SCHEMA_DIR / "protocol.schema.json"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2015-12-05T00:19:01.834909Z", True),
        ("2015-12-05T00:19:01Z", False),
        ("2015-12-05T00:19:01.834909", False),
        ("2015-12-05 00:19:01.834909Z", False),
        ("2015-12-05T00:19:01.8349Z", False),
        ("2015-13-05T00:19:01.834909Z", False),
    ],
)
def test_timestamp(value: str, valid: bool) -> None:
    assert validator("worker.schema.json").evolve(
        schema={"$ref": "common.schema.json#/$defs/timestamp"}
    ).is_valid(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11111111-2222-2222-2222-333333333333", True),
        ("tenant:42:*?[x]", True),
        ("é" * 10, True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        ("a b", False),
        ("a\tb", False),
        ("a\u00a0b", False),
        ("a\u3000b", False),
        ("a\x00b", False),
        ("a\x7fb", False),
    ],
)
def test_task_id(value: str, valid: bool) -> None:
    v = validator("common.schema.json").evolve(schema={"$ref": "common.schema.json#/$defs/task-id"})
    assert v.is_valid(value) is valid
