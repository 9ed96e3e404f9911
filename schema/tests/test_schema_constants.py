"""Enums in the schemas equal protocol.json; the Lua scripts and protocol.json agree."""

from __future__ import annotations

from typing import Any

from schema_support import LUA_DIR, all_schemas, protocol  # noqa: F401 - fixture


def protocol_sets(protocol: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "states": protocol["states"],
        "outcomes": protocol["outcomes"],
        "error-codes": list(protocol["error-codes"]),
        "reject-codes": list(protocol["reject-codes"]),
    }


def test_state_enum(protocol: dict[str, Any]) -> None:
    assert all_schemas()["task.schema.json"]["$defs"]["state"]["enum"] == protocol["states"]


def test_outcome_enum(protocol: dict[str, Any]) -> None:
    assert all_schemas()["task.schema.json"]["$defs"]["outcome"]["enum"] == protocol["outcomes"]


def test_error_code_enum(protocol: dict[str, Any]) -> None:
    enum = all_schemas()["error.schema.json"]["$defs"]["error-code"]["enum"]
    assert enum == list(protocol["error-codes"])


def test_reject_code_enum(protocol: dict[str, Any]) -> None:
    enum = all_schemas()["rejected.schema.json"]["$defs"]["reject-code"]["enum"]
    assert enum == list(protocol["reject-codes"])


def test_every_enum_is_a_protocol_list(protocol: dict[str, Any]) -> None:
    """No schema carries an enum of its own: each equals one list of protocol.json."""
    allowed = list(protocol_sets(protocol).values())
    found: list[tuple[str, list[Any]]] = []

    def walk(name: str, node: Any) -> None:
        if isinstance(node, dict):
            if "enum" in node:
                found.append((name, node["enum"]))
            for value in node.values():
                walk(name, value)
        elif isinstance(node, list):
            for value in node:
                walk(name, value)

    for name, schema in all_schemas().items():
        walk(name, schema)
    assert found
    for name, enum in found:
        assert enum in allowed, f"{name}: enum {enum} is not a list of protocol.json"


def test_task_schema_fields_equal_protocol_fields(protocol: dict[str, Any]) -> None:
    properties = all_schemas()["task.schema.json"]["properties"]
    assert list(properties) == list(protocol["fields"])


def test_rejected_record_members() -> None:
    schema = all_schemas()["rejected.schema.json"]
    assert schema["required"] == ["entry", "error-code", "error-reason", "rejected-created", "worker"]


def test_worker_key_fields() -> None:
    schema = all_schemas()["worker.schema.json"]
    expected = ["id", "host", "pid", "language", "functions", "queues", "started", "heartbeat", "protocol"]
    assert schema["required"] == expected
    optional = ["implementation", "version", "concurrency", "running", "leases"]  # SPEC.md 9.1
    assert list(schema["properties"]) == [*expected, *optional]


def test_scripts_equal_lua_files(protocol: dict[str, Any]) -> None:
    assert sorted(protocol["scripts"]) == sorted(p.stem for p in LUA_DIR.glob("*.lua"))


def test_limits_and_defaults_match_common_schema(protocol: dict[str, Any]) -> None:
    defs = all_schemas()["common.schema.json"]["$defs"]
    assert defs["task-id"]["maxLength"] == protocol["limits"]["id-max-bytes"]
    assert defs["queue-name"]["maxLength"] == protocol["limits"]["queue-max-bytes"]
