"""The Python constants equal schema/protocol.json, the one source of wire constants."""

from __future__ import annotations

import json

from support import REPO

from dothis.store.scripts import NAMES
from dothis.wire import clock, protocol

DATA = json.loads((REPO / "schema" / "protocol.json").read_text())


def test_version() -> None:
    assert DATA["protocol"] == protocol.PROTOCOL_VERSION


def test_enums_equal_schema() -> None:
    assert [s.value for s in protocol.State] == DATA["states"]
    assert [o.value for o in protocol.Outcome] == DATA["outcomes"]
    assert [c.value for c in protocol.ErrorCode] == list(DATA["error-codes"])
    assert [c.value for c in protocol.RejectCode] == list(DATA["reject-codes"])
    assert [f.value for f in protocol.Field] == list(DATA["fields"])


def test_key_templates_equal_schema() -> None:
    assert DATA["keys"] == protocol.KEY_TEMPLATES
    keys = protocol.Keys("q")
    built = {
        "task": keys.task("<id>"), "pending": keys.pending, "executing": keys.executing,
        "results": keys.results, "outcomes": keys.outcomes, "worker": keys.worker("<worker>"),
        "rejected": keys.rejected,
        "scheduled": keys.scheduled, "failed": keys.failed, "succeeded": keys.succeeded,
        "dependents": keys.dependents("<id>"), "releasing": keys.releasing,
        "periodic": keys.periodic, "workers": keys.workers, "waiting": keys.waiting,
        "progress": keys.progress,
    }  # fmt: skip
    assert {name: t.replace("<queue>", "q") for name, t in DATA["keys"].items()} == built


def test_limits_and_defaults_equal_schema() -> None:
    limits, defaults = DATA["limits"], DATA["defaults"]
    assert limits == {"id-max-bytes": protocol.ID_MAX_BYTES,
                      "queue-max-bytes": protocol.QUEUE_MAX_BYTES,
                      "json-max-depth": protocol.JSON_MAX_DEPTH,
                      "outcome-message-max-bytes": protocol.OUTCOME_MESSAGE_MAX_BYTES}  # fmt: skip
    assert defaults == {
        "lease-ms": protocol.DEFAULT_LEASE_MS, "heartbeat-ms": protocol.DEFAULT_HEARTBEAT_MS,
        "reap-ms": protocol.DEFAULT_REAP_MS, "max-claims": protocol.DEFAULT_MAX_CLAIMS,
        "max-value-bytes": protocol.DEFAULT_MAX_VALUE_BYTES,
        "max-fields": protocol.DEFAULT_MAX_FIELDS, "rejected-max": protocol.DEFAULT_REJECTED_MAX,
        "retry-base-ms": protocol.DEFAULT_RETRY_BASE_MS,
        "retry-max-ms": protocol.DEFAULT_RETRY_MAX_MS, "schedule-ms": protocol.DEFAULT_SCHEDULE_MS,
        "result-ttl": protocol.DEFAULT_RESULT_TTL, "failure-ttl": protocol.DEFAULT_FAILURE_TTL,
    }  # fmt: skip


def test_scripts_are_the_lua_files() -> None:
    files = sorted(path.stem for path in (REPO / "lua").glob("*.lua"))
    assert sorted(DATA["scripts"]) == files == sorted(NAMES)


def test_entry_parsing() -> None:
    keys = protocol.Keys("dothis")
    assert keys.parse_entry(b"abc") == ("abc", "")
    assert keys.parse_entry(b"dothis:task:abc") == ("abc", "")
    assert keys.parse_entry(b"a:b*c?[d]") == ("a:b*c?[d]", "")
    for bad in (b"", b"has space", b"tab\there", b"\xff\xfe", b"x" * 257, b"dothis:task:"):
        task_id, problem = keys.parse_entry(bad)
        assert task_id is None and problem


def test_queue_names_are_checked() -> None:
    for bad in ("", "two words", "x" * 129):
        try:
            protocol.Keys(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    assert protocol.Keys("{emails}").pending == "{emails}:pending"


def test_timestamp_format() -> None:
    import re

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", clock.now_iso())


def test_the_args_schema_asks_only_for_an_object() -> None:
    """The producer checks args by hand (a mapping of str to JSON values) instead of importing
    jsonschema; that is the whole of args.schema.json only while it asks for nothing more."""
    import json
    from pathlib import Path

    schema = json.loads((Path(__file__).parents[3] / "schema" / "args.schema.json").read_text())
    constraints = set(schema) - {"$schema", "$id", "title", "description"}
    assert constraints == {"type"} and schema["type"] == "object"
