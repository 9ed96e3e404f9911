#!/usr/bin/env python3
"""Conformance harness for the Python implementation of dothis.

Reads one JSON request per line on stdin, writes one JSON response per line on stdout
(see conformance/README.md). Producer ops use `dothis.Queue`; start_worker runs the real
`dothis worker` command line as a separate OS process, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

import dothis

PROTOCOL_OUT = sys.stdout
sys.stdout = sys.stderr  # anything the library prints must not corrupt the protocol stream

WORKER_OPTIONS = ("worker_id", "concurrency", "lease_ms", "heartbeat_ms", "reap_ms", "max_claims", "max_value_bytes")


class OpError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.body = {"code": code, "message": message, **extra}


def worker_command() -> list[str]:
    beside = Path(sys.executable).parent / "dothis"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dothis")
    return [found] if found else [sys.executable, "-m", "dothis"]


@contextlib.contextmanager
def trace_context(req: dict[str, Any]) -> Iterator[None]:
    """The request's W3C trace context (`traceparent`, `tracestate`), extracted by OpenTelemetry's
    propagator and made the current context while the enqueue runs."""
    carrier = {name: req[name] for name in ("traceparent", "tracestate") if req.get(name)}
    if not carrier:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


class Harness:
    def __init__(self) -> None:
        self.queues: dict[tuple[str, str], Any] = {}
        self.workers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        self.logdir = Path(tempfile.mkdtemp(prefix="dothis-python-harness-"))

    def queue(self, req: dict[str, Any]) -> Any:
        key = (req["url"], req["queue"])
        if key not in self.queues:
            self.queues[key] = dothis.Queue(req["queue"], url=req["url"])
        return self.queues[key]

    # ------------------------------------------------------------------ ops
    def op_hello(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"implementation": "python", "roles": ["producer", "worker"],
                "version": getattr(dothis, "__version__", None), "fail_exception": "RuntimeError"}

    def op_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        options = {name.replace("-", "_"): value for name, value in (req.get("options") or {}).items()}
        with trace_context(req):
            task = self.queue(req).enqueue_call(req["function"], req.get("args") or {}, task_id=req.get("id"), **options)
        return {"task_id": task.id}

    def op_enqueue_many(self, req: dict[str, Any]) -> dict[str, Any]:
        specs = req["tasks"]
        if any("id" in t for t in specs):
            items: list[Any] = [(t["function"], t.get("args") or {}, t.get("id")) for t in specs]
        else:
            items = [(t["function"], t.get("args") or {}) for t in specs]
        tasks = self.queue(req).enqueue_many(items)
        return {"task_ids": [t.id for t in tasks]}

    def op_cancel(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"result": self.queue(req).cancel(req["id"])}
        except dothis.DothisError as exc:
            if "no task" in str(exc):
                raise OpError("not-found", str(exc)) from None
            raise

    def op_fetch(self, req: dict[str, Any]) -> dict[str, Any]:
        task = self.queue(req).fetch(req["id"])
        if task is None:
            return {"task": None}
        error = task.error
        return {"task": {
            "id": task.id, "state": task.state or "pending", "outcome": task.outcome, "value": task.result,
            "error_code": getattr(error, "code", None) if error else None,
            "error_reason": getattr(error, "reason", None) if error else None,
        }}

    def op_length(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"length": len(self.queue(req))}

    def op_wait(self, req: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(req)
        task = queue.fetch(req["id"])
        if task is None:
            raise OpError("not-found", f"no task {req['id']!r} in queue {req['queue']!r}")
        return {"value": task.wait(timeout=req["timeout_ms"] / 1000)}

    def op_start_worker(self, req: dict[str, Any]) -> dict[str, Any]:
        argv = [*worker_command(), "worker", "--url", req["url"], "--queue", req["queue"], "--processes", "1"]
        for name in WORKER_OPTIONS:
            if req.get(name) is not None:
                argv += [f"--{name.replace('_', '-')}", str(req[name])]
        argv.append("conformance_functions")  # dothis.examples plus crash and a schedule (that file)
        log = self.logdir / f"worker-{len(self.workers) + 1}-{req.get('worker_id', 'anon')}.log"
        with open(log, "wb") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")]))
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=dict(os.environ, PYTHONPATH=path))
        handle = f"pid-{process.pid}"
        self.workers[handle] = (process, str(log))
        return {"worker": handle, "pid": process.pid, "log": str(log)}

    def worker(self, req: dict[str, Any]) -> subprocess.Popen[bytes]:
        entry = self.workers.get(req["worker"])
        if entry is None:
            raise OpError("unknown-worker", f"no worker {req['worker']!r}")
        return entry[0]

    @staticmethod
    def kill_group(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and every process it started (it leads its own session)."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()

    def op_stop_worker(self, req: dict[str, Any]) -> dict[str, Any]:
        """SIGTERM to the worker process, as a supervisor sends it; wait for it to exit."""
        process = self.worker(req)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=float(req.get("timeout_ms", 9000)) / 1000)
        except subprocess.TimeoutExpired:
            self.kill_group(process)
            del self.workers[req["worker"]]
            raise OpError("timeout", "the worker did not exit within 9 s of SIGTERM; killed") from None
        self.kill_group(process)  # reap anything it left behind
        del self.workers[req["worker"]]
        return {"exit_code": code}

    def op_kill_worker(self, req: dict[str, Any]) -> dict[str, Any]:
        """SIGKILL, as when the worker's machine dies: the worker and its children."""
        self.kill_group(self.worker(req))
        del self.workers[req["worker"]]
        return {}

    def op_shutdown(self, req: dict[str, Any]) -> dict[str, Any]:
        for process, _log in self.workers.values():
            self.kill_group(process)
        self.workers.clear()
        for queue in self.queues.values():
            close = getattr(queue, "close", None)
            if close:
                close()
        return {}

    # ------------------------------------------------------------- dispatch
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(self, f"op_{req.get('op')}", None)
        if op is None:
            raise OpError("unsupported", f"op {req.get('op')!r} is not supported")
        try:
            return op(req)
        except dothis.TaskExists as exc:
            raise OpError("task-exists", str(exc)) from None
        except dothis.DependencyError as exc:
            raise OpError("dependency-error", str(exc)) from None
        except dothis.InvalidArguments as exc:
            raise OpError("invalid-arguments", str(exc)) from None
        except dothis.WaitTimeout as exc:
            raise OpError("timeout", str(exc)) from None
        except dothis.TaskFailed as exc:
            raise OpError(str(getattr(exc, "code", "failed")), str(exc),
                          reason=getattr(exc, "reason", None), exception=getattr(exc, "exception", None)) from None


def main() -> int:
    harness = Harness()
    for line in sys.stdin:
        if not line.strip():
            continue
        seq: Any = None
        try:
            req = json.loads(line)
            seq = req.get("seq")
            body: dict[str, Any] = {"seq": seq, "ok": True, **harness.handle(req)}
        except OpError as exc:
            body = {"seq": seq, "ok": False, "error": exc.body}
        except Exception as exc:  # noqa: BLE001 - every failure becomes a protocol answer
            body = {"seq": seq, "ok": False, "error": {
                "code": "internal", "message": f"{type(exc).__name__}: {exc}", "exception": traceback.format_exc()}}
        PROTOCOL_OUT.write(json.dumps(body) + "\n")
        PROTOCOL_OUT.flush()
        if body.get("ok") and isinstance(req, dict) and req.get("op") == "shutdown":
            return 0
    harness.op_shutdown({})
    return 0


if __name__ == "__main__":
    sys.exit(main())
