"""Recovery of tasks whose worker is gone (recover.lua), run by every worker on a timer.

An executing entry whose hash names an owner whose worker key has expired is recovered at once.
An entry with no recorded owner (its claimer died between the claim and start.lua) is recovered
only after this reaper has seen it ownerless for a whole lease, so a live claimer is never raced.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from dothis.followups import Followups
from dothis.protocol import (
    DEFAULT_REJECTED_MAX,
    ID_MAX_BYTES,
    Keys,
    RejectCode,
    State,
    name_problem,
    now_iso,
    now_ms,
)
from dothis.scripts import Scripts

log = logging.getLogger("dothis.reaper")

PAGE = 1000
MAX_PAGES = 100
ENTRY_RECORD_CHARS = 1024


def rejection(entry: bytes, code: RejectCode, reason: str, worker_id: str) -> str:
    """A <queue>:rejected record (schema/rejected.schema.json)."""
    return json.dumps(
        {
            "entry": entry.decode("utf-8", "replace")[:ENTRY_RECORD_CHARS],
            "error-code": code.value,
            "error-reason": reason,
            "rejected-created": now_iso(),
            "worker": worker_id,
        }
    )


@dataclass
class SweepReport:
    requeued: int = 0
    failed: int = 0
    rejected: int = 0


class Reaper:
    def __init__(
        self,
        client: Any,
        scripts: Scripts,
        keys: Keys,
        worker_id: str,
        lease_ms: int,
        max_claims: int,
        followups: Followups,
    ) -> None:
        self.client = client
        self.scripts = scripts
        self.keys = keys
        self.worker_id = worker_id
        self.lease = lease_ms / 1000
        self.max_claims = max_claims
        self.followups = followups
        self._ownerless: dict[bytes, float] = {}

    async def sweep(self) -> SweepReport:
        report = SweepReport()
        await self.followups.drain()
        entries = await self._executing_entries()
        valid: list[tuple[bytes, str]] = []
        for entry in entries:
            task_id, problem = self.keys.parse_entry(entry)
            if task_id is None:
                record = rejection(entry, RejectCode.INVALID_ID, problem, self.worker_id)
                report.rejected += await self.scripts.reject(
                    keys=[self.keys.executing, self.keys.rejected],
                    args=[entry, record, DEFAULT_REJECTED_MAX],
                )
            else:
                valid.append((entry, task_id))
        if not valid:
            self._ownerless.clear()
            return report
        pipe = self.client.pipeline(transaction=False)
        for _, task_id in valid:
            pipe.hmget(self.keys.task(task_id), "state", "worker")
        states = await pipe.execute(raise_on_error=False)
        now = time.monotonic()
        seen: set[bytes] = set()
        for (entry, task_id), fields in zip(valid, states, strict=True):
            seen.add(entry)
            state, owner = fields if isinstance(fields, list) else (None, None)
            owner_id = owner.decode("utf-8", "replace") if owner else ""
            if state == State.EXECUTING.value.encode() and owner_id:
                if name_problem(owner_id, "worker id", ID_MAX_BYTES):
                    continue
                await self._recover(entry, task_id, owner_id, report)
            else:
                first = self._ownerless.setdefault(entry, now)
                if now - first >= self.lease:
                    await self._recover(entry, task_id, "", report)
                    self._ownerless.pop(entry, None)
        for entry in list(self._ownerless):
            if entry not in seen:
                del self._ownerless[entry]
        return report

    async def _executing_entries(self) -> list[bytes]:
        """The executing list, read in pages (a page shorter than PAGE is the last)."""
        entries: list[bytes] = []
        for page in range(MAX_PAGES):
            chunk = await self.client.lrange(
                self.keys.executing, page * PAGE, (page + 1) * PAGE - 1
            )
            entries.extend(chunk)
            if len(chunk) < PAGE:
                break
        return entries

    async def _recover(self, entry: bytes, task_id: str, owner: str, report: SweepReport) -> None:
        keys = [
            self.keys.task(task_id),
            self.keys.executing,
            self.keys.pending,
            self.keys.failed,
            self.keys.dependents(task_id),
            self.keys.releasing,
        ]
        if owner:
            if await self.client.exists(self.keys.worker(owner)):
                return
            keys.append(self.keys.worker(owner))
        outcome = await self.scripts.recover(
            keys=keys,
            args=[entry, owner, self.max_claims, now_iso(), self.keys.results,
                  self.keys.task(task_id), task_id, now_ms()],
        )  # fmt: skip
        if outcome == b"requeued":
            report.requeued += 1
            log.warning(
                "recovered task %s from %s: back in %s",
                task_id,
                f"dead worker {owner}" if owner else "an unfinished claim",
                self.keys.pending,
            )
        elif outcome == b"failed":
            report.failed += 1
            await self.followups.run(task_id)
            log.warning(
                "task %s failed with worker-lost: claimed %d times", task_id, self.max_claims
            )
