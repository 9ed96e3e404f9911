"""Scenario 5: fuzz a running worker with raw task hashes and entries, pushed with redis-py.

Hypothesis generates batches of inputs: good tasks, and bad ones with one defect each (an id
with spaces, control bytes, non-UTF-8 bytes or ~1 MB of length; a key of the wrong type; a bad
state, protocol, function or args; too many fields or bytes; non-UTF-8 bytes in any field) plus
noise that must not matter (unknown fields with arbitrary bytes). One worker serves all batches.

Required: the worker never exits and never spins; every good task finishes successful and runs
once; every bad one ends as a failed hash with its error-code (a code of schema/protocol.json),
as a record in ``<queue>:rejected`` that validates against schema/rejected.schema.json, or (state
already executing/finished) as a dropped entry with the hash untouched; nothing stays in
executing. A second test makes ``<queue>:pending`` and ``<queue>:executing`` themselves the wrong
type for a moment.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from support import SCHEMA

from chaos.checker import History, Row
from chaos.harness import Fleet, cpu_seconds, descendants, poll, size, wait_all_finished
from dothis import Queue

pytestmark = pytest.mark.chaos

PROTOCOL = json.loads((SCHEMA / "protocol.json").read_text())
ERROR_CODES = frozenset(PROTOCOL["error-codes"])
REJECT_CODES = frozenset(PROTOCOL["reject-codes"])
VERSION = int(PROTOCOL["protocol"])
MAX_FIELDS, MAX_VALUE = 64, 65536
OPTIONS = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250",
           "--concurrency", "2", "--max-fields", str(MAX_FIELDS),
           "--max-value-bytes", str(MAX_VALUE))  # fmt: skip
REGISTERED = {"add", "echo", "fail", "poison", "record", "sleep", "sink", "not_a_number", "fails",
              "big", "big_async", "block_loop", "careless_fork", "careless_fork_async"}  # fmt: skip
BATCHES, BATCH = size(10, 200), 50


def rejected_validator() -> Draft202012Validator:
    contents = [json.loads(path.read_text()) for path in SCHEMA.glob("*.schema.json")]
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in contents
    )
    schema = json.loads((SCHEMA / "rejected.schema.json").read_text())
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


# -- what hypothesis generates ---------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One input, without its id (the test numbers inputs so ids never collide)."""

    mutation: str
    variant: Any = None
    noise: tuple[tuple[bytes, bytes], ...] = ()
    omit_state: bool = False
    omit_protocol: bool = False


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
noise = st.dictionaries(
    st.binary(max_size=12).map(lambda name: b"x-" + name), st.binary(max_size=48), max_size=6
).map(lambda fields: tuple(fields.items()))

NOT_JSON = ["{", "{not json", "{'token': 'x'}", '{"token": "x"} extra', "", " ", "\ufeff{}",
            '{"token": NaN}', '{"token": Infinity}', '{"token": -Infinity}',
            '{"token": "x", "token": "y"}', '{"a": {"b": 1, "b": 2}}',
            '{"x": ' + "1" * 4301 + "}", "[" * 70 + "]" * 70, '{"x": ' + "[" * 64 + "]" * 64 + "}",
            "{\"x\": \"\\ud800\"", "nul\x00l"]  # fmt: skip
NOT_OBJECT = ["[1, 2]", '"x"', "1", "null", "true", "[]", '[{"token": "x"}]', "-0.5e3"]
BAD_PROTOCOL = ["0", "01", "-1", "1.0", " 1", "1 ", "abc", "", "+1", "0x1", str(VERSION + 1),
                "99999999999999999999999"]  # fmt: skip
BAD_STATE = [b"", b"PENDING", b"done", b"pending ", b"executing\x00", b"\xff", b"x" * 40,
             b"failed", b"running"]  # fmt: skip
INVALID_IDS = ["space", "tab", "nbsp", "control", "empty", "long", "huge", "non-utf8",
               "fullkey-empty"]  # fmt: skip
WRONG_TYPES = ["string", "list", "set", "zset", "stream"]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    mutation = draw(st.sampled_from([
        "good", "good", "good", "good-sink", "good-id", "good-twice",
        "invalid-id", "missing-hash", "wrong-type", "state-duplicate", "state-invalid",
        "too-many-fields", "too-big-value", "too-big-name", "invalid-encoding",
        "bad-protocol", "no-function", "unknown-function", "malformed-args", "args-not-object",
        "bad-arguments", "raises", "unserializable", "chaotic",
    ]))  # fmt: skip
    variant: Any = None
    if mutation == "good-sink":
        variant = draw(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "token"),
                                       json_values, max_size=4))  # fmt: skip
        if draw(st.booleans()):
            variant["deep"] = json.loads("[" * 62 + "]" * 62)  # depth 64 in all: allowed
        if draw(st.booleans()):
            variant["big"] = int("9" * 4300)  # 4300 digits: allowed
    elif mutation == "good-id":
        variant = draw(st.sampled_from(["colons", "glob", "fullkey", "unicode", "max"]))
    elif mutation == "invalid-id":
        variant = draw(st.sampled_from(INVALID_IDS))
    elif mutation == "wrong-type":
        variant = draw(st.sampled_from(WRONG_TYPES))
    elif mutation == "state-duplicate":
        variant = draw(st.sampled_from([b"executing", b"finished"]))
    elif mutation == "state-invalid":
        variant = draw(st.sampled_from(BAD_STATE) | st.binary(max_size=40).filter(
            lambda state: state not in (b"pending", b"executing", b"finished")))  # fmt: skip
    elif mutation == "too-many-fields":
        variant = draw(st.integers(MAX_FIELDS + 1, MAX_FIELDS + 40))
    elif mutation == "too-big-value":
        variant = (draw(st.sampled_from([b"args", b"function", b"x-big", b"protocol"])),
                   draw(st.sampled_from([MAX_VALUE + 1, 200_000, 1_000_000])))  # fmt: skip
    elif mutation == "invalid-encoding":
        bad = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"])
        variant = (draw(st.sampled_from([b"function", b"args", b"protocol"])), draw(bad))
    elif mutation == "bad-protocol":
        variant = draw(st.sampled_from(BAD_PROTOCOL))
    elif mutation == "no-function":
        variant = draw(st.sampled_from(["missing", "empty"]))
    elif mutation == "unknown-function":
        named = st.sampled_from(["os.system", "__import__", "eval", "record ", "Record"])
        texts = st.text(min_size=1, max_size=30).filter(lambda name: name not in REGISTERED)
        variant = draw(named | texts)
    elif mutation == "malformed-args":
        variant = draw(st.sampled_from(NOT_JSON) | st.text(max_size=30).filter(_not_json))
    elif mutation == "args-not-object":
        variant = draw(st.sampled_from(NOT_OBJECT))
    elif mutation == "bad-arguments":
        variant = draw(st.sampled_from(["missing", "unexpected"]))
    elif mutation == "chaotic":
        known = [b"function", b"state", b"args", b"protocol", b"claims", b"worker", b"result",
                 b"pending-created"]  # fmt: skip
        names = st.sampled_from(known) | st.binary(max_size=8)
        values = st.sampled_from([b"record", b"pending", b"{}", b"1", b"-1", b"1e308", b"inf",
                                  b"nan", b"executing", b""]) | st.binary(max_size=24)  # fmt: skip
        variant = tuple(draw(st.dictionaries(names, values, min_size=1, max_size=8)).items())
    return Spec(mutation, variant, draw(noise), draw(st.booleans()), draw(st.booleans()))


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


# -- turning a spec into Redis writes and an expectation ---------------------------------------


@dataclass
class Input:
    label: str
    entry: bytes
    kind: str = "none"  # the key's type: hash, string, list, set, zset, stream or none
    key: bytes = b""
    fields: dict[bytes, bytes] = field(default_factory=dict)
    expect: str = "success"  # success, failed, rejected, duplicate, any
    codes: frozenset[str] = frozenset()
    token: str | None = None
    twice: bool = False
    before: Any = None  # the key's contents before the run, for "untouched" checks


def build(spec: Spec, queue: str, number: int, run: str) -> Input:  # noqa: PLR0915
    token = f"{run}-{number}"
    base: dict[bytes, bytes] = dict(spec.noise)
    base[b"function"] = b"record"
    base[b"args"] = json.dumps({"token": token}).encode()
    if not spec.omit_state:
        base[b"state"] = b"pending"
    if not spec.omit_protocol:
        base[b"protocol"] = str(VERSION).encode()
    prefix = f"{queue}:task:".encode()
    item = Input(spec.mutation, token.encode(), "hash", prefix + token.encode(), base,
                 token=token)  # fmt: skip
    m, v = spec.mutation, spec.variant
    if m == "good-sink":
        base[b"function"] = b"sink"
        base[b"args"] = json.dumps({"token": token, **v}, indent=2).encode()
    elif m == "good-id":
        task_id = {"colons": f"a:b::{token}:", "glob": f"*?[x]{{y}}{token}\\*",
                   "fullkey": token, "unicode": f"ünï-çødé-{token}-\u2603",
                   "max": token.ljust(256, "z")}[v]  # fmt: skip
        item.key = prefix + task_id.encode()
        item.entry = item.key if v == "fullkey" else task_id.encode()
    elif m == "good-twice":
        item.twice = True
    elif m == "invalid-id":
        entry = {"space": f"sp ace{token}".encode(), "tab": f"t\t{token}".encode(),
                 "nbsp": f"n\u00a0{token}".encode(), "control": f"c\x01{token}".encode(),
                 "empty": b"", "long": token.encode().ljust(257, b"z"),
                 "huge": token.encode().ljust(1_000_000, b"h"),
                 "non-utf8": token.encode() + b"\xff\xfe", "fullkey-empty": prefix}[v]  # fmt: skip
        item.entry = entry
        item.key = prefix + entry if v not in ("huge", "fullkey-empty") else b""
        item.kind = "hash" if item.key else "none"  # a good hash no key may be built for
        item.expect, item.codes, item.token = "rejected", frozenset({"invalid-id"}), None
    elif m == "missing-hash":
        item.kind, item.expect, item.codes = "none", "rejected", frozenset({"missing-hash"})
        item.token = None
    elif m == "wrong-type":
        item.kind, item.expect, item.codes = v, "rejected", frozenset({"wrong-type"})
        item.token = None
    elif m == "state-duplicate":
        base[b"state"] = v
        item.expect, item.token = "duplicate", None
    elif m == "state-invalid":
        base[b"state"] = v
        item.expect, item.codes = "failed", frozenset({"invalid-state"})
    elif m == "too-many-fields":
        for extra in range(v):
            base[b"x-many-%d" % extra] = b"v"
        item.expect, item.codes = "failed", frozenset({"too-large"})
    elif m == "too-big-value":
        name, length = v
        base[name] = (base.get(name, b"") + b" " * length)[:length]
        item.expect, item.codes = "failed", frozenset({"too-large"})
    elif m == "too-big-name":
        base[b"x-" + b"n" * MAX_VALUE] = b"v"
        item.expect, item.codes = "failed", frozenset({"too-large"})
    elif m == "invalid-encoding":
        name, bad = v
        base[name] = (base.get(name) or b"1")[:8] + bad
        item.expect, item.codes = "failed", frozenset({"invalid-encoding"})
    elif m == "bad-protocol":
        base[b"protocol"] = v.encode()
        item.expect, item.codes = "failed", frozenset({"unsupported-protocol"})
    elif m == "no-function":
        if v == "missing":
            del base[b"function"]
        else:
            base[b"function"] = b""
        item.expect, item.codes = "failed", frozenset({"missing-function"})
    elif m == "unknown-function":
        base[b"function"] = v.encode("utf-8", "surrogatepass")
        item.expect, item.codes = "failed", frozenset({"unknown-function"})
    elif m == "malformed-args":
        base[b"args"] = v.encode("utf-8", "surrogatepass")
        item.expect, item.codes = "failed", frozenset({"malformed-args"})
        if b"\\ud800" in base[b"args"] or b"\x00" in base[b"args"]:
            item.codes = frozenset({"malformed-args", "invalid-encoding"})
    elif m == "args-not-object":
        base[b"args"] = v.encode()
        item.expect, item.codes = "failed", frozenset({"args-not-object"})
    elif m == "bad-arguments":
        args = {} if v == "missing" else {"token": token, "unexpected": 1}
        base[b"args"] = json.dumps(args).encode()
        item.expect, item.codes = "failed", frozenset({"bad-arguments"})
    elif m == "raises":
        base[b"function"], base[b"args"] = b"fail", json.dumps({"message": token}).encode()
        item.expect, item.codes = "failed", frozenset({"exception"})
    elif m == "unserializable":
        base[b"function"], base[b"args"] = b"not_a_number", b"{}"
        item.expect, item.codes = "failed", frozenset({"unserializable-result"})
    elif m == "chaotic":
        chaotic = dict(spec.noise)
        chaotic.update(v)
        if chaotic.get(b"function") in (b"poison", b"sleep"):
            chaotic[b"function"] = b"echo"  # never let the fuzz kill or park the worker
        item.fields = chaotic
        item.expect = "any"
    return item


def push(client: redis.Redis, items: list[Input], queue: str) -> None:
    pipe = client.pipeline(transaction=False)
    for item in items:
        if item.kind == "hash" and item.key:
            pipe.hset(item.key, mapping=item.fields)  # type: ignore[arg-type]
        elif item.kind == "string":
            pipe.set(item.key, b"\xffnot a hash")
        elif item.kind == "list":
            pipe.rpush(item.key, b"a", b"b")
        elif item.kind == "set":
            pipe.sadd(item.key, b"a")
        elif item.kind == "zset":
            pipe.zadd(item.key, {b"a": 1.0})
        elif item.kind == "stream":
            pipe.xadd(item.key, {b"a": b"b"})
    pipe.execute()
    for item in items:
        if item.key and item.expect in ("duplicate", "rejected", "any"):
            item.before = client.dump(item.key)
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.lpush(f"{queue}:pending", item.entry)
        if item.twice:
            pipe.lpush(f"{queue}:pending", item.entry)
    pipe.execute()


# -- the worker under fuzz ---------------------------------------------------------------------


@dataclass
class Target:
    fleet: Fleet
    client: redis.Redis
    queue: str
    history: History
    pid: int
    cpu_start: float
    began: float
    inputs: Counter[str] = field(default_factory=Counter)


def tree_cpu(pid: int) -> float:
    total = 0.0
    for member in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds(member)
    return total


@pytest.fixture(scope="module")
def target(server, tmp_path_factory) -> Iterator[Target]:
    queue = f"fuzz{uuid.uuid4().hex[:8]}"
    history = History(tmp_path_factory.mktemp("fuzz") / "executions.log")
    fleet = Fleet(server.url, queue, *OPTIONS, log=history.log, name="fuzz").start(1)
    client = server.client()
    try:
        fleet.wait_registered(client, timeout=30)
        pid = fleet.slots[0].process.pid
        yield Target(fleet, client, queue, history, pid, tree_cpu(pid), time.monotonic())
    finally:
        fleet.close()
        client.close()


def settle(target: Target, items: list[Input], timeout: float) -> None:
    """Wait until both lists are empty and every expected outcome is written."""
    client, queue = target.client, target.queue
    waiting = [item.key for item in items if item.expect in ("success", "failed")]

    def done() -> bool:
        target.fleet.check_alive()
        if client.llen(f"{queue}:pending") or client.llen(f"{queue}:executing"):
            return False
        pipe = client.pipeline(transaction=False)
        for key in waiting:
            pipe.hget(key, "result")
        return all(pipe.execute())

    try:
        poll(done, timeout=timeout, interval=0.1)
    except AssertionError:
        stuck = client.lrange(f"{queue}:executing", 0, 5)
        raise AssertionError(
            f"not settled in {timeout} s: pending={client.llen(f'{queue}:pending')} "
            f"executing={[entry[:80] for entry in stuck]}; worker log tail:\n"
            f"{target.fleet.slots[0].output()[-3000:]}"
        ) from None


def verify(target: Target, items: list[Input]) -> list[str]:
    """Check every input's outcome; the problems found (empty: all good)."""
    client, queue = target.client, target.queue
    problems: list[str] = []
    validator = rejected_validator()
    records = [json.loads(raw) for raw in client.lrange(f"{queue}:rejected", 0, -1)]
    client.delete(f"{queue}:rejected")
    for record in records:
        errors = [error.message for error in validator.iter_errors(record)]
        if errors:
            problems.append(f"rejected record {str(record)[:200]} breaks the schema: {errors[0]}")
    available = Counter((record.get("entry"), record.get("error-code")) for record in records)
    executions = target.history.executions()
    for item in items:
        where = f"{item.label} {item.entry[:60]!r}"
        if item.expect == "rejected":
            wanted = (item.entry.decode("utf-8", "replace")[:1024], next(iter(item.codes)))
            if available[wanted] > 0:
                available[wanted] -= 1
            else:
                problems.append(f"{where}: no rejected record {wanted[1]}")
            if item.key and client.dump(item.key) != item.before:
                problems.append(f"{where}: the key it names was touched")
            continue
        fields = client.hgetall(item.key)
        result, code = fields.get(b"result"), fields.get(b"error-code", b"").decode()
        if item.expect == "success":
            if result != b"successful":
                problems.append(f"{where}: {result!r} {code} {fields.get(b'error-reason')!r}")
            elif executions[item.token] != 1:
                problems.append(f"{where}: ran {executions[item.token]} times")
        elif item.expect == "failed":
            if result != b"failed" or code not in item.codes:
                problems.append(f"{where}: expected failed {set(item.codes)}, got {result!r} "
                                f"{code} {fields.get(b'error-reason', b'')[:200]!r}")  # fmt: skip
        elif item.expect == "duplicate":
            if client.dump(item.key) != item.before:
                problems.append(f"{where}: a duplicate entry changed its hash")
        elif client.dump(item.key) == item.before:  # any: untouched is right for a duplicate
            if fields.get(b"state") not in (b"executing", b"finished"):
                problems.append(f"{where}: left as pushed: {str(fields)[:200]}")
        elif result not in (b"failed", b"successful") or fields.get(b"state") != b"finished":
            problems.append(f"{where}: ended as {str(fields)[:300]}")
        if result == b"failed" and code not in ERROR_CODES:
            problems.append(f"{where}: error-code {code!r} is not in protocol.json")
    leftover = [key for key, count in available.items() if count > 0]
    if leftover:
        problems.append(f"unexpected rejected records: {leftover[:5]}")
    return problems


def test_fuzzed_inputs(target: Target, table) -> None:
    run = uuid.uuid4().hex[:6]
    counter = iter(range(10**9))
    failures: list[str] = []

    @settings(max_examples=BATCHES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(batch=st.lists(specs(), min_size=BATCH, max_size=BATCH))
    def one_batch(batch: list[Spec]) -> None:
        items = [build(spec, target.queue, next(counter), run) for spec in batch]
        target.inputs.update(item.expect for item in items)
        push(target.client, items, target.queue)
        settle(target, items, timeout=size(60, 120))
        problems = verify(target, items)
        failures.extend(problems)
        assert not problems, "\n".join(problems[:20])

    began = time.monotonic()
    try:
        one_batch()
    finally:
        total = sum(target.inputs.values())
        cpu = tree_cpu(target.pid) - target.cpu_start
        row = table(Row("5 fuzz", f"{total} raw inputs", total, "-", "-", "-",
                        time.monotonic() - began, "FAIL" if failures else "pass"))  # fmt: skip
        row.notes.append(f"{dict(target.inputs)}; worker CPU {cpu:.1f} s")
        row.notes.extend(failures[:10])
    # never spins: idle for a while, the worker (and its pool) uses almost no CPU
    idle_start = tree_cpu(target.pid)
    time.sleep(2.0)  # an idle period to measure, not a wait for an event
    idle = tree_cpu(target.pid) - idle_start
    row.notes.append(f"idle CPU over 2 s: {idle:.2f} s")
    assert idle < 0.5, f"the worker spins: {idle:.2f} s of CPU in 2 s idle"
    assert total >= 0.9 * BATCHES * BATCH, f"hypothesis ran only {total} inputs"
    assert cpu < 0.05 * total + 10, f"{cpu:.1f} s of CPU for {total} inputs"
    target.fleet.check_alive()


@pytest.fixture
def lone(server, queue_name, history, fleets) -> Iterator[Target]:
    """A fresh worker on a fresh queue, for faults that may take a worker down."""
    fleet = fleets(server.url, queue_name, *OPTIONS, log=history.log, name="lone").start(1)
    client = server.client()
    fleet.wait_registered(client, timeout=30)
    pid = fleet.slots[0].process.pid
    yield Target(fleet, client, queue_name, history, pid, tree_cpu(pid), time.monotonic())
    client.close()


def wrong_type_row(table, name: str, began: float, ok: bool, note: str) -> None:
    row = table(Row(f"5 wrong-type {name}", f"{name} := string", 0, "-", "-", "-",
                    time.monotonic() - began, "pass" if ok else "FAIL"))  # fmt: skip
    row.notes.append(note)


def survived(target: Target) -> tuple[bool, str]:
    try:
        target.fleet.check_alive()
    except AssertionError as error:
        return False, str(error).splitlines()[0] + " " + str(error).splitlines()[-1]
    return True, "worker alive"


def test_pending_of_the_wrong_type_for_a_moment(lone: Target, table) -> None:
    """``<queue>:pending`` holds a string for a moment: the worker keeps running and runs the
    tasks queued once the list is back."""
    client, queue = lone.client, lone.queue
    began = time.monotonic()
    client.set(f"{queue}:pending", b"not a list")
    time.sleep(2.5)  # the fault's duration (longer than one BLMOVE block)
    alive, note = survived(lone)
    client.delete(f"{queue}:pending")
    wrong_type_row(table, "pending", began, alive, note)
    assert alive, note
    with Queue(queue, lone.fleet.url) as producer:
        assert lone.history.enqueue(producer, "after")
    wait_all_finished(lone.history, client, queue, timeout=30, fleet=lone.fleet)


def test_executing_of_the_wrong_type_while_tasks_wait(lone: Target, table) -> None:
    """``<queue>:executing`` holds a string while tasks wait in pending: the worker keeps
    running and runs them once the list is back."""
    client, queue, history = lone.client, lone.queue, lone.history
    began = time.monotonic()
    client.set(f"{queue}:executing", b"not a list")
    with Queue(queue, lone.fleet.url) as producer:
        for number in range(5):
            assert history.enqueue(producer, f"waiting{number}")
    time.sleep(1.5)  # the fault's duration: claims fail with WRONGTYPE meanwhile
    alive, note = survived(lone)
    client.delete(f"{queue}:executing")
    wrong_type_row(table, "executing", began, alive, note)
    assert alive, note
    wait_all_finished(history, client, queue, timeout=30, fleet=lone.fleet)
    assert all(history.executions()[f"waiting{number}"] == 1 for number in range(5))


def test_reaper_survives_executing_of_the_wrong_type(lone: Target, table) -> None:
    """``<queue>:executing`` holds a string for a few reaper passes; afterwards the reaper still
    recovers an ownerless entry (its claimer died between LMOVE and start) within
    lease + 2 reap intervals (SPEC.md 9.3)."""
    client, queue = lone.client, lone.queue
    began = time.monotonic()
    client.set(f"{queue}:executing", b"not a list")
    time.sleep(1.5)  # the fault's duration: several reaper passes (reap-ms 250) see it
    client.delete(f"{queue}:executing")
    key = f"{queue}:task:reaped"
    client.hset(key, mapping={"function": "record", "args": '{"token": "reaped"}'})
    client.lpush(f"{queue}:executing", "reaped")  # an entry nobody started
    try:
        poll(lambda: client.hget(key, "result"), timeout=8)
        reaped = client.hget(key, "result") == b"successful"
    except AssertionError:
        reaped = False
    alive, note = survived(lone)
    wrong_type_row(table, "executing (reaper)", began, reaped and alive,
                   f"{note}; ownerless entry recovered afterwards: {reaped}")  # fmt: skip
    assert alive, note
    assert reaped, "no reaper pass recovered the ownerless entry after the fault"


def test_executing_of_the_wrong_type_while_tasks_run(lone: Target, table) -> None:
    """``<queue>:executing`` is swapped for a string while tasks run, so their finish meets
    WRONGTYPE; once the list is back every task must still end with an outcome."""
    client, queue, history = lone.client, lone.queue, lone.history
    executing = f"{queue}:executing"
    began = time.monotonic()
    with Queue(queue, lone.fleet.url) as producer:
        for number in range(2):
            assert history.enqueue(producer, f"running{number}", args={"seconds": 1.0})
    poll(lambda: client.llen(executing) == 2, timeout=20)
    client.rename(executing, f"{executing}-aside")
    client.set(executing, b"not a list")
    time.sleep(2.0)  # the fault's duration: both functions return and try to finish meanwhile
    client.delete(executing)
    client.rename(f"{executing}-aside", executing)
    alive, note = survived(lone)
    try:
        wait_all_finished(history, client, queue, timeout=15, fleet=lone.fleet)
        finished = True
    except AssertionError as error:
        finished, note = False, f"{note}; {str(error)[:300]}"
    wrong_type_row(table, "executing (finish)", began, alive and finished, note)
    assert alive, note
    assert finished, note
    poll(lambda: client.llen(executing) == 0, timeout=15)  # a stray entry is reaped, if any
