"""The claim loop: moves entries from pending into executing (SPEC.md 5.2) while slots are free,
in priority order over the worker's queues, and hands each to the worker. The shards of a sharded
queue (SPEC.md 11.2) form one group of equal priority: each claim starts at the next shard.

A slot is a claimed task whose try has not ended: ``concurrency`` of them, plus the prefetch
(worker/prefetch.py), which may change as the worker goes. A slot frees
as its try ends, before the outcome is written, so the claim of the next entry goes out in the
same pipeline as the finish of the last one. A busy worker claims and starts the entries of every
free slot with one take.lua call per queue (SPEC.md 5.18); one that found nothing blocks in BLMOVE
for one entry (on its own connection), which the engine then starts with start.lua.

A lost take.lua reply is a failed claim: the worker never starts entries it does not know, and
the tasks the call may have started, whose leases no one renews, go back to pending when the
reaper sees their leases run out (SPEC.md 5.18, 9.2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis

from dothis.store.connection import REDIS_OR_REPLY_ERRORS, redact
from dothis.store.execute import AsyncStore
from dothis.store.faults import report
from dothis.store.ops import TAKE_MAX
from dothis.store.replies import StartReply, Unstarted
from dothis.worker.lane import Lane
from dothis.worker.prefetch import Prefetch

log = logging.getLogger("dothis.worker")

MULTI_QUEUE_BLOCK_SECONDS = 0.25
CLAIM_BATCH = 100

# A claimed entry: its lane, the entry, and start's reply when take.lua started it (else None:
# the engine starts it).
Claimed = tuple[Lane, bytes, StartReply | None]
HandOver = Callable[[Lane, bytes, StartReply | None], None]


class Claimer:
    def __init__(
        self,
        store: AsyncStore,
        blocking: AsyncStore,
        lanes: list[Lane],
        concurrency: int,
        prefetch: Prefetch,
        block_seconds: float,
        url: str,
        groups: list[int] | None = None,
    ) -> None:
        """``groups``: how many lanes, in order, make each priority level (default: one each)."""
        self.store = store
        self.blocking = blocking
        self.lanes = lanes
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.held = 0  # claimed tasks whose try has not ended
        self._freed = asyncio.Event()  # set when a slot frees (or the worker stops)
        self.block_seconds = block_seconds
        self.url = url
        self._idle = True  # the last claim found nothing: block for one entry, do not batch
        sizes = groups if groups is not None else [1] * len(lanes)
        if sum(sizes) != len(lanes) or min(sizes, default=1) < 1:
            raise ValueError("groups must split the lanes into non-empty runs")
        starts = [sum(sizes[:index]) for index in range(len(sizes))]
        runs = zip(starts, sizes, strict=True)
        self._groups = [lanes[start : start + size] for start, size in runs]
        self._turns = [0] * len(sizes)  # where each group's next claim starts

    def order(self) -> list[Lane]:
        """The lanes in claim order: groups by priority, each group rotated one step further
        than at the previous claim (fair over the shards of a sharded queue)."""
        ordered: list[Lane] = []
        for index, group in enumerate(self._groups):
            turn = self._turns[index] % len(group)
            self._turns[index] = turn + 1
            ordered += group[turn:] + group[:turn]
        return ordered

    @property
    def free(self) -> int:
        return self.concurrency + self.prefetch.current() - self.held

    def release(self) -> None:
        """A claimed task's try is over: its slot is free."""
        self.held -= 1
        self._freed.set()

    async def run(self, stopped: asyncio.Event, hand_over: HandOver) -> None:
        """Claim until ``stopped`` is set; each claimed entry goes to ``hand_over``."""
        watch = asyncio.ensure_future(stopped.wait())
        watch.add_done_callback(lambda _: self._freed.set())
        try:
            await self._claim_until(stopped, hand_over)
        finally:
            watch.cancel()

    async def _claim_until(self, stopped: asyncio.Event, hand_over: HandOver) -> None:
        delay, outage = 0.1, None
        loop = asyncio.get_running_loop()
        while not stopped.is_set():
            if self.free <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            wanted = min(self.free, CLAIM_BATCH)
            self.held += wanted
            try:
                claimed = await self._claim(wanted)
            except REDIS_OR_REPLY_ERRORS as error:
                self.held -= wanted
                if outage is None:  # one line per outage, not one per retry
                    outage = loop.time()
                    self._log_outage(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if outage is not None:
                log.warning("claiming again after %.1f s", loop.time() - outage)
                delay, outage = 0.1, None
            self.held -= wanted - len(claimed)
            for lane, entry, taken in claimed:
                hand_over(lane, entry, taken)

    def _log_outage(self, error: BaseException) -> None:
        if isinstance(error, redis.ResponseError):
            report(log, error, "cannot claim")
        else:
            log.warning("lost Redis at %s (%s); reconnecting with backoff", redact(self.url),
                        error)  # fmt: skip

    async def _claim(self, wanted: int) -> list[Claimed]:
        """Up to ``wanted`` entries, queues in priority order (shards in turn), each claimed and
        started by take.lua; when all are empty, one entry claimed by BLMOVE (not yet started) on
        the first queue (or the shard whose turn it is)."""
        claimed: list[Claimed] = []
        single = len(self.lanes) == 1
        lanes = self.order()
        for lane in lanes:
            if self._idle and single:
                break  # one queue, and nothing waited last time: BLMOVE at once
            ctx = lane.context
            take = lane.ops.take(ctx.worker_id, ctx.limits, min(wanted - len(claimed), TAKE_MAX),
                                 ctx.lease_ms)  # fmt: skip
            try:
                batch = await self.store.run(take)
            except REDIS_OR_REPLY_ERRORS:
                if not claimed:
                    raise
                return claimed  # what earlier queues gave is handed over; this one next time
            claimed += [(lane, taken.entry, None if isinstance(taken.reply, Unstarted)
                         else taken.reply) for taken in batch]  # fmt: skip
            if len(claimed) == wanted:
                return claimed
        if claimed:
            self._idle = False
            return claimed
        block = self.block_seconds if single else MULTI_QUEUE_BLOCK_SECONDS
        first = lanes[0]
        entry = await self.blocking.run(first.ops.claim_blocking(block))
        # Busy again once BLMOVE returns an entry: the next claim takes a whole batch.
        self._idle = entry is None
        return [] if entry is None else [(first, entry, None)]
