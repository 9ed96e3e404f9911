"""Executes one case's steps against Redis, redis-cli and the harnesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jsonschema
import redis
import redis.cluster
import referencing

from .casefile import REPO, Case, substitute
from .harness_client import Harness, HarnessError
from .matchers import decode, json_equal, match
from .redis_server import RedisCluster

KINDS = (
    "redis", "eval", "enqueue", "enqueue_many", "fetch", "length", "wait", "cancel", "worker", "subscribe",
    "expect_messages", "wait_until", "expect_hash", "expect_list", "expect_key_type",
    "expect_missing", "expect_ttl", "validate", "sleep_ms",
)
WORKER_REGISTER_TIMEOUT_S = 10.0
POLL_S = 0.025


class StepFailed(Exception):
    """An expectation did not hold (or a step could not be carried out)."""


@dataclass
class RunningWorker:
    harness: Harness
    handle: str
    worker_id: str
    log: str | None


def step_kind(step: dict[str, Any]) -> str:
    for kind in KINDS:
        if kind in step:
            return kind
    raise StepFailed(f"unknown step {sorted(step)}")


def schema_registry() -> referencing.Registry:
    """Every schema/*.schema.json, addressable by its $id and by its file name."""
    resources = []
    for path in sorted((REPO / "schema").glob("*.json")):
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        resource = referencing.jsonschema.DRAFT202012.create_resource(contents)
        resources.append((path.name, resource))
        resources.append((f"./{path.name}", resource))
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            resources.append((contents["$id"], resource))
    return referencing.Registry().with_resources(resources)


def case_queue(case: Case, fresh: str, cluster: bool) -> str:
    """The case's queue: its literal `queue` (on a cluster, its `cluster.queue` first), else a fresh
    name, which carries a hash tag on a cluster so that all the queue's keys share one slot."""
    literal = (case.data.get("cluster") or {}).get("queue") if cluster else None
    return str(literal or case.data.get("queue") or (f"{{{fresh}}}" if cluster else fresh))


class CaseRun:
    def __init__(self, case: Case, port: int, client: redis.Redis | redis.cluster.RedisCluster,
                 producer: Harness | None, worker_harness: Harness | None,
                 redis_cli: str | None = None, cluster: RedisCluster | None = None) -> None:
        self.case = case
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0" + ("?cluster=1" if cluster else "")
        self.client = client
        self.producer = producer
        self.worker_harness = worker_harness
        self.redis_cli = redis_cli or shutil.which("redis-cli") or "redis-cli"
        self.uuid = str(uuid.uuid4())
        self.queue = case_queue(case, f"conf-{self.uuid[:8]}", cluster is not None)
        # redis-cli and subscriptions talk to the node of the queue's slot (on a cluster, -c follows
        # the redirections of keys in other slots, such as dothis.queues; PUBLISH reaches every node)
        self.cli_port = cluster.port_of(self.queue) if cluster else port
        self.cli_flags = ["-c"] if cluster else []
        self.variables: dict[str, str] = {"uuid": self.uuid, "queue": self.queue}
        if worker_harness is not None and isinstance(worker_harness.hello.get("fail_exception"), str):
            # the exception type the worker's fail(message) raises, as it appears in error-exception
            self.variables["fail_exception"] = worker_harness.hello["fail_exception"]
        self.workers: dict[str, RunningWorker] = {}
        self.subscriptions: dict[str, tuple[Any, list[str]]] = {}
        self.nodes: list[redis.Redis] = []
        self.deadline = time.monotonic() + float(case.data.get("timeout_s", 15))
        self.logs: list[str] = []

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        for section in ("setup", "steps", "expectations"):
            for index, raw in enumerate(self.case.data.get(section, [])):
                kind = step_kind(raw)
                try:
                    if time.monotonic() > self.deadline:
                        raise StepFailed(f"case exceeded its {self.case.data.get('timeout_s', 15)}s budget")
                    step = substitute(raw, self.variables)
                    getattr(self, f"do_{kind}")(step)
                except StepFailed as exc:
                    raise StepFailed(f"{section}[{index}] {kind}: {exc}") from None
                except HarnessError as exc:
                    raise StepFailed(f"{section}[{index}] {kind}: harness error {exc}") from None

    def cleanup(self) -> None:
        for name, worker in list(self.workers.items()):
            try:
                worker.harness.request("kill_worker", timeout_s=10, worker=worker.handle)
            except Exception:  # noqa: BLE001 - best effort; the harness may be gone
                pass
            self.workers.pop(name, None)
        for pubsub, _messages in self.subscriptions.values():
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001
                pass
        self.subscriptions.clear()
        for node in self.nodes:
            node.close()
        self.nodes.clear()

    def remaining(self, timeout_s: float) -> float:
        return max(0.05, min(timeout_s, self.deadline - time.monotonic()))

    def poll(self, timeout_ms: int, probe: Callable[[], str | None]) -> None:
        """Call probe until it returns None (condition holds); fail with its last answer at the deadline."""
        deadline = time.monotonic() + self.remaining(timeout_ms / 1000)
        while True:
            problem = probe()
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise StepFailed(f"still not so after {timeout_ms} ms: {problem}")
            time.sleep(POLL_S)

    # --------------------------------------------------------------- redis-cli
    def do_eval(self, step: dict[str, Any]) -> None:
        """A script of lua/ run the way a person would: redis-cli --eval lua/<name>.lua KEYS , ARGV."""
        spec = step["eval"]
        path = REPO / "lua" / f"{spec['script']}.lua"
        if not path.is_file():
            raise StepFailed(f"lua/{spec['script']}.lua does not exist")
        keys, args = spec.get("keys", []), spec.get("args", [])
        if "," in keys or "," in args:
            raise StepFailed("redis-cli --eval cannot pass a lone ',' as a key or an argument")
        self.do_redis({**{k: v for k, v in step.items() if k != "eval"},
                       "redis": ["--eval", str(path), *keys, ",", *args]})

    def do_redis(self, step: dict[str, Any]) -> None:
        command = step["redis"]
        argv = [self.redis_cli, "-h", "127.0.0.1", "-p", str(self.cli_port), *self.cli_flags, "--no-raw"]
        if isinstance(command, list):
            if "stdin" in step:
                argv.append("-x")
            argv.extend(command)
            stdin = step.get("stdin", "")
            shown = " ".join(command)
        else:
            stdin = command + "\n"
            shown = command
        try:
            done = subprocess.run(argv, input=stdin.encode("utf-8"), capture_output=True,
                                  timeout=self.remaining(10))
        except subprocess.TimeoutExpired:
            raise StepFailed(f"redis-cli {shown[:80]} did not finish") from None
        output = decode(done.stdout).rstrip("\n")
        if done.returncode != 0:
            raise StepFailed(f"redis-cli {shown[:80]} exited {done.returncode}: {decode(done.stderr)}")
        if "expect" in step and output != step["expect"].rstrip("\n"):
            raise StepFailed(f"redis-cli {shown[:80]}\n  got:\n{output}\n  expected:\n{step['expect'].rstrip()}")
        if "expect_match" in step:
            problem = match({"match": step["expect_match"].rstrip("\n")}, output)
            if problem:
                raise StepFailed(f"redis-cli {shown[:80]}\n  got:\n{output}\n  expected to match:\n{step['expect_match']}")

    # ----------------------------------------------------------- producer ops
    def need_producer(self) -> Harness:
        if self.producer is None:
            raise StepFailed("this implementation has no library producer")
        return self.producer

    def call(self, harness: Harness, op: str, step: dict[str, Any], timeout_s: float = 10,
             **params: Any) -> dict[str, Any] | None:
        """Run a harness op; honour expect_error. Returns None when an expected error arrived."""
        expected = step.get("expect_error")
        try:
            response = harness.request(op, timeout_s=self.remaining(timeout_s) + 2, **params)
        except HarnessError as exc:
            if expected is None:
                raise StepFailed(f"{op} failed: {exc}"
                                 + (f" (reason {exc.error.get('reason')!r})" if exc.error.get("reason") else "")) from None
            self.check_error(expected, exc.error)
            return None
        if expected is not None:
            raise StepFailed(f"{op} succeeded ({json.dumps(response)[:200]}), expected error {json.dumps(expected)}")
        return response

    @staticmethod
    def check_error(expected: Any, error: dict[str, Any]) -> None:
        want = {"code": expected} if isinstance(expected, str) else expected
        if error.get("code") != want["code"]:
            raise StepFailed(f"error code {error.get('code')!r} ({error.get('message', '')}), expected {want['code']!r}")
        if "reason" in want and error.get("reason") != want["reason"]:
            raise StepFailed(f"error reason {error.get('reason')!r}, expected {want['reason']!r}")
        if "exception_contains" in want and want["exception_contains"] not in str(error.get("exception") or ""):
            raise StepFailed(f"error exception {str(error.get('exception'))[:200]!r} lacks {want['exception_contains']!r}")

    @staticmethod
    def task_params(spec: dict[str, Any]) -> dict[str, Any]:
        params = {"function": spec["function"], "args": spec.get("args", {})}
        if "id" in spec:
            params["id"] = spec["id"]
        if "options" in spec:
            params["options"] = spec["options"]
        return params

    def do_enqueue(self, step: dict[str, Any]) -> None:
        trace = {name: step[name] for name in ("traceparent", "tracestate") if name in step}
        response = self.call(self.need_producer(), "enqueue", step, url=self.url, queue=self.queue,
                             **self.task_params(step["enqueue"]), **trace)
        if response is not None:
            task_id = response.get("task_id")
            if not isinstance(task_id, str):
                raise StepFailed(f"enqueue answered no task_id: {response}")
            if "save_as" in step:
                self.variables[step["save_as"]] = task_id

    def do_enqueue_many(self, step: dict[str, Any]) -> None:
        tasks = [self.task_params(spec) for spec in step["enqueue_many"]]
        response = self.call(self.need_producer(), "enqueue_many", step, url=self.url, queue=self.queue, tasks=tasks)
        if response is not None:
            ids = response.get("task_ids")
            if not isinstance(ids, list) or len(ids) != len(tasks) or not all(isinstance(i, str) for i in ids):
                raise StepFailed(f"enqueue_many answered {response.get('task_ids')!r} for {len(tasks)} tasks")
            for name, task_id in zip(step.get("save_as", []), ids, strict=False):
                self.variables[name] = task_id

    def do_fetch(self, step: dict[str, Any]) -> None:
        response = self.call(self.need_producer(), "fetch", step, url=self.url, queue=self.queue, id=step["fetch"])
        if response is None or "expect" not in step:
            return
        task, want = response.get("task"), step["expect"]
        if want is None:
            if task is not None:
                raise StepFailed(f"fetch returned {task}, expected null")
            return
        if not isinstance(task, dict):
            raise StepFailed(f"fetch returned {task!r}, expected a task")
        for name, value in want.items():
            if name not in task or not json_equal(task[name], value):
                raise StepFailed(f"fetch: {name} is {task.get(name, '<missing>')!r}, expected {value!r} (task {task})")

    def do_cancel(self, step: dict[str, Any]) -> None:
        response = self.call(self.need_producer(), "cancel", step, url=self.url, queue=self.queue, id=step["cancel"])
        if response is not None and "expect" in step and response.get("result") != step["expect"]:
            raise StepFailed(f"cancel answered {response.get('result')!r}, expected {step['expect']!r}")

    def do_length(self, step: dict[str, Any]) -> None:
        response = self.call(self.need_producer(), "length", step, url=self.url, queue=self.queue)
        if response is not None and "expect" in step and response.get("length") != step["expect"]:
            raise StepFailed(f"length is {response.get('length')!r}, expected {step['expect']}")

    def do_wait(self, step: dict[str, Any]) -> None:
        spec = step["wait"]
        response = self.call(self.need_producer(), "wait", step, timeout_s=spec["timeout_ms"] / 1000 + 5,
                             url=self.url, queue=self.queue, id=spec["id"], timeout_ms=spec["timeout_ms"])
        if response is not None and "expect_value" in step:
            if "value" not in response or not json_equal(response["value"], step["expect_value"]):
                raise StepFailed(f"wait returned {response.get('value', '<missing>')!r}, expected {step['expect_value']!r}")

    # ---------------------------------------------------------------- workers
    def do_worker(self, step: dict[str, Any]) -> None:
        spec = step["worker"]
        spec = {"action": spec} if isinstance(spec, str) else dict(spec)
        action, name = spec.pop("action"), spec.pop("name", "w")
        expect_exit = spec.pop("expect_exit_code", None)
        if action == "start":
            if self.worker_harness is None:
                raise StepFailed("no worker implementation available")
            if name in self.workers:
                raise StepFailed(f"worker {name} is already running")
            worker_id = f"{name}-{self.uuid[:8]}"
            response = self.worker_harness.request(
                "start_worker", timeout_s=self.remaining(20), url=self.url, queue=self.queue,
                worker_id=worker_id, **spec)
            handle = response.get("worker")
            if not isinstance(handle, str):
                raise StepFailed(f"start_worker answered no worker handle: {response}")
            self.workers[name] = RunningWorker(self.worker_harness, handle, worker_id, response.get("log"))
            self.variables[f"worker_{name}"] = worker_id
            key = f"{self.queue}:worker:{worker_id}"
            self.poll(int(WORKER_REGISTER_TIMEOUT_S * 1000),
                      lambda: None if self.client.exists(key) else f"worker key {key} does not exist")
            return
        worker = self.workers.pop(name, None)
        if worker is None:
            raise StepFailed(f"worker {name} is not running")
        self.logs.extend(self.log_tail(worker))
        if action == "kill":
            worker.harness.request("kill_worker", timeout_s=self.remaining(10), worker=worker.handle)
            return
        response = worker.harness.request("stop_worker", timeout_s=self.remaining(20), worker=worker.handle)
        if expect_exit is not None and response.get("exit_code") != expect_exit:
            raise StepFailed(f"worker {name} exited {response.get('exit_code')!r}, expected {expect_exit}")

    def log_tail(self, worker: RunningWorker, lines: int = 25) -> list[str]:
        if not worker.log:
            return []
        try:
            text = Path(worker.log).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            return []
        return [f"--- worker {worker.worker_id} log ({worker.log})", *text]

    def failure_logs(self) -> list[str]:
        return self.logs + [line for w in self.workers.values() for line in self.log_tail(w)]

    # ---------------------------------------------------------------- pub/sub
    def do_subscribe(self, step: dict[str, Any]) -> None:
        channel = step["subscribe"]
        node = self.client
        if self.cli_flags:  # a cluster: a plain connection to one node
            node = redis.Redis(host="127.0.0.1", port=self.cli_port, socket_timeout=10)
            self.nodes.append(node)
        pubsub = node.pubsub()
        pubsub.subscribe(channel)
        deadline = time.monotonic() + self.remaining(5)
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "subscribe":
                self.subscriptions[channel] = (pubsub, [])
                return
        raise StepFailed(f"no subscribe confirmation for {channel}")

    def do_expect_messages(self, step: dict[str, Any]) -> None:
        spec = step["expect_messages"]
        channel, expected = spec["channel"], spec["messages"]
        if channel not in self.subscriptions:
            raise StepFailed(f"not subscribed to {channel}")
        pubsub, got = self.subscriptions[channel]
        deadline = time.monotonic() + self.remaining(spec.get("timeout_ms", 5000) / 1000)

        def drain(until: float) -> None:
            while time.monotonic() < until:
                message = pubsub.get_message(timeout=max(0.01, min(0.1, until - time.monotonic())))
                if message and message["type"] == "message":
                    got.append(decode(message["data"]))
                elif message is None and len(got) >= len(expected) and until == deadline:
                    return

        drain(deadline)
        if spec.get("only"):
            drain(time.monotonic() + 0.2)
        if got[:len(expected)] != expected or (spec.get("only") and len(got) != len(expected)):
            raise StepFailed(f"messages on {channel}: {got}, expected {'exactly ' if spec.get('only') else ''}{expected}")

    # -------------------------------------------------------------- redis state
    def read_hash(self, key: str) -> dict[str, str] | None:
        kind = decode(self.client.type(key))
        if kind != "hash":
            return None
        return {decode(k): decode(v) for k, v in self.client.hgetall(key).items()}

    def do_wait_until(self, step: dict[str, Any]) -> None:
        spec = step["wait_until"]
        timeout_ms = spec.get("timeout_ms", 5000)
        if "hash" in spec:
            key, fieldname, want = spec["hash"], spec["field"], spec.get("is", {"present": True})

            def probe() -> str | None:
                raw = self.client.hget(key, fieldname) if decode(self.client.type(key)) == "hash" else None
                return None if match(want, decode(raw) if raw is not None else None) is None else (
                    f"{key} {fieldname} is {decode(raw) if raw is not None else '<missing>'!r}, waiting for {json.dumps(want)}")
        elif "list" in spec:
            key, length = spec["list"], spec["length"]

            def probe() -> str | None:
                now = self.client.llen(key) if decode(self.client.type(key)) in ("list", "none") else -1
                return None if now == length else f"{key} has length {now}, waiting for {length}"
        else:
            key, kind = spec["key"], spec["type"]

            def probe() -> str | None:
                now = decode(self.client.type(key))
                return None if now == kind else f"{key} is of type {now}, waiting for {kind}"
        self.poll(timeout_ms, probe)

    def do_expect_hash(self, step: dict[str, Any]) -> None:
        spec = step["expect_hash"]
        key = spec["key"]
        actual = self.read_hash(key)
        if actual is None:
            raise StepFailed(f"{key} is not a hash (type {decode(self.client.type(key))})")
        problems = []
        fields = spec.get("fields", {})
        for name, matcher in fields.items():
            problem = match(matcher, actual.get(name))
            if problem:
                problems.append(f"{name}: {problem}")
        if spec.get("exact"):
            extra = sorted(set(actual) - set(fields))
            if extra:
                problems.append(f"unexpected fields {extra}")
        present = [name for name in spec.get("absent", []) if name in actual]
        if present:
            problems.append(f"fields that must be absent are present: {present}")
        if problems:
            raise StepFailed(f"{key}: " + "; ".join(problems) + f"\n  hash: {json.dumps(actual, ensure_ascii=False)}")

    def do_expect_list(self, step: dict[str, Any]) -> None:
        spec = step["expect_list"]
        key = spec["key"]
        kind = decode(self.client.type(key))
        if kind not in ("list", "none"):
            raise StepFailed(f"{key} is a {kind}, not a list")
        items = [decode(v) for v in self.client.lrange(key, 0, -1)]
        if "length" in spec and len(items) != spec["length"]:
            raise StepFailed(f"{key} has {len(items)} items, expected {spec['length']}: {items}")
        if "items" in spec:
            want = spec["items"]
            if len(items) != len(want):
                raise StepFailed(f"{key} is {items}, expected {len(want)} items")
            for index, (value, matcher) in enumerate(zip(items, want, strict=False)):
                problem = match(matcher, value)
                if problem:
                    raise StepFailed(f"{key}[{index}]: {problem}")

    def do_expect_key_type(self, step: dict[str, Any]) -> None:
        spec = step["expect_key_type"]
        kind = decode(self.client.type(spec["key"]))
        if kind != spec["type"]:
            raise StepFailed(f"{spec['key']} is of type {kind}, expected {spec['type']}")

    def do_expect_missing(self, step: dict[str, Any]) -> None:
        keys = step["expect_missing"]
        present = [k for k in ([keys] if isinstance(keys, str) else keys) if self.client.exists(k)]
        if present:
            raise StepFailed(f"keys exist that must not: {present}")

    def do_expect_ttl(self, step: dict[str, Any]) -> None:
        """TTL in seconds: between [a, b] inclusive, or is n (-1: kept, no TTL; -2: no such key)."""
        spec = step["expect_ttl"]
        ttl = int(self.client.ttl(spec["key"]))
        if "is" in spec and ttl != spec["is"]:
            raise StepFailed(f"TTL {spec['key']} is {ttl}, expected {spec['is']}")
        if "between" in spec:
            low, high = spec["between"]
            if not low <= ttl <= high:
                raise StepFailed(f"TTL {spec['key']} is {ttl}, expected between {low} and {high}")

    def do_validate(self, step: dict[str, Any]) -> None:
        spec = step["validate"]
        path = REPO / "schema" / spec["schema"]
        if not path.exists():
            raise StepFailed(f"schema/{spec['schema']} does not exist")
        schema = json.loads(path.read_text(encoding="utf-8"))
        if "hash" in spec:
            instance: Any = self.read_hash(spec["hash"])
            if instance is None:
                raise StepFailed(f"{spec['hash']} is not a hash")
        else:
            raw = self.client.lindex(spec["list"], spec.get("index", 0))
            if raw is None:
                raise StepFailed(f"{spec['list']} has no item {spec.get('index', 0)}")
            try:
                instance = json.loads(decode(raw))
            except ValueError:
                raise StepFailed(f"{spec['list']} item is not JSON: {decode(raw)!r}") from None
        validator = jsonschema.Draft202012Validator(schema, registry=schema_registry(),
                                                    format_checker=jsonschema.FormatChecker())
        errors = list(validator.iter_errors(instance))
        if errors:
            detail = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in errors[:5])
            raise StepFailed(f"does not validate against schema/{spec['schema']}: {detail}")

    def do_sleep_ms(self, step: dict[str, Any]) -> None:
        time.sleep(self.remaining(step["sleep_ms"] / 1000))
