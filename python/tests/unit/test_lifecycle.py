"""The flow one claimed entry goes through (engine/lifecycle.py), driven against a fake store that
answers the operations layer's requests: what is asked of Redis, in which order, with what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from dothis.engine.decide import RetryPolicy
from dothis.engine.events import Kind, Observers, TaskEvent
from dothis.engine.flow import RunTry, drive_sync
from dothis.engine.lifecycle import Context, process
from dothis.engine.registry import Registry
from dothis.engine.tries import Raised, RetryRequested, Returned, TryResult
from dothis.store.ops import Command, Limits, Ops, ScriptCall
from dothis.wire.clock import now_iso
from dothis.wire.protocol import Keys

registry = Registry()
registry.add(lambda text: text, name="echo")

Answer = Any | Callable[[ScriptCall[Any] | Command[Any]], Any]


class Seq(list[Any]):
    """Answers in turn, one per request."""


class FakeStore:
    """Answers requests by script name or command; records every request."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.requests: list[ScriptCall[Any] | Command[Any]] = []

    def run(self, request: ScriptCall[Any] | Command[Any]) -> Any:
        self.requests.append(request)
        name = request.script if isinstance(request, ScriptCall) else request.args[0]
        answer = self.answers[name]
        if isinstance(answer, Seq):
            answer = answer.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        raw = answer(request) if callable(answer) else answer
        return request.parse(raw)

    def names(self) -> list[str]:
        return [r.script if isinstance(r, ScriptCall) else r.args[0] for r in self.requests]

    def call(self, name: str) -> ScriptCall[Any]:
        return next(r for r in self.requests if isinstance(r, ScriptCall) and r.script == name)


def context(**changes: Any) -> Context:
    keys = Keys("q")
    base = {"ops": Ops(keys), "worker_id": "w1", "registry": registry,
            "limits": Limits(1024, 64), "policy": RetryPolicy(base_ms=1, max_ms=1),
            "result_ttl": 100, "failure_ttl": 200}  # fmt: skip
    return Context(**{**base, **changes})


def started(**fields: str) -> list[Any]:
    flat = [item.encode() for pair in fields.items() for item in pair]
    return [b"ok", 1, flat]


def run(store: FakeStore, ctx: Context, *results: TryResult) -> list[RunTry]:
    asked: list[RunTry] = []
    queue = list(results)

    def run_try(request: RunTry) -> TryResult:
        asked.append(request)
        return queue.pop(0)

    drive_sync(process(b"t1", ctx), store, run_try)  # type: ignore[arg-type]
    return asked


def written(call: ScriptCall[Any], first: int) -> dict[str, str]:
    flat = [str(item) for item in call.args[first:]]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def test_a_task_that_returns_is_finished_with_its_value_and_default_ttl() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": "hi"}'), finish=1)
    asked = run(store, context(), Returned('"hi"'))
    assert [request.invocation.args for request in asked] == [{"text": "hi"}]
    assert store.names() == ["start", "finish"]
    finish = store.call("finish")
    assert finish.args[:3] == [b"t1", "w1", 1]  # entry, owner, fencing token
    assert finish.args[7:9] == ["succeeded", "100"]  # registry and the default result-ttl
    assert written(finish, 10)["result-value"] == '"hi"'


def test_the_hash_own_ttl_wins_and_minus_one_keeps() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}', **{"result-ttl": "-1"}),
                      finish=1)  # fmt: skip
    run(store, context(), Returned("1"))
    assert store.call("finish").args[8] == "-1"


def test_cancel_requested_before_the_try_ends_it_cancelled_without_running() -> None:
    store = FakeStore(start=started(function="echo", args="{}", **{"cancel-requested": "x"}),
                      finish=1)  # fmt: skip
    assert run(store, context()) == []
    finish = store.call("finish")
    assert finish.args[7:9] == ["failed", "200"]  # the failure-ttl applies to cancelled too
    assert written(finish, 10)["result"] == "cancelled"


def test_a_task_past_its_ttl_expires_without_running() -> None:
    store = FakeStore(start=started(function="echo", args="{}", ttl="1",
                                    **{"pending-created": "2020-01-01T00:00:00.000000Z"}),
                      finish=1)  # fmt: skip
    assert run(store, context()) == []
    assert written(store.call("finish"), 10)["result"] == "expired"


@pytest.mark.parametrize(
    ("reply", "code"),
    [([b"too-large", 1, b"field args holds 9 bytes"], "too-large"),
     ([b"invalid-state", 1, b"weird"], "invalid-state")],
)  # fmt: skip
def test_a_refused_start_is_failed_with_its_code(reply: list[Any], code: str) -> None:
    store = FakeStore(start=reply, finish=1)
    assert run(store, context()) == []
    assert written(store.call("finish"), 10)["error-code"] == code


@pytest.mark.parametrize("reply", [[b"missing"], [b"wrong-type", b"string"]])
def test_an_entry_without_a_usable_hash_is_rejected(reply: list[Any]) -> None:
    store = FakeStore(start=reply, reject=1)
    assert run(store, context()) == []
    assert store.names() == ["start", "reject"]


def test_a_lost_start_reply_is_read_back_never_sent_again() -> None:
    fields = {b"function": b"echo", b"args": b'{"text": 1}', b"state": b"executing"}
    store = FakeStore(start=redis.ConnectionError("reset"), HMGET=[b"executing", b"w1", b"7", None],
                      HGETALL=fields, finish=1)  # fmt: skip
    run(store, context(), Returned("1"))
    assert store.names() == ["start", "HMGET", "HGETALL", "finish"]
    assert store.call("finish").args[2] == 7  # the claims read back is the fencing token


def test_a_failed_try_with_attempts_left_is_rescheduled() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}', attempts="2"), retry=1)
    run(store, context(), Raised("boom"))
    assert store.names() == ["start", "retry"]
    assert written(store.call("retry"), 4)["retries"] == "1"


def test_eager_mode_retries_in_place_and_records_the_count() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}', attempts="3"), finish=1)
    asked = run(store, context(in_place=True), Raised("a"), RetryRequested("b", 0), Returned("1"))
    assert [request.invocation.settings.retries for request in asked] == [0, 1, 2]
    assert store.names() == ["start", "finish"]
    assert written(store.call("finish"), 10)["retries"] == "2"


def test_recording_survives_an_outage_and_a_refusal() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}'),
                      finish=Seq([redis.ConnectionError("down"), redis.ResponseError("WRONGTYPE"),
                                  1]))  # fmt: skip
    ctx = context()
    run(store, ctx, Returned("1"))
    assert store.names() == ["start", "finish", "finish", "finish"]
    assert ctx.processed == 1


def test_a_fenced_finish_is_counted_as_fenced() -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}'), finish=0)
    ctx = context()
    run(store, ctx, Returned("1"))
    assert (ctx.processed, ctx.fenced) == (1, 1)


def test_follow_ups_run_when_finish_says_they_are_due() -> None:
    ended = {b"state": b"finished", b"result": b"successful", b"result-value": b"1",
             b"on-success": b"echo", b"pending-created": now_iso().encode()}  # fmt: skip
    store = FakeStore(
        start=started(function="echo", args='{"text": 1}'),
        finish=2,
        HGETALL=ended,
        enqueue=1,
        SMEMBERS=[b"child"],
        release=1,
        SREM=1,
    )
    ctx = context(in_place=True)
    queued = drive_sync(process(b"t1", ctx), store, lambda request: Returned("1"))  # type: ignore[arg-type]
    assert queued[1] == "child" and queued[0].startswith("cb-")
    enqueue = store.call("enqueue")
    assert enqueue.keys[1] == "q:executing"  # eager: follow-ups are queued claimed, not pending
    assert store.call("release").keys[1] == "q:executing"


def test_an_outcome_whose_hash_is_gone_is_logged(caplog) -> None:
    store = FakeStore(start=started(function="echo", args='{"text": 1}'), finish=-1)
    run(store, context(), Returned("1"))
    assert "its hash is gone" in caplog.text


def test_each_step_is_one_event_for_logs_metrics_and_traces() -> None:
    events: list[TaskEvent] = []
    store = FakeStore(start=started(function="echo", args='{"text": 1}', attempts="3"), retry=1,
                      finish=1)  # fmt: skip
    run(store, context(observe=events.append), Raised("boom", "Traceback: boom"))
    run(store, context(observe=events.append), Returned("1"))
    retried, started_again, succeeded = events[1], events[2], events[3]
    assert [event.kind for event in events] == [Kind.STARTED, Kind.RETRIED, Kind.STARTED,
                                                Kind.SUCCEEDED]  # fmt: skip
    assert (events[0].function, events[0].try_number, events[0].attempts) == ("echo", 1, 3)
    assert (retried.code, retried.reason, retried.try_number) == ("exception", "boom", 1)
    assert retried.traceback == "Traceback: boom" and retried.delay is not None
    assert started_again.queue == "q" and started_again.worker_id == "w1"
    assert succeeded.seconds is not None and succeeded.seconds >= 0 and succeeded.code is None


def test_a_rejected_entry_and_a_failing_observer_leave_the_flow_alone() -> None:
    events: list[TaskEvent] = []

    def broken(event: TaskEvent) -> None:
        raise RuntimeError("observer bug")

    store = FakeStore(start=[b"missing"], reject=1)
    run(store, context(observe=Observers([broken, events.append])))
    assert store.names() == ["start", "reject"]
    assert [(event.kind, event.code) for event in events] == [(Kind.REJECTED, "missing-hash")]


def test_an_outcome_given_up_is_an_event_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics and the manifest's running list let go of a task whose outcome could not be
    recorded (its lease runs out and a reaper recovers it)."""
    from dothis.engine import lifecycle

    monkeypatch.setattr(lifecycle, "RECORD_TRIES", 2)
    events: list[TaskEvent] = []
    store = FakeStore(start=started(function="echo", args='{"text": 1}'),
                      finish=redis.ConnectionError("down"))  # fmt: skip
    run(store, context(observe=events.append), Returned("1"))
    assert store.names() == ["start", "finish", "finish"]
    assert [event.kind for event in events] == [Kind.STARTED, Kind.DISCARDED]
    assert events[1].function == "echo" and "could not be recorded" in (events[1].reason or "")
