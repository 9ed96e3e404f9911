"""The worker's side of the process pool: a handle on each child (its socket, watched once for
the child's whole life, and its pidfd) and the pool that lends an idle child to each try."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import time
from typing import Any

from dothis.engine.context import TaskContext
from dothis.engine.registry import Registry
from dothis.engine.tries import Crashed, TryResult, from_message
from dothis.wire.protocol import DEFAULT_MAX_VALUE_BYTES
from dothis.worker.pool.child import HEADER, child_main, send_frame

log = logging.getLogger("dothis.pool")

# A reply longer than this is not one a child sends (its value is within max-value-bytes).
_MIN_REPLY_LIMIT = 64 * 1024 * 1024


class ChildCrashed(Exception):
    """The child process running a try died."""


class ForeignReply(Exception):
    """The child's socket carried something that is not the reply to the try it runs."""


def check_reply(data: bytes, *, token: str, try_id: int, nonce: str, pid: int) -> TryResult:
    """The result a reply carries, if it is the reply of child ``pid`` to this try."""
    try:
        got_token, got_try, got_nonce, got_pid, message = json.loads(data)
        result = from_message(message)
    except Exception as error:  # anything that does not parse as one of the pool's replies
        raise ForeignReply(
            f"a message that is not one of the pool's replies ({error!r:.80})"
        ) from None
    if not (isinstance(got_token, str) and hmac.compare_digest(got_token, token)):
        raise ForeignReply("a reply without the child's token")
    if got_try != try_id or got_nonce != nonce:
        raise ForeignReply(f"a reply to another try ({got_try!r:.20}, not {try_id})")
    if got_pid != pid:
        raise ForeignReply(f"a reply from process {got_pid!r:.20}, not from the child {pid}")
    return result


class Child:
    def __init__(self, registry: Registry, siblings: list[socket.socket]) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child: keep only its own end
            try:
                parent_end.close()
                for other in siblings:
                    other.close()
                child_main(child_end, registry)
            finally:
                os._exit(0)
        child_end.close()
        self.pid = pid
        self.sock = parent_end
        self.token = secrets.token_hex(16)  # made after the fork: no child forked before has it
        self.tries = 0
        self.stopping: asyncio.Future[int] | None = None
        send_frame(self.sock, json.dumps(self.token).encode())  # a few bytes: never blocks
        self.sock.setblocking(False)
        # Readable when the child ends: a process the task forked may hold the child's end of
        # the socket open, so the end of the stream alone does not tell.
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)
        self._loop: asyncio.AbstractEventLoop | None = None  # watching the socket and pidfd
        self._buffer = bytearray()  # bytes read, not yet a whole frame
        self._frames: collections.deque[bytes] = collections.deque()  # frames no try asked for
        self._waiter: asyncio.Future[bytes] | None = None  # the reply of the try in progress
        self._ended = False
        self._reply_limit = _MIN_REPLY_LIMIT

    def stray_output(self) -> bool:
        """Whether the socket had something between tries (a message no try asked for, or the
        end of a child that died)."""
        if self._frames or self._buffer or self._ended:
            return True
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": the end of the stream
        except BlockingIOError:
            return False
        except OSError:
            pass
        return True

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the socket, and notice the child's end, for as long as the child lives: no
        registration with the event loop per try."""
        if self._loop is not None:
            return
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)
        if self.pidfd is not None:
            loop.add_reader(self.pidfd, self._process_ended)

    def _unwatch(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        loop.remove_reader(self.sock.fileno())
        if self.pidfd is not None:
            loop.remove_reader(self.pidfd)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._end(ChildCrashed(str(error)))
            return
        if not data:
            self._end(ChildCrashed("its socket closed"))
            return
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > self._reply_limit:
                self._end(ForeignReply(f"a frame of {size} bytes, longer than any reply"))
                return
            if len(self._buffer) < HEADER.size + size:
                return
            frame = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)
            else:
                self._frames.append(frame)  # nothing asked for it: stray output

    def _process_ended(self) -> None:
        """The child is gone: a reply it sent first still counts."""
        while self._loop is not None and not self._ended:
            before = len(self._buffer) + len(self._frames)
            self._readable()
            if len(self._buffer) + len(self._frames) == before:
                break
        self._end(ChildCrashed("it ended without a reply"))

    def _end(self, error: Exception) -> None:
        self._ended = True
        self._unwatch()  # an ended stream stays readable: it must not wake the loop again
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        task: TaskContext | None = None,
    ) -> TryResult:
        loop = asyncio.get_running_loop()
        self._watch(loop)
        if self._ended:
            raise ChildCrashed("it had ended before the try")
        self.tries += 1
        try_id, nonce = self.tries, secrets.token_hex(8)
        message = task.to_message() if task is not None else None
        request = json.dumps([try_id, nonce, name, args, max_value_bytes, message]).encode()
        self._reply_limit = max(_MIN_REPLY_LIMIT, 16 * max_value_bytes)
        waiter = self._waiter = loop.create_future()
        frame = HEADER.pack(len(request)) + request
        try:
            sent = self.sock.send(frame)
            if sent < len(frame):
                await loop.sock_sendall(self.sock, frame[sent:])
        except (BlockingIOError, InterruptedError):
            await loop.sock_sendall(self.sock, frame)
        except OSError as error:
            self._waiter = None
            raise ChildCrashed(str(error)) from error
        data = await waiter
        return check_reply(data, token=self.token, try_id=try_id, nonce=nonce, pid=self.pid)

    async def stop(self, grace: float = 0.0) -> int:
        """Stop the child and collect it (once, however often it is called); its exit status.
        With ``grace``, an idle child is first asked to end (it runs its shutdown hooks) and
        given that many seconds; then, or at once, it is killed."""
        if self.stopping is None:
            self.stopping = asyncio.ensure_future(self._stop(grace))
        return await asyncio.shield(self.stopping)

    async def _stop(self, grace: float) -> int:
        if grace > 0:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self._close_fds()
                    return status
                await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._close_fds()
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, self.pid, 0)
        return status

    def _close_fds(self) -> None:
        self._unwatch()
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

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
        child = Child(self.registry, [other.sock for other in self._children])
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
        child: Child | None = await self._idle.get()
        try:
            assert child is not None
            if child.stray_output():
                log.warning("process %d had output no try asked for (a process forked by an "
                            "earlier task?); it is replaced", child.pid)  # fmt: skip
                child, _ = await self._replace(child)
                if child is None:
                    return Crashed(f"the pool stopped before {name} could run")
            running = child
            try:
                if timeout is None:
                    return await running.call(name, args, max_value_bytes, task)
                async with asyncio.timeout(timeout):
                    return await running.call(name, args, max_value_bytes, task)
            except (TimeoutError, asyncio.CancelledError):
                child, _ = await self._replace(running)
                raise
            except ChildCrashed:
                child, how = await self._replace(running)
                return Crashed(f"the process running {name} was {how}")
            except ForeignReply as error:
                child, _ = await self._replace(running)
                log.warning("process %d, running %s, was sent %s; it is replaced", running.pid,
                            name, error)  # fmt: skip
                return Crashed(
                    f"the process running {name} was sent {error}, and was replaced: a task "
                    "that forks must end the forked process with os._exit() and never write on "
                    "descriptors it inherited"
                )
        finally:
            if child is not None:
                self._idle.put_nowait(child)

    async def close(self, grace: float = 0.0) -> None:
        """Stop every child; with ``grace`` seconds, idle ones end on their own first (their
        shutdown hooks run)."""
        self._closed = True
        children, self._children = self._children, []  # no try replaces them from here
        await asyncio.gather(*(child.stop(grace) for child in children))
