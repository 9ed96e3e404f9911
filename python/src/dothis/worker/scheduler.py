"""Periodic and cron schedules (``@periodic(25)``, ``@cron("0 5 * * tue")``) fired by workers.

Each schedule belongs to one queue; every worker serving that queue checks it, and fire.lua records
the last occurrence fired per schedule in ``<queue>:periodic`` and enqueues each occurrence exactly
once, however many workers run. Occurrences are aligned to the clock (multiples of the period since
the Unix epoch, or the cron expression in UTC), so every worker computes the same ones.
"""

from __future__ import annotations

import logging

from dothis.engine.registry import Schedule
from dothis.store.execute import AsyncStore
from dothis.store.replies import Fired
from dothis.wire import codec
from dothis.wire.clock import now_iso, now_ms
from dothis.wire.protocol import Field, State
from dothis.worker.lane import Lane

log = logging.getLogger("dothis.schedules")


class Scheduler:
    name = "firing schedules"

    def __init__(self, store: AsyncStore, lanes: list[Lane], schedules: list[Schedule]) -> None:
        self.store = store
        served = {lane.keys.queue: lane for lane in lanes}
        self.schedules = [(s, served[s.queue]) for s in schedules if s.queue in served]
        for schedule in schedules:
            if schedule.queue not in served:
                log.info("schedule %s fires into queue %s, which this worker does not serve; a "
                         "worker serving it fires it", schedule.name, schedule.queue)  # fmt: skip
        shortest = min((s.every for s, _ in self.schedules if s.every), default=4.0)
        self.period = min(1.0, shortest / 4)
        self._known: dict[str, int] = {}

    async def tick(self) -> None:
        now = now_ms()
        for schedule, lane in self.schedules:
            occurrence = schedule.latest(now)
            if occurrence <= self._known.get(schedule.name, -1):
                continue
            task_id = schedule.task_id(occurrence)
            fired = await self.store.run(lane.ops.fire(schedule.name, occurrence, task_id, [
                Field.FUNCTION, schedule.function, Field.STATE, State.PENDING,
                Field.ARGS, codec.encode(dict(schedule.args)), Field.PENDING_CREATED, now_iso(),
            ]))  # fmt: skip
            self._known[schedule.name] = occurrence
            if fired is Fired.FIRED:
                log.info("fired %s (%s) into %s", task_id, schedule.function, schedule.queue)
