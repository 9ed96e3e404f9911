"""The worker's leases (SPEC.md 9.2): one worker key per queue it serves, and a lease per task it
holds, renewed every heartbeat from a thread of their own, with a connection of their own, so that
no task code (a blocking ``async def``, a call that holds the event loop) can delay them.

The thread also watches the event loop: when it has not run for longer than a heartbeat, a task is
blocking it, and the log says so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dothis.store import leases
from dothis.store.connection import REDIS_OR_REPLY_ERRORS, connect
from dothis.store.execute import SyncStore
from dothis.store.ops import Ops
from dothis.wire import codec
from dothis.wire.records import Claim
from dothis.worker.lane import Lane

log = logging.getLogger("dothis.worker")

Lost = Callable[[Ops, Claim], None]


class Heartbeat:
    def __init__(
        self,
        url: str,
        lanes: list[Lane],
        worker_id: str,
        fields: Mapping[str, str],
        lease_ms: int,
        heartbeat_ms: int,
        running: Callable[[str], list[dict[str, Any]]] = lambda queue: [],
    ) -> None:
        self.store = SyncStore(connect(url))
        self.running = running
        self.lanes = lanes
        self.worker_id = worker_id
        self.fields = fields
        self.lease_ms = lease_ms
        self.period = heartbeat_ms / 1000
        self._held: dict[tuple[str, str], tuple[Ops, Claim]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dothis-heartbeat", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_lost: Lost = lambda ops, claim: None
        self._loop_seen = time.monotonic()
        self._posted: float | None = None
        self._blocked_since: float | None = None

    # -- held tasks (called from the event loop) ----------------------------------------------

    def hold(self, ops: Ops, claim: Claim) -> None:
        with self._lock:
            self._held[(ops.keys.queue, claim.task_id)] = (ops, claim)

    def release(self, ops: Ops, task_id: str) -> None:
        with self._lock:
            self._held.pop((ops.keys.queue, task_id), None)

    # -- lifecycle ----------------------------------------------------------------------------

    def _listing(self, lane: Lane) -> leases.Listing:
        """This worker's entry in the queue's registry of workers (SPEC.md 9.1)."""
        return leases.Listing(lane.keys.workers, self.worker_id)

    def register(self) -> None:
        """Write every worker key (blocking; before the first claim)."""
        for lane in self.lanes:
            leases.register(self.store.client, lane.keys.worker(self.worker_id), self.fields,
                            self.lease_ms, self._listing(lane))  # fmt: skip
        leases.note_queues(self.store.client, [lane.keys.queue for lane in self.lanes])

    def start(self, loop: asyncio.AbstractEventLoop, on_lost: Lost) -> None:
        self._loop, self._on_lost = loop, on_lost
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def leave(self) -> None:
        """Delete the worker keys; if Redis is away they expire with the lease."""
        try:
            for lane in self.lanes:
                leases.leave(self.store.client, lane.keys.worker(self.worker_id),
                             self._listing(lane))  # fmt: skip
        except REDIS_OR_REPLY_ERRORS as error:
            log.warning("could not remove the worker keys of %s (%s); they expire with the lease",
                        self.worker_id, error)  # fmt: skip
        finally:
            self.store.client.close()

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.beat()
            except REDIS_OR_REPLY_ERRORS as error:
                log.debug("heartbeat failed (%s); retrying at the next one", error)
            except Exception:
                log.exception("heartbeat failed; retrying at the next one")
            self._watch_loop()

    def beat(self) -> None:
        client = self.store.client
        for lane in self.lanes:
            key = lane.keys.worker(self.worker_id)
            listing = self._listing(lane)
            running = {"running": codec.encode(self.running(lane.keys.queue))}
            if not leases.heartbeat(client, key, self.lease_ms, listing, running):
                log.warning("worker key %s had expired (the worker was stalled or Redis lost it); "
                            "its tasks may run elsewhere too", key)  # fmt: skip
                leases.register(client, key, self.fields, self.lease_ms, listing)
        leases.note_queues(client, [lane.keys.queue for lane in self.lanes])
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        replies = self.store.run_many([ops.renew(claim, self.lease_ms) for ops, claim in held])
        for (ops, claim), renewed in zip(held, replies, strict=True):
            loop = self._loop
            if renewed is False and self._taken(ops, claim) and loop and not loop.is_closed():
                loop.call_soon_threadsafe(self._on_lost, ops, claim)

    def _taken(self, ops: Ops, claim: Claim) -> bool:
        """A renewal was refused: the task was taken away if this worker still holds that very
        claim and the hash names another owner or claim (then it lets go of it). A task this
        worker let go of meanwhile, or whose outcome it has just written (finish.lua ran before
        the renewal, its reply not read yet), simply ended here."""
        key = (ops.keys.queue, claim.task_id)
        with self._lock:
            held = self._held.get(key)
            if held is None or held[1] is not claim:
                return False
        _, worker, claims, _ = self.store.run(ops.ownership(claim.task_id))
        if worker == claim.worker.encode() and claims == str(claim.claims).encode():
            return False  # still this claim's: it ended (or is ending) here
        with self._lock:
            if self._held.get(key) is not held:
                return False
            del self._held[key]
        return True

    def _watch_loop(self) -> None:
        """Warn once per stall when the event loop has not run the callback posted at the last
        beat for over two beats (the beat's own wait on Redis does not count)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        now = time.monotonic()
        posted = self._posted
        stalled = now - posted if posted is not None and self._loop_seen < posted else 0.0
        if stalled > 2 * self.period:
            if self._blocked_since is None:
                self._blocked_since = posted
                log.warning("the event loop has not run for %.1f s: a task is blocking it (an "
                            "async def that calls blocking code?); task leases are kept from "
                            "the heartbeat thread", stalled)  # fmt: skip
            return  # the posted callback is still waiting: do not post another
        if self._blocked_since is not None:
            log.warning("the event loop ran again after %.1f s", now - self._blocked_since)
            self._blocked_since = None
        if posted is None or self._loop_seen >= posted:
            self._posted = time.monotonic()
            loop.call_soon_threadsafe(self._seen)

    def _seen(self) -> None:
        self._loop_seen = time.monotonic()
