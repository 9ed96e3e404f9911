"""Periodic and cron schedules: ``@periodic(25)`` and ``@cron("0 5 * * tue")``.

Every worker of the queue checks the schedules its registry holds; fire.lua records the last
occurrence fired per schedule in ``<queue>:periodic`` and enqueues each occurrence exactly once,
however many workers run. Occurrences are aligned to the clock (multiples of the period since the
Unix epoch, or the cron expression in UTC), so every worker computes the same ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter

from dothis import codec
from dothis.protocol import Field, Keys, State, iso_from_ms, name_problem, now_iso, now_ms
from dothis.scripts import Scripts

log = logging.getLogger("dothis.schedules")


@dataclass(frozen=True)
class Schedule:
    name: str
    function: str
    every: float | None = None
    cron: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule has either every (seconds) or cron (an expression)")
        if self.every is not None and not self.every > 0:
            raise ValueError(f"every must be a positive number of seconds, not {self.every!r}")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"{self.cron!r} is not a valid cron expression")
        problem = name_problem(self.name, "schedule name", 200)
        if problem:
            raise ValueError(problem)

    def latest(self, now: int) -> int:
        """The latest occurrence at or before ``now`` (ms since the epoch)."""
        if self.every is not None:
            period = int(self.every * 1000)
            return now // period * period
        assert self.cron is not None
        moment = datetime.fromtimestamp(now / 1000, UTC)
        previous: datetime = croniter(self.cron, moment).get_prev(datetime)
        return int(previous.timestamp() * 1000)

    def task_id(self, occurrence: int) -> str:
        return f"{self.name}@{iso_from_ms(occurrence)}"


class Scheduler:
    """Fires the schedules of one queue; call ``tick`` often (each worker does)."""

    def __init__(self, client: Any, scripts: Scripts, keys: Keys, schedules: list[Schedule]):
        self.client = client
        self.scripts = scripts
        self.keys = keys
        self.schedules = schedules
        self._known: dict[str, int] = {}

    async def tick(self) -> int:
        fired = 0
        now = now_ms()
        for schedule in self.schedules:
            occurrence = schedule.latest(now)
            if occurrence <= self._known.get(schedule.name, -1):
                continue
            task_id = schedule.task_id(occurrence)
            done = await self.scripts.fire(
                keys=[self.keys.periodic, self.keys.task(task_id), self.keys.pending],
                args=[schedule.name, occurrence, task_id,
                      Field.FUNCTION, schedule.function, Field.STATE, State.PENDING,
                      Field.ARGS, codec.encode(dict(schedule.args)),
                      Field.PENDING_CREATED, now_iso()],
            )  # fmt: skip
            self._known[schedule.name] = occurrence
            if done == 1:
                fired += 1
                log.info("fired %s (%s)", task_id, schedule.function)
        return fired
