"""schema/client-errors.json, the client error vocabulary, has the shape both clients rely on.

The file is the one table of the errors the Python package and the Node client raise to their
users: one entry per code, with the class name in each language. Whether each client's classes
match it is checked by that client's own tests; here only the table itself is checked.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schema_support import SCHEMA_DIR, load_json, protocol  # noqa: F401 - fixture

TABLE = SCHEMA_DIR / "client-errors.json"
SHAPE = SCHEMA_DIR / "tests" / "client-errors.schema.json"
ROOT = "dothis-error"
# The codes both clients promise; the table may grow, never lose one of these.
PROMISED = {
    "dothis-error",
    "connection-failed",
    "authentication-failed",
    "invalid-url",
    "queue-closed",
    "invalid-arguments",
    "task-exists",
    "wait-timeout",
    "dependency-failed",
    "dependency-missing",
    "task-not-found",
    "registry-error",
}
# A client code that is also a task error-code must mean the same thing; only this one is.
SHARED_WITH_TASK_ERROR_CODES = {"dependency-failed"}


@pytest.fixture(scope="module")
def table() -> dict[str, Any]:
    return load_json(TABLE)


@pytest.fixture(scope="module")
def entries(table: dict[str, Any]) -> list[dict[str, Any]]:
    return table["errors"]


def shape_validator() -> Draft202012Validator:
    schema = load_json(SHAPE)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def fixed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with a code of their own (not copied from the task hash)."""
    return [e for e in entries if "code-from" not in e]


def test_table_validates_against_its_shape(table: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in shape_validator().iter_errors(table)]
    assert errors == []


def test_table_points_at_its_shape(table: dict[str, Any]) -> None:
    assert (SCHEMA_DIR / table["$schema"]).resolve() == SHAPE.resolve()


def test_table_says_it_is_not_wire_data(table: dict[str, Any]) -> None:
    assert "client error vocabulary, not wire data" in table["description"]


def test_codes_are_unique(entries: list[dict[str, Any]]) -> None:
    codes = [e["code"] for e in entries]
    assert sorted(c for c in codes if codes.count(c) > 1) == []


def test_promised_codes_are_present(entries: list[dict[str, Any]]) -> None:
    assert PROMISED <= {e["code"] for e in fixed(entries)}


def test_one_root(entries: list[dict[str, Any]]) -> None:
    roots = [e for e in entries if e["parent"] is None]
    assert [(e["code"], e["python"], e["node"]) for e in roots] == [(ROOT, "DothisError", "DothisError")]


def test_every_entry_derives_from_the_root(entries: list[dict[str, Any]]) -> None:
    by_code = {e["code"]: e for e in fixed(entries)}
    for entry in entries:
        seen = [entry["code"]]
        current = entry
        while current["parent"] is not None:
            assert current["parent"] in by_code, f"{seen[-1]}: parent {current['parent']!r} is no code"
            current = by_code[current["parent"]]
            assert current["code"] not in seen, f"a cycle: {seen + [current['code']]}"
            seen.append(current["code"])
        assert current["code"] == ROOT


@pytest.mark.parametrize("language", ["python", "node"])
def test_a_class_has_one_parent_and_its_parent_exists_in_that_language(
    entries: list[dict[str, Any]], language: str
) -> None:
    by_code = {e["code"]: e for e in fixed(entries)}
    parents: dict[str, set[str | None]] = {}
    for entry in entries:
        name = entry[language]
        if name is None:
            continue
        parent = entry["parent"]
        parent_class = None if parent is None else by_code[parent][language]
        if parent is not None:
            assert parent_class is not None, f"{entry['code']}: {language} has no class for parent {parent}"
        parents.setdefault(name, set()).add(parent_class)
    assert {name: p for name, p in parents.items() if len(p) > 1} == {}


@pytest.mark.parametrize("language", ["python", "node"])
def test_a_class_name_is_shared_only_by_one_class(entries: list[dict[str, Any]], language: str) -> None:
    """Two entries name the same class only where one class raises several codes (DependencyError):
    then they agree on its parent and on the class of the other language."""
    names = [e[language] for e in entries if e[language] is not None]
    for name in {n for n in names if names.count(n) > 1}:
        sharing = [e for e in entries if e[language] == name]
        other = "node" if language == "python" else "python"
        assert len({e["parent"] for e in sharing}) == 1, name
        assert all(e[other] in (None, sharing[0][other]) for e in sharing), name


def test_task_failed_takes_its_code_from_the_task_hash(entries: list[dict[str, Any]]) -> None:
    copied = [e for e in entries if "code-from" in e]
    assert [(e["python"], e["node"], e["code-from"]) for e in copied] == [
        ("TaskFailed", "TaskFailedError", "error-code")
    ]


def test_codes_and_task_error_codes_overlap_only_where_they_mean_the_same(
    entries: list[dict[str, Any]], protocol: dict[str, Any]  # noqa: F811 - fixture
) -> None:
    shared = {e["code"] for e in fixed(entries)} & set(protocol["error-codes"])
    assert shared == SHARED_WITH_TASK_ERROR_CODES
    for entry in fixed(entries):
        if entry["code"] in shared:
            assert "error-code" in entry["when"], f"{entry['code']}: say that a task hash can hold it too"


def test_messages_name_the_fix(entries: list[dict[str, Any]]) -> None:
    by_code = {e["code"]: e for e in fixed(entries)}
    auth = by_code["authentication-failed"]
    assert auth["parent"] == "connection-failed"
    for needle in ("redis://:PASSWORD@host:6379/0", "redis://USER:PASSWORD@host:6379/0", "DOTHIS_REDIS_URL"):
        assert needle in auth["fix"]
    for needle in ("NOAUTH", "WRONGPASS", "unauthenticated multibulk length", "invalid username-password pair"):
        assert needle in auth["when"]
    url = by_code["invalid-url"]
    assert "DB index is out of range" in url["when"]
    assert "`databases`" in url["fix"] and "16" in url["fix"]
    assert by_code["registry-error"]["node"] is None


def base_table(table: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(table)


def broken_tables(table: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cases = []

    missing_fix = base_table(table)
    del missing_fix["errors"][1]["fix"]
    cases.append(("an entry without fix", missing_fix))

    bad_code = base_table(table)
    bad_code["errors"][1]["code"] = "Connection_Failed"
    cases.append(("a code that is not lowercase-hyphenated", bad_code))

    copied_fixed = base_table(table)
    copied_fixed["errors"][1]["code-from"] = "error-code"
    cases.append(("code-from on an entry with a fixed code", copied_fixed))

    no_class = base_table(table)
    no_class["errors"][1]["python"] = None
    no_class["errors"][1]["node"] = None
    cases.append(("an entry with no class in any language", no_class))

    extra = base_table(table)
    extra["errors"][1]["status"] = 500
    cases.append(("an unknown key", extra))

    wire = base_table(table)
    wire["description"] = "error codes"
    cases.append(("a description that does not say what the file is", wire))
    return cases


def test_shape_rejects_broken_tables(table: dict[str, Any]) -> None:
    validator = shape_validator()
    accepted = [name for name, broken in broken_tables(table) if validator.is_valid(broken)]
    assert accepted == []
