"""Where plain (sync) task functions run: a pool of child processes, so that a try can be stopped,
or a pool of threads.

**Processes.** Each child is forked from the worker once, so it has every registered function,
and then runs one function at a time for the worker. Messages on its socket are JSON (never
pickle), each framed by its 8-byte length. A try that outlives its timeout gets its child SIGKILLed
and replaced; a child that dies mid-try (a signal, ``os._exit``, a crash in native code) is
replaced and the try ends as ``crashed`` (its end is watched through a pidfd too, since a process
the task forked may keep the socket open). Children die with the worker (PR_SET_PDEATHSIG) and exit
when their socket closes.

A try must not be able to harm the tries after it:

- every request carries its try's number and a fresh nonce, and the reply must repeat them with
  the child's token (random, made for this child after the fork) and the child's pid; any other
  reply (a process the task forked, writing on the inherited socket) is refused: the child is
  replaced and the try ends ``crashed``. The child itself never answers from another pid: when a
  fork inside the task returns in both processes, the forked one ``_exit``s;
- fds 0, 1 and 2 (and ``sys.stdin``, ``sys.stdout``, ``sys.stderr``) are restored after every try,
  and the socket is never one of them;
- SIGTERM and SIGINT do nothing in a child (a ``systemctl stop`` or Ctrl-C reaches the whole
  process group): the worker decides, and SIGKILLs a child it wants gone.

**Threads.** A thread cannot be stopped: a try that outlives its timeout (or is cancelled) leaves
its thread running in the background, its result ignored, and the next try gets another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, ClassVar

from dothis.engine.context import TaskContext
from dothis.engine.hooks import call_hooks
from dothis.engine.registry import Registry
from dothis.engine.tries import (
    Crashed,
    Raised,
    TryResult,
    from_message,
    run_call,
    serve_tries_here,
    to_message,
    within_limit,
)
from dothis.wire.protocol import DEFAULT_MAX_VALUE_BYTES

log = logging.getLogger("dothis.pool")

_HEADER = struct.Struct("!Q")
# A reply longer than this is not one a child sends (its value is within max-value-bytes).
_MIN_REPLY_LIMIT = 64 * 1024 * 1024
_LOWEST_FD = 3  # the child's socket and its copies of fds 0-2 live at or above this


class ChildCrashed(Exception):
    """The child process running a try died."""


class ForeignReply(Exception):
    """The child's socket carried something that is not the reply to the try it runs."""


# -- the child's side -----------------------------------------------------------------------------


def set_parent_death_signal() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _nothing(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGINT in a child: the worker decides what happens to its tries."""


def _ignore_stop_signals() -> None:
    # A handler rather than SIG_IGN: a program the task starts (exec) gets the default back.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _nothing)
        signal.siginterrupt(signum, False)  # system calls restart, in native code too


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], size - got)
        if count == 0:
            return None
        got += count
    return bytes(buffer)


def _recv_frame(sock: socket.socket) -> bytes | None:
    """One frame, or None at the end of the stream."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    return _recv_exact(sock, _HEADER.unpack(header)[0])


def _send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_HEADER.pack(len(body)))
    sock.sendall(body)


def _high(fd: int) -> int:
    """A copy of ``fd`` numbered 3 or more, not inherited by programs the task starts."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _LOWEST_FD)


class _StandardStreams:
    """Fds 0, 1 and 2 and ``sys.stdin``/``stdout``/``stderr`` as the child started, put back after
    every try."""

    NAMES = ("stdin", "stdout", "stderr")

    def __init__(self) -> None:
        for fd in (0, 1, 2):  # a closed one is /dev/null, so no later fd takes its number
            try:
                os.fstat(fd)
            except OSError:
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
        self.saved = [_high(fd) for fd in (0, 1, 2)]
        self.streams: list[IO[Any] | None] = [getattr(sys, name) for name in self.NAMES]

    def restore(self) -> None:
        for stream in (sys.stdout, sys.stderr):  # what the task wrote goes where it meant
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        for fd, saved in zip((0, 1, 2), self.saved, strict=True):
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        for index, name in enumerate(self.NAMES):
            stream = self.streams[index]
            if stream is not None and stream.closed:
                mode = "r" if index == 0 else "w"
                stream = open(index, mode, buffering=1 if index else -1, closefd=False)  # noqa: SIM115
                self.streams[index] = stream
            setattr(sys, name, stream)


@dataclass
class _Serving:
    """The child's state while it serves the worker; ``current`` is only ever set in a child."""

    sock: socket.socket
    token: str
    pid: int
    try_id: int = 0
    nonce: str = ""

    current: ClassVar[_Serving | None] = None


def _child_main(sock: socket.socket, registry: Registry) -> None:
    set_parent_death_signal()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the worker's event loop owns that fd, not this process
    _ignore_stop_signals()
    asyncio.events._set_running_loop(None)  # a task may call asyncio.run() itself
    sock.setblocking(True)
    if sock.fileno() < _LOWEST_FD:  # a task that closes or redirects fds 0-2 must not reach it
        high = socket.socket(fileno=_high(sock.fileno()))
        sock.close()
        sock = high
    streams = _StandardStreams()
    token = _recv_frame(sock)
    if token is None:
        return
    serve_tries_here()
    serving = _Serving.current = _Serving(sock, json.loads(token), os.getpid())
    call_hooks(registry.startup, "startup")
    while True:
        try:
            request = _recv_frame(sock)
        except OSError:
            return
        if request is None:  # the worker closed its end: a graceful stop
            call_hooks(registry.shutdown, "shutdown")
            return
        serving.try_id, serving.nonce, name, args, max_value_bytes, task = json.loads(request)
        function = registry.get(name)
        result = (
            run_call(function, args, task and TaskContext.from_message(task), registry.middleware)
            if function is not None
            else Raised(f"{name} is not registered in the child")
        )
        if os.getpid() != serving.pid:  # a process the task forked came back here: not its turn
            os._exit(0)
        streams.restore()
        _ignore_stop_signals()
        result = within_limit(result, max_value_bytes)
        reply = [serving.token, serving.try_id, serving.nonce, serving.pid, to_message(result)]
        try:
            _send_frame(sock, json.dumps(reply).encode())
        except OSError:
            return


# -- the worker's side ----------------------------------------------------------------------------


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
                _child_main(child_end, registry)
            finally:
                os._exit(0)
        child_end.close()
        self.pid = pid
        self.sock = parent_end
        self.token = secrets.token_hex(16)  # made after the fork: no child forked before has it
        self.tries = 0
        self.stopping: asyncio.Future[int] | None = None
        _send_frame(self.sock, json.dumps(self.token).encode())  # a few bytes: never blocks
        self.sock.setblocking(False)
        # Readable when the child ends: a process the task forked may hold the child's end of
        # the socket open, so the end of the stream alone does not tell.
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)

    def stray_output(self) -> bool:
        """Whether the socket has something to read between tries (a message no try asked for,
        or the end of a child that died)."""
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": the end of the stream
        except BlockingIOError:
            return False
        except OSError:
            pass
        return True

    async def _recv_exact(self, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            count = await loop.sock_recv_into(self.sock, view[got:])
            if count == 0:
                raise ChildCrashed("its socket closed")
            got += count
        return bytes(buffer)

    async def call(
        self,
        name: str,
        args: dict[str, Any],
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        task: TaskContext | None = None,
    ) -> TryResult:
        loop = asyncio.get_running_loop()
        self.tries += 1
        try_id, nonce = self.tries, secrets.token_hex(8)
        message = task.to_message() if task is not None else None
        request = json.dumps([try_id, nonce, name, args, max_value_bytes, message]).encode()
        reading = asyncio.ensure_future(self._exchange(request, max_value_bytes))
        ended: asyncio.Future[None] = loop.create_future()

        def end() -> None:
            if not ended.done():
                ended.set_result(None)

        if self.pidfd is not None:
            loop.add_reader(self.pidfd, end)
        waits: set[asyncio.Future[Any]] = {reading, ended}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self.pidfd is not None:
                loop.remove_reader(self.pidfd)
            ended.cancel()
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError, ChildCrashed, ForeignReply):
                    await reading
        if reading.cancelled():  # the child ended first
            raise ChildCrashed("it ended without a reply")
        data = reading.result()
        return check_reply(data, token=self.token, try_id=try_id, nonce=nonce, pid=self.pid)

    async def _exchange(self, request: bytes, max_value_bytes: int) -> bytes:
        """Send a request; the frame that comes back."""
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(self.sock, _HEADER.pack(len(request)) + request)
            (size,) = _HEADER.unpack(await self._recv_exact(_HEADER.size))
            if size > max(_MIN_REPLY_LIMIT, 16 * max_value_bytes):
                raise ForeignReply(f"a frame of {size} bytes, longer than any reply")
            return await self._recv_exact(size)
        except OSError as error:
            raise ChildCrashed(str(error)) from error

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
                call = running.call(name, args, max_value_bytes, task)
                return await asyncio.wait_for(call, timeout)
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
