"""Talks to one implementation's harness: a child process answering JSON lines on stdin/stdout."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


class HarnessError(Exception):
    """The harness answered ok=false."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = str(error.get("code", "?"))
        super().__init__(f"{self.code}: {error.get('message', '')}")


class HarnessBroken(Exception):
    """The harness died, timed out or spoke something other than the protocol."""


class Harness:
    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = dict(env or {})
        self.command = command
        self.cwd = cwd
        self.seq = 0
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_path = Path(tempfile.mkstemp(prefix=f"dothis-harness-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[str] | None = None
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        stderr = open(self.stderr_path, "a", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.process = subprocess.Popen(
            self.command, cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=stderr, text=True, encoding="utf-8", bufsize=1, env=env,
        )
        stderr.close()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self.request("hello", timeout_s=20)
        return self.hello

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, op: str, timeout_s: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send one request and return the response body; raises HarnessError on ok=false."""
        if not self.alive():
            raise HarnessBroken(f"{self.name} harness is not running{self.stderr_tail()}")
        assert self.process is not None and self.process.stdin is not None
        self.seq += 1
        seq = self.seq
        try:
            self.process.stdin.write(json.dumps({"seq": seq, "op": op, **params}) + "\n")
            self.process.stdin.flush()
        except OSError as exc:
            raise HarnessBroken(f"{self.name} harness: cannot write: {exc}{self.stderr_tail()}") from exc
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessBroken(f"{self.name} harness gave no answer to {op} within {timeout_s:.1f}s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise HarnessBroken(f"{self.name} harness exited during {op}{self.stderr_tail()}")
            line = line.strip()
            if not line:
                continue
            try:
                response = json.loads(line)
            except ValueError as exc:
                raise HarnessBroken(f"{self.name} harness wrote a non-JSON line: {line[:200]!r}") from exc
            if not isinstance(response, dict) or "ok" not in response:
                raise HarnessBroken(f"{self.name} harness wrote no ok member: {line[:200]!r}")
            if response.get("seq") != seq:
                continue  # a late answer to an earlier request that timed out
            if response["ok"] is True:
                return response
            error = response.get("error")
            if not isinstance(error, dict) or "code" not in error:
                raise HarnessBroken(f"{self.name} harness answered ok=false without error.code: {line[:200]!r}")
            raise HarnessError(error)

    def stderr_tail(self, lines: int = 15) -> str:
        try:
            tail = self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n  harness stderr:\n    " + "\n    ".join(tail)) if tail else ""

    def close(self) -> None:
        if self.process is None:
            return
        if self.alive():
            try:
                self.request("shutdown", timeout_s=5)
            except (HarnessBroken, HarnessError):
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
