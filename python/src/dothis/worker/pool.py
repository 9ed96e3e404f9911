"""A pool of child processes that run plain (sync) task functions, so that a try can be stopped.

Each child is forked from the worker once, so it has every registered function, and then runs one
function at a time for the worker. Messages on its pipe are JSON (never pickle). A try that
outlives its timeout gets its child SIGKILLed and replaced; a child that dies mid-try (a signal,
``os._exit``, a crash in native code) is replaced and the try ends as ``crashed``. Children die
with the worker (PR_SET_PDEATHSIG) and exit when their pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from dothis.engine.registry import Registry
from dothis.engine.tries import Crashed, Raised, TryResult, from_message, run_call, to_message

log = logging.getLogger("dothis.pool")


class ChildCrashed(Exception):
    """The child process running a try died."""


def _set_parent_death_signal() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child_main(conn: Connection, registry: Registry) -> None:
    _set_parent_death_signal()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the worker's event loop owns that fd, not this process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    asyncio.events._set_running_loop(None)  # a task may call asyncio.run() itself
    while True:
        try:
            name, args = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        function = registry.get(name)
        result = (
            run_call(function, args)
            if function is not None
            else Raised(f"{name} is not registered in the child")
        )
        conn.send_bytes(json.dumps(to_message(result)).encode())


class Child:
    def __init__(self, registry: Registry, siblings: list[Connection]) -> None:
        parent_end, child_end = Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:  # the child: keep only its own pipe end
            try:
                parent_end.close()
                for other in siblings:
                    other.close()
                _child_main(child_end, registry)
            finally:
                os._exit(0)
        child_end.close()
        self.pid = pid
        self.conn = parent_end

    async def call(self, name: str, args: dict[str, Any]) -> TryResult:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[TryResult] = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            try:
                done.set_result(from_message(json.loads(self.conn.recv_bytes())))
            except (EOFError, OSError) as error:
                done.set_exception(ChildCrashed(str(error)))

        self.conn.send_bytes(json.dumps([name, args]).encode())
        loop.add_reader(fd, readable)
        try:
            return await done
        finally:
            loop.remove_reader(fd)

    async def stop(self) -> int:
        """Kill the child and collect it; its exit status."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.conn.close()
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, self.pid, 0)
        return status

    def exit_description(self, status: int) -> str:
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exited with status {os.WEXITSTATUS(status)}"


class ProcessPool:
    """``size`` children; ``run`` borrows an idle one for one try."""

    def __init__(self, size: int, registry: Registry) -> None:
        self.size = size
        self.registry = registry
        self._idle: asyncio.Queue[Child] = asyncio.Queue()
        self._children: list[Child] = []
        self._closed = False

    def _spawn(self) -> Child:
        child = Child(self.registry, [other.conn for other in self._children])
        self._children.append(child)
        return child

    def start(self) -> None:
        for _ in range(self.size):
            self._idle.put_nowait(self._spawn())

    async def _replace(self, child: Child) -> tuple[Child | None, str]:
        """Stop ``child`` and (unless the pool is closing) start another in its place."""
        if child not in self._children:  # close() has stopped it already (a second Ctrl-C)
            return None, "stopped with the worker"
        self._children.remove(child)
        status = await child.stop()
        return (None if self._closed else self._spawn()), child.exit_description(status)

    async def run(self, name: str, args: dict[str, Any], timeout: float | None) -> TryResult:
        """One try in a child; TimeoutError after ``timeout`` s; Crashed if the child dies."""
        child: Child | None = await self._idle.get()
        assert child is not None
        try:
            return await asyncio.wait_for(child.call(name, args), timeout)
        except TimeoutError:
            child, _ = await self._replace(child)
            raise
        except ChildCrashed:
            child, how = await self._replace(child)
            return Crashed(f"the process running {name} was {how}")
        except asyncio.CancelledError:
            child, _ = await self._replace(child)
            raise
        finally:
            if child is not None:
                self._idle.put_nowait(child)

    async def close(self) -> None:
        self._closed = True
        for child in list(self._children):
            await child.stop()
        self._children.clear()
