"""The process pool: children that run one try at a time each, fed in batches.

A try waits in the pool until a child is free; the child then gets it with the tries waiting at
that moment in one message (up to ``BATCH`` of them, while tries are short; one at a time once
they take longer than ``SHORT`` seconds on average), runs them in order and answers each as it
ends, so the worker handles the replies of one try while the child runs the next. A busy child
holds one of the worker's concurrency slots (shared with its async and thread tries), so no more
than ``concurrency`` tries run at once.

A try's timeout runs from the moment it begins: when the child answered the try before it, or got
it as the first of its batch. At its timeout, or when it is cancelled while it runs, the child is
killed and replaced, and the tries behind it, which have not begun, go to the next child. A try
cancelled before it began is withdrawn: the child skips it. A child that dies during a try ends
that try as crashed, and so does one whose reply is not its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from dothis.engine.context import TaskContext
from dothis.engine.registry import Registry
from dothis.engine.tries import Crashed, TryResult
from dothis.wire.protocol import DEFAULT_MAX_VALUE_BYTES
from dothis.worker.pool.parent import Child, ForeignReply, check_reply
from dothis.worker.slots import Slots

log = logging.getLogger("dothis.pool")

BATCH = 32  # the most tries one message gives a child
SHORT = 0.01  # seconds: while tries take less on average, a child gets them in batches
WEIGHT = 0.2  # of the latest try in the running mean of try durations


@dataclass(eq=False)
class _Try:
    name: str
    args: dict[str, Any]
    timeout: float | None
    max_value_bytes: int
    task: TaskContext | None
    future: asyncio.Future[TryResult]
    number: int = 0  # given by the child it goes to
    nonce: str = ""


class _Lane:
    """A child and the tries it was sent; the first of them is running."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.sent: collections.deque[_Try] = collections.deque()
        self.began = 0.0  # loop time the running try began
        self.timer: asyncio.TimerHandle | None = None
        self.listening = False


def _settle(item: _Try, result: TryResult | BaseException) -> None:
    if item.future.done():  # cancelled: its caller has gone
        return
    if isinstance(result, BaseException):
        item.future.set_exception(result)
    else:
        item.future.set_result(result)


class ProcessPool:
    """``size`` children. ``slots`` is the worker's concurrency limit, shared with its other tries
    (default: one per child); ``observe`` hears how many seconds each try ran."""

    def __init__(
        self,
        size: int,
        registry: Registry,
        slots: Slots | None = None,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.size = size
        self.registry = registry
        self.slots = slots
        self.observe = observe
        self.mean: float | None = None  # seconds per try, a running mean
        self._lanes: list[_Lane] = []  # one per live child
        self._idle: list[_Lane] = []
        self._waiting: collections.deque[_Try] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._feeding = False  # a call of _feed_idle is due
        self._background: set[asyncio.Future[Any]] = set()
        self._closed = False

    def start(self) -> None:
        for _ in range(self.size):
            self._idle.append(self._spawn())

    def _spawn(self) -> _Lane:
        lane = _Lane(Child(self.registry, [other.child.sock for other in self._lanes]))
        self._lanes.append(lane)
        return lane

    async def run(
        self,
        name: str,
        args: dict[str, Any],
        timeout: float | None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        task: TaskContext | None = None,
    ) -> TryResult:
        """One try in a child; TimeoutError after ``timeout`` s; Crashed if the child dies or
        something else answers; TooLarge for a value longer than ``max_value_bytes``."""
        return await self.submit(name, args, timeout, max_value_bytes, task)

    def submit(
        self,
        name: str,
        args: dict[str, Any],
        timeout: float | None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        task: TaskContext | None = None,
    ) -> asyncio.Future[TryResult]:
        """As ``run``, the future of the try's result; cancelling it withdraws the try (or stops
        it: its child is replaced). An idle child gets it with the tries submitted along with it
        (in the same turn of the event loop) in one message."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TryResult] = loop.create_future()
        if self._closed:
            future.set_result(Crashed(f"the pool stopped before {name} could run"))
            return future
        if self._dispatcher is None:
            self._wake = asyncio.Event()
            self.slots = self.slots or Slots(self.size)
            self._dispatcher = loop.create_task(self._dispatch())
        item = _Try(name, args, timeout, max_value_bytes, task, future)
        future.add_done_callback(partial(self._cancelled, item))
        self._waiting.append(item)
        if self._idle and not self._feeding:  # at the end of this turn, not through a task
            self._feeding = True
            loop.call_soon(self._feed_idle)
        return future

    def _feed_idle(self) -> None:
        """Give the waiting tries to idle children while slots are free; the dispatcher waits
        for a slot for the rest."""
        self._feeding = False
        assert self._wake is not None and self.slots is not None
        while self._waiting and self._idle and not self._closed and self.slots.try_acquire():
            self._feed(self._idle.pop())
        if self._waiting and self._idle:
            self._wake.set()

    def _cancelled(self, item: _Try, future: asyncio.Future[TryResult]) -> None:
        if future.cancelled():
            self._withdraw(item)

    # -- feeding the children --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        """Give waiting tries to idle children, each taking a slot while it is busy."""
        assert self._wake is not None and self.slots is not None
        while not self._closed:
            if not (self._waiting and self._idle):
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.slots.acquire()
            if self._closed or not (self._waiting and self._idle):
                self.slots.release()
                continue
            self._feed(self._idle.pop())

    def _feed(self, lane: _Lane) -> None:
        """Send ``lane`` (which holds a slot) the tries waiting now; with none, it goes idle."""
        if lane.child.stray_output():
            log.warning("process %d had output no try asked for (a process forked by an "
                        "earlier task?); it is replaced", lane.child.pid)  # fmt: skip
            self._lose(lane)  # its replacement is fed in its place
            return
        batch = self._take_batch()
        if not batch:
            self._go_idle(lane)
            return
        if not lane.listening:
            lane.listening = True
            lane.child.listen(partial(self._reply, lane), partial(self._ended, lane))
        requests = []
        for item in batch:
            item.number, item.nonce, request = lane.child.request(
                item.name, item.args, item.max_value_bytes, item.task
            )
            requests.append(request)
        lane.sent.extend(batch)
        lane.began = asyncio.get_running_loop().time()
        self._arm(lane)
        try:
            lane.child.send("run", requests)
        except Exception as error:  # the child is gone: its end is handled as any other
            self._ended(lane, error)

    def _take_batch(self) -> list[_Try]:
        size = BATCH if self.mean is not None and self.mean < SHORT else 1
        batch: list[_Try] = []
        while self._waiting and len(batch) < size:
            item = self._waiting.popleft()
            if not item.future.done():  # not cancelled while it waited
                batch.append(item)
        return batch

    def _go_idle(self, lane: _Lane) -> None:
        assert self.slots is not None and self._wake is not None
        self._idle.append(lane)
        self.slots.release()
        if self._waiting:
            self._wake.set()

    def _arm(self, lane: _Lane) -> None:
        """The timer of the try running now, if it has a timeout."""
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        head = lane.sent[0]
        if head.timeout is not None and not head.future.done():
            lane.timer = asyncio.get_running_loop().call_at(
                lane.began + head.timeout, self._timed_out, lane, head
            )

    # -- what the children answer -----------------------------------------------------------------

    def _reply(self, lane: _Lane, frame: bytes) -> None:
        if not lane.sent:  # nothing was asked: a stray message; the child is replaced
            lane.child.keep_stray(frame)
            return
        head = lane.sent.popleft()
        child = lane.child
        try:
            result = check_reply(frame, token=child.token, try_id=head.number, nonce=head.nonce,
                                 pid=child.pid)  # fmt: skip
        except ForeignReply as error:
            self._foreign(lane, head, error)
            return
        now = asyncio.get_running_loop().time()
        self._observe(now - lane.began)
        lane.began = now
        _settle(head, result)
        if lane.sent:
            self._arm(lane)
            return
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if self._waiting and not self._closed:  # keep the slot: feed it again
            self._feed(lane)
        else:
            self._go_idle(lane)

    def _observe(self, seconds: float) -> None:
        self.mean = seconds if self.mean is None else self.mean + WEIGHT * (seconds - self.mean)
        if self.observe is not None:
            self.observe(seconds)

    def _timed_out(self, lane: _Lane, head: _Try) -> None:
        lane.timer = None
        lane.child.drain()  # a reply already there still counts
        if not lane.sent or lane.sent[0] is not head:
            return
        lane.sent.popleft()
        _settle(head, TimeoutError())
        self._lose(lane)

    def _foreign(self, lane: _Lane, head: _Try, error: ForeignReply) -> None:
        log.warning("process %d, running %s, was sent %s; it is replaced", lane.child.pid,
                    head.name, error)  # fmt: skip
        _settle(head, Crashed(
            f"the process running {head.name} was sent {error}, and was replaced: a task that "
            "forks must end the forked process with os._exit() and never write on descriptors "
            "it inherited"))  # fmt: skip
        self._lose(lane)

    def _ended(self, lane: _Lane, error: BaseException) -> None:
        """The child died, closed its socket or sent what no child sends."""
        if lane not in self._lanes:
            return
        head = lane.sent.popleft() if lane.sent else None
        if head is not None and isinstance(error, ForeignReply):
            self._foreign(lane, head, error)
            return
        child = lane.child
        self._lose(lane)
        if head is not None:  # crashed, with how the child ended once it is collected
            reaped = self._in_background(child.stop())
            reaped.add_done_callback(partial(self._crashed, head, child))

    @staticmethod
    def _crashed(head: _Try, child: Child, reaped: asyncio.Future[Any]) -> None:
        how = "lost" if reaped.cancelled() or reaped.exception() \
            else child.exit_description(reaped.result())  # fmt: skip
        _settle(head, Crashed(f"the process running {head.name} was {how}"))

    # -- losing a child ---------------------------------------------------------------------------

    def _lose(self, lane: _Lane) -> _Lane | None:
        """Kill ``lane``'s child now and start another in its place (unless the pool is
        closing); the tries it had not begun wait for the next child. The new lane, holding
        the old one's slot, or None (the slot is given back)."""
        if lane.timer is not None:
            lane.timer.cancel()
        self._waiting.extendleft(reversed([item for item in lane.sent if not item.future.done()]))
        lane.sent.clear()
        if lane in self._lanes:
            self._lanes.remove(lane)
        try:
            lane.child.kill()
        finally:
            self._in_background(lane.child.stop())
        if self._closed:
            assert self.slots is not None
            self.slots.release()
            return None
        replacement = self._spawn()
        if self._waiting:
            self._feed(replacement)
        else:
            self._go_idle(replacement)
        return replacement

    def _withdraw(self, item: _Try) -> None:
        """``item`` was cancelled: it must not run, or not go on running."""
        if item in self._waiting:
            self._waiting.remove(item)
            return
        for lane in self._lanes:
            if item not in lane.sent:
                continue
            if lane.sent[0] is item:  # running: its child goes, the tries behind it do not
                lane.sent.popleft()
                self._lose(lane)
            else:  # not begun: the child skips it (its reply is still read, in order)
                try:
                    lane.child.send("withdraw", [item.number])
                except Exception as error:  # the child is gone: its end is handled as any other
                    self._ended(lane, error)
            return

    def _in_background(self, work: Any) -> asyncio.Future[Any]:
        task: asyncio.Future[Any] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def close(self, grace: float = 0.0) -> None:
        """Stop every child; with ``grace`` seconds, idle ones end on their own first (their
        shutdown hooks run)."""
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        lanes, self._lanes = self._lanes, []  # no try replaces them from here
        for item in self._waiting:
            _settle(item, Crashed(f"the pool stopped before {item.name} could run"))
        self._waiting.clear()
        for lane in lanes:
            if lane.timer is not None:
                lane.timer.cancel()
            for item in lane.sent:  # whoever still waits hears of it (the child is stopped)
                _settle(item, Crashed(f"the pool stopped while {item.name} ran or waited"))
            lane.sent.clear()
        await asyncio.gather(*(lane.child.stop(grace) for lane in lanes),
                             return_exceptions=True)  # fmt: skip
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
