"""What the producer's enqueue path builds, without Redis: ids, encoded arguments, enqueue.lua's
call and the reading of its reply (the shortcuts it takes for a plain call must change nothing)."""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from dothis.errors import InvalidArguments
from dothis.producer.queue import _encode_args, new_task_id
from dothis.producer.tracing import trace_fields
from dothis.store.ops import Ops
from dothis.store.replies import Enqueued
from dothis.wire import codec
from dothis.wire.protocol import Keys


def test_task_ids_are_random_uuid4_text() -> None:
    ids = [new_task_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for task_id in ids:
        parsed = uuid.UUID(task_id)
        assert str(parsed) == task_id  # lower-case hex, 8-4-4-4-12
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # every variant digit shows up: the two random bits beside the variant bits are used
    assert {task_id[19] for task_id in ids} == set("89ab")


class Arguments(Mapping[str, Any]):
    def __init__(self, **values: Any) -> None:
        self.values = values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@pytest.mark.parametrize(
    "args",
    [{}, {"a": 1}, {"text": "ooh yeeah", "n": [1, 2.5, None], "deep": {"x": True}},
     OrderedDict(b=2, a=1), MappingProxyType({"a": "é"}), MappingProxyType({}), Arguments(),
     Arguments(a=1)],
)  # fmt: skip
def test_args_are_encoded_as_before(args: Mapping[str, Any]) -> None:
    assert _encode_args(args) == codec.encode(dict(args))


@pytest.mark.parametrize("args", [[], [("a", 1)], "abc", None, 3])
def test_args_that_are_not_a_mapping_are_refused(args: Any) -> None:
    with pytest.raises(InvalidArguments, match="mapping"):
        _encode_args(args)


def test_args_named_otherwise_than_by_strings_are_refused() -> None:
    with pytest.raises(InvalidArguments, match="not a string"):
        _encode_args({1: "x"})


@pytest.mark.parametrize("value", [math.nan, math.inf, object(), b"x", {1, 2}])
def test_an_argument_without_json_form_is_named(value: object) -> None:
    with pytest.raises(InvalidArguments, match="'bad'"):
        _encode_args({"ok": 1, "bad": value})


@pytest.mark.parametrize(
    "value", [{}, {"a": 1}, {"a": [1, {"b": None}], "é": "ü"}, {"x": 1.5, "y": False}]
)
def test_encode_object_is_encode(value: dict[str, Any]) -> None:
    assert codec.encode_object(value) == codec.encode(value)


@pytest.mark.parametrize("value", [{"a": math.nan}, {"a": math.inf}, {"a": object()}])
def test_encode_object_refuses_what_encode_refuses(value: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.encode_object(value)


def test_enqueue_call_keys_and_args() -> None:
    keys = Keys("q")
    fields = ["function", "f", "state", "pending", "args", "{}", "pending-created", "t"]
    plain = Ops(keys).enqueue("id1", "back", [], fields)
    assert plain.script == "enqueue"
    assert plain.keys == ["q:task:id1", "q:pending", "q:scheduled"]
    assert plain.args == ["id1", "back", "1", "0", *fields]
    eager = Ops(keys).enqueue("id1", "front", (), fields, replace=False, into_executing=True)
    assert eager.keys == ["q:task:id1", "q:executing", "q:scheduled"]
    assert eager.args == ["id1", "front", "0", "0", *fields]
    child = Ops(keys).enqueue("id2", "back", ("p1", "p2"), fields)
    assert child.keys == ["q:task:id2", "q:pending", "q:scheduled", "q:task:p1", "q:dependents:p1",
                          "q:task:p2", "q:dependents:p2", "q:waiting"]  # fmt: skip
    assert child.args == ["id2", "back", "1", "2", "p1", "p2", *fields]


@pytest.mark.parametrize(
    ("raw", "reply"),
    [(1, Enqueued.CREATED), (0, Enqueued.EXISTS), (-2, Enqueued.PARENT_FAILED),
     (-3, Enqueued.PARENT_MISSING), (b"1", Enqueued.CREATED), (b"0", Enqueued.EXISTS)],
)  # fmt: skip
def test_enqueue_reply(raw: object, reply: Enqueued) -> None:
    assert Ops(Keys("q")).enqueue("id", "back", [], []).parse(raw) is reply


def test_an_unknown_enqueue_reply_is_an_error() -> None:
    with pytest.raises(ValueError):
        Ops(Keys("q")).enqueue("id", "back", [], []).parse(7)


def test_no_trace_fields_outside_a_span() -> None:
    assert trace_fields() == []


def test_trace_fields_of_the_active_span() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("enqueue") as span:
        context = span.get_span_context()
        fields = trace_fields()
    assert fields[0] == "traceparent" and len(fields) == 2
    assert fields[1].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert trace_fields() == []
