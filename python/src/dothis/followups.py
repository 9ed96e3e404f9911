"""What happens after a task ends: its callback task, and the release of tasks waiting for it.

finish.lua (and recover.lua, cancel.lua, release.lua) add the id of an ended task that has an
on-success / on-failure callback or dependents to ``<queue>:releasing``. ``Followups.run`` does
the work and then removes the id; every step is idempotent (the callback has a deterministic id
and enqueue.lua refuses an existing one; release.lua removes the child from the parent's set
first), so the worker that finished the task and any reaper may both run it.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, cast

from dothis import codec
from dothis.protocol import Field, Keys, Outcome, State, now_iso, now_ms
from dothis.scripts import Scripts

log = logging.getLogger("dothis.followups")


def callback_id(task_id: str) -> str:
    """The id of a task's callback: deterministic, so it is enqueued at most once."""
    return "cb-" + hashlib.sha1(task_id.encode()).hexdigest()


def callback_call(task_id: str, fields: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """(function, args) of the callback an ended task asks for, or None (SPEC.md 5.13)."""
    result = fields.get(Field.RESULT)
    succeeded = result == Outcome.SUCCESSFUL
    function = fields.get(Field.ON_SUCCESS if succeeded else Field.ON_FAILURE)
    if not function:
        return None
    value: Any = None
    if succeeded:
        try:
            value = codec.decode(fields.get(Field.RESULT_VALUE, "null"))
        except ValueError:
            value = None
    error = None if succeeded else {"code": fields.get(Field.ERROR_CODE, ""),
                                    "reason": fields.get(Field.ERROR_REASON, "")}  # fmt: skip
    return function, {"id": task_id, "outcome": result, "value": value, "error": error}


class Followups:
    def __init__(self, client: Any, scripts: Scripts, keys: Keys, failure_ttl: int) -> None:
        self.client = client
        self.scripts = scripts
        self.keys = keys
        self.failure_ttl = failure_ttl

    async def run(self, task_id: str) -> None:
        """Run the follow-ups of ``task_id`` and of every task it made fail, then forget them."""
        todo = [task_id]
        while todo:
            current = todo.pop()
            raw = cast(dict[bytes, bytes], await self.client.hgetall(self.keys.task(current)))
            fields = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
            result = fields.get(Field.RESULT)
            if fields.get(Field.STATE) == State.FINISHED and result:
                await self._callback(current, fields)
                todo += await self._release_children(current, result)
            await self.client.srem(self.keys.releasing, current)

    async def _callback(self, task_id: str, fields: dict[str, str]) -> None:
        call = callback_call(task_id, fields)
        if call is None:
            return
        function, args = call
        child = callback_id(task_id)
        created = await self.scripts.enqueue(
            keys=[self.keys.task(child), self.keys.pending, self.keys.scheduled],
            args=[child, "back", "0", "0",
                  Field.FUNCTION, function, Field.STATE, State.PENDING,
                  Field.ARGS, codec.encode(args), Field.PENDING_CREATED, now_iso(),
                  Field.CALLBACK_OF, task_id],
        )  # fmt: skip
        if created == 1:
            log.debug("enqueued %s callback %s of %s", function, child, task_id)

    async def _release_children(self, task_id: str, result: str) -> list[str]:
        """Release each waiting child; the ids of children this made fail (their turn next)."""
        dependents = self.keys.dependents(task_id)
        failed: list[str] = []
        for raw in cast(list[bytes], await self.client.smembers(dependents)):
            child, _ = self.keys.parse_entry(raw)
            if child is None:
                await self.client.srem(dependents, raw)
                continue
            key = self.keys.task(child)
            released = await self.scripts.release(
                keys=[key, self.keys.pending, dependents, self.keys.failed,
                      self.keys.dependents(child), self.keys.releasing],
                args=[child, task_id, result, now_iso(), now_ms(), self.keys.results, key,
                      max(self.failure_ttl, 0)],
            )  # fmt: skip
            if released == 3:
                failed.append(child)
        return failed

    async def drain(self, limit: int = 100) -> int:
        """Run the follow-ups left in <queue>:releasing (a worker died before it ran them)."""
        ids = cast(list[bytes], await self.client.srandmember(self.keys.releasing, limit))
        for raw in ids:
            task_id, _ = self.keys.parse_entry(raw)
            if task_id is None:
                await self.client.srem(self.keys.releasing, raw)
            else:
                await self.run(task_id)
        return len(ids)
