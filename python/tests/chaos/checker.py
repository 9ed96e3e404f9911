"""A queue checker in the manner of Jepsen's: what was acknowledged against what was executed.

The history has three parts:

- **attempted**: every token a producer tried to enqueue (the call was made);
- **acknowledged**: every token whose enqueue returned (or, retried with the same id after an
  error, answered "task exists": the first attempt was applied);
- **executions**: one line per execution of the task function, read from the log the functions
  append to (``chaos_tasks.record``), plus each acknowledged task's final hash.

From it the checker computes

- **lost**: acknowledged, but never executed to a successful outcome (no execution, or the hash
  is missing or not ``result=successful``);
- **unexpected**: executed, but never even attempted;
- **duplicated**: executed more than once (``extra`` counts the executions beyond the first);
- **recovered**: attempted without an acknowledgement (the enqueue call failed) and executed
  anyway; allowed, since such an enqueue may have been applied before the reply was lost;
- **stuck**: acknowledged, and seen in ``<queue>:executing`` (or with a hash that says
  ``executing``) for longer than the scenario's bound while a worker process served the queue
  (``harness.Watch`` samples it; SPEC.md 9.3 gives the bound: a task a live worker no longer
  renews is back in pending within ``lease-ms + 1.2 x reap-ms`` of its last renewal);
- **wrong**: a task expected to fail with a given error code (``expect``) that ended otherwise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from dothis import ConnectionFailed, Queue, TaskExists

# Replies of a Redis in trouble, not of a bad request: enqueue.lua wrote nothing, try again.
# redis-py turns some into classes of their own and strips the code from the message.
CHAOS_ROW = "chaos-row"  # the name of a row in a test report's user_properties
REFUSALS = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED")
REFUSAL_TYPES = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
                 redis.exceptions.BusyLoadingError, redis.exceptions.MasterDownError)  # fmt: skip


def refusal(error: BaseException) -> bool:
    return isinstance(error, REFUSAL_TYPES) or str(error).startswith(REFUSALS)


@dataclass
class Verdict:
    """The checker's findings over one history."""

    attempted: int
    acknowledged: int
    executed: int  # distinct tokens executed
    executions: int  # execution lines
    lost: list[str]
    unexpected: list[str]
    duplicated: dict[str, int]  # token -> executions
    recovered: list[str]
    failed: dict[str, str]  # acknowledged token -> error-code of its failed hash
    stuck: list[str] = field(default_factory=list)
    longest: dict[str, float] = field(default_factory=dict)  # token -> longest executing span
    bound: float | None = None  # seconds; None: executing spans were not watched
    wrong: dict[str, str] = field(default_factory=dict)  # expected failure -> what it got

    @property
    def extra(self) -> int:
        """Executions beyond the first, over all tokens."""
        return sum(count - 1 for count in self.duplicated.values())

    def summary(self) -> str:
        def sample(items: Any) -> str:
            listed = sorted(items)[:5]
            return f"{len(items)} {listed}" if items else "0"

        text = (
            f"attempted={self.attempted} acknowledged={self.acknowledged} "
            f"executed={self.executed} executions={self.executions} lost={sample(self.lost)} "
            f"unexpected={sample(self.unexpected)} duplicated={sample(self.duplicated)} "
            f"extra={self.extra} recovered={len(self.recovered)} failed={sample(self.failed)}"
        )
        if self.bound is not None:
            slowest = max(self.longest.items(), key=lambda item: item[1], default=("-", 0.0))
            text += (f" stuck={sample(self.stuck)} (bound {self.bound:.1f} s; longest executing "
                     f"{slowest[1]:.1f} s: {slowest[0]})")  # fmt: skip
        if self.wrong:
            text += f" wrong outcome={dict(sorted(self.wrong.items())[:5])}"
        return text

    @property
    def ok(self) -> bool:
        """No task lost, unexpected, stuck, or with an outcome other than the expected one."""
        return not (self.lost or self.unexpected or self.stuck or self.wrong)


class History:
    """Records the enqueue side of a run; thread-safe."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._lock = threading.Lock()
        self.attempted: list[str] = []
        self.acknowledged: list[str] = []
        self.enqueue_errors = 0

    def attempt(self, token: str) -> None:
        with self._lock:
            self.attempted.append(token)

    def acknowledge(self, token: str) -> None:
        with self._lock:
            self.acknowledged.append(token)

    def enqueue(
        self,
        queue: Queue,
        token: str,
        *,
        function: str = "record",
        args: dict[str, Any] | None = None,
        retry_for: float = 0.0,
        **options: Any,
    ) -> bool:
        """Enqueue ``function`` with the token as its id (and argument); True if acknowledged.

        On ConnectionFailed, or a refusal by a Redis in trouble (``OOM``, ``READONLY``, ...),
        the same id is tried again for up to ``retry_for`` seconds: a "task exists" answer then
        means an earlier attempt was applied, which counts as the acknowledgement.
        """
        import time

        self.attempt(token)
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            try:
                queue.enqueue_call(
                    function, {"token": token, **(args or {})}, task_id=token, **options
                )
            except TaskExists:
                self.acknowledge(token)
                return True
            except (ConnectionFailed, redis.ResponseError) as error:
                if isinstance(error, redis.ResponseError) and not refusal(error):
                    raise
                with self._lock:
                    self.enqueue_errors += 1
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            self.acknowledge(token)
            return True

    def executions(self) -> Counter[str]:
        if not self.log.exists():
            return Counter()
        lines = self.log.read_text().splitlines()
        return Counter(line for line in lines if line)

    def outcomes(self, client: redis.Redis, queue: str) -> dict[str, tuple[bytes | None, ...]]:
        """``result`` and ``error-code`` of every acknowledged token's hash."""
        tokens = list(dict.fromkeys(self.acknowledged))
        found: dict[str, tuple[bytes | None, ...]] = {}
        for start in range(0, len(tokens), 1000):
            chunk = tokens[start : start + 1000]
            pipe = client.pipeline(transaction=False)
            for token in chunk:
                pipe.hmget(f"{queue}:task:{token}", "result", "error-code")
            for token, values in zip(chunk, pipe.execute(), strict=True):
                found[token] = tuple(values)
        return found

    def unfinished(self, client: redis.Redis, queue: str) -> list[str]:
        """Acknowledged tokens whose hash has no outcome yet."""
        return [token for token, (result, _) in self.outcomes(client, queue).items() if not result]

    def check(
        self,
        client: redis.Redis,
        queue: str,
        *,
        spans: Mapping[str, float] | None = None,
        bound: float | None = None,
        expect: Mapping[str, str] | None = None,
    ) -> Verdict:
        """The verdict over this history; ``spans`` and ``bound`` from a ``harness.Watch``,
        ``expect`` the tokens meant to fail, with their error code."""
        return check(self.attempted, self.acknowledged, self.executions(),
                     self.outcomes(client, queue), spans=spans, bound=bound,
                     expect=expect)  # fmt: skip


def check(
    attempted: list[str],
    acknowledged: list[str],
    executions: Counter[str],
    outcomes: dict[str, tuple[bytes | None, ...]],
    *,
    spans: Mapping[str, float] | None = None,
    bound: float | None = None,
    expect: Mapping[str, str] | None = None,
) -> Verdict:
    """The pure checker: no I/O, so it can be tested on made-up histories.

    ``spans``: the longest time each token was seen executing (while a worker served the queue);
    a token whose span exceeds ``bound`` seconds is stuck. ``expect``: tokens that must end
    failed with the given error code; such a token is never lost, and is ``wrong`` when it
    ends any other way.
    """
    tried, acked = set(attempted), set(acknowledged)
    expect = expect or {}
    lost: list[str] = []
    failed: dict[str, str] = {}
    wrong: dict[str, str] = {}
    for token in sorted(acked):
        result, code = (outcomes.get(token) or (None, None))[:2]
        if result == b"failed":
            failed[token] = (code or b"").decode("utf-8", "replace")
        if token in expect:
            got = failed.get(token) if result == b"failed" else None
            if got != expect[token]:
                ended = (result or b"no outcome").decode("utf-8", "replace")
                wrong[token] = f"failed {got}" if got is not None else ended
        elif executions[token] == 0 or result != b"successful":
            lost.append(token)
    executed = {token for token, count in executions.items() if count > 0}
    longest = {token: span for token, span in (spans or {}).items() if token in acked}
    stuck = [] if bound is None else sorted(t for t, span in longest.items() if span > bound)
    return Verdict(
        attempted=len(tried),
        acknowledged=len(acked),
        executed=len(executed),
        executions=sum(executions.values()),
        lost=lost,
        unexpected=sorted(executed - tried),
        duplicated={token: count for token, count in executions.items() if count > 1},
        recovered=sorted(executed & (tried - acked)),
        failed=failed,
        stuck=stuck,
        longest=longest,
        bound=bound,
        wrong=wrong,
    )


@dataclass
class Row:
    """One line of the chaos table (it travels with its test's report as ``CHAOS_ROW``)."""

    scenario: str
    faults: str
    tasks: int = 0
    lost: int | str = "-"
    unexpected: int | str = "-"
    duplicated: str = "-"
    seconds: float = 0.0
    verdict: str = "pass"
    notes: list[str] = field(default_factory=list)
    stuck: int | str = "-"  # "-": executing spans were not watched in this scenario

    @classmethod
    def from_verdict(
        cls, scenario: str, faults: str, verdict: Verdict, bound: int | None, seconds: float
    ) -> Row:
        extra = str(verdict.extra) if bound is None else f"{verdict.extra} (<= {bound})"
        stuck: int | str = "-" if verdict.bound is None else len(verdict.stuck)
        return cls(scenario, faults, verdict.acknowledged, len(verdict.lost),
                   len(verdict.unexpected), extra, seconds, stuck=stuck)  # fmt: skip

    def cells(self) -> tuple[str, ...]:
        return (self.scenario, self.faults, str(self.tasks), str(self.lost), str(self.unexpected),
                str(self.stuck), self.duplicated, f"{self.seconds:.1f}", self.verdict)  # fmt: skip


HEADER = ("scenario", "faults", "tasks", "lost", "unexpected", "stuck", "extra runs", "s",
          "verdict")  # fmt: skip


def number(row: Row) -> tuple[int, str]:
    """Rows in the order of their scenario numbers (10 after 9), then by name."""
    head = row.scenario.split(" ", 1)[0]
    return (int(head) if head.isdigit() else 10**6, row.scenario)


def render(rows: list[Row]) -> str:
    """The table as Markdown, one row per scenario, notes below it."""
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADER))]

    def line(values: tuple[str, ...]) -> str:
        padded = (value.ljust(width) for value, width in zip(values, widths, strict=True))
        return "| " + " | ".join(padded) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    out += [line(values) for values in cells[1:]]
    notes = [f"- {row.scenario}: {note}" for row in rows for note in row.notes]
    return "\n".join(out + (["", *notes] if notes else []))
