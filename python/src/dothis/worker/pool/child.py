"""The child's side of the process pool: forked from the worker, it runs one try at a time
for it, reading requests from its socket and answering each (see the package's docstring for
what a try may and may not do to the tries after it)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys
from _signal import getsignal as raw_getsignal  # type: ignore[import-not-found]
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, ClassVar

from dothis.engine.context import TaskContext
from dothis.engine.hooks import call_hooks
from dothis.engine.registry import Registry
from dothis.engine.tries import (
    Raised,
    Stopped,
    run_call,
    serve_tries_here,
    to_message,
    within_limit,
)

HEADER = struct.Struct("!Q")  # every message is framed by its 8-byte length
_LOWEST_FD = 3  # the child's socket and its copies of fds 0-2 live at or above this


def set_parent_death_signal() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _nothing(signum: int, frame: FrameType | None) -> None:
    """SIGTERM and SIGINT in a child: the worker decides what happens to its tries."""


def _ignore_stop_signals(unless_kept: bool = False) -> None:
    """``unless_kept``: only where a task put another handler (after a try: no system call
    when, as nearly always, the task left them alone)."""
    # A handler rather than SIG_IGN: a program the task starts (exec) gets the default back.
    for signum in (signal.SIGTERM, signal.SIGINT):
        if unless_kept and raw_getsignal(signum) is _nothing:  # no enum lookup
            continue
        signal.signal(signum, _nothing)
        signal.siginterrupt(signum, False)  # system calls restart, in native code too


class _Inbox:
    """The frames the worker sends, read whole from the child's (blocking) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.closed = False  # the worker closed its end

    def next(self) -> bytes | None:
        """The next frame, waiting for it; None once the stream has ended."""
        while True:
            frame = self._frame()
            if frame is not None or self.closed:
                return frame
            self._fill(0)

    def ready(self) -> list[bytes]:
        """The frames that have come already, without waiting."""
        with contextlib.suppress(BlockingIOError):
            self._fill(socket.MSG_DONTWAIT)
        frames = []
        while (frame := self._frame()) is not None:
            frames.append(frame)
        return frames

    def _fill(self, flags: int) -> None:
        data = self.sock.recv(1 << 16, flags)
        if not data:
            self.closed = True
        self.buffer += data

    def _frame(self) -> bytes | None:
        if len(self.buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self.buffer)
        if len(self.buffer) < HEADER.size + size:
            return None
        frame = bytes(self.buffer[HEADER.size : HEADER.size + size])
        del self.buffer[: HEADER.size + size]
        return frame


def send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(HEADER.pack(len(body)) + body)  # one write: one wake-up of the reader


def high_fd(fd: int) -> int:
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
        self.saved = [high_fd(fd) for fd in (0, 1, 2)]
        self.streams: list[IO[Any] | None] = [getattr(sys, name) for name in self.NAMES]

    def restore(self) -> None:
        # try/except rather than contextlib.suppress: this runs after every try
        for stream in (sys.stdout, sys.stderr):  # what the task wrote goes where it meant
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # a broken stream of the task is replaced below
                pass
        for fd, saved in zip((0, 1, 2), self.saved, strict=True):
            try:  # noqa: SIM105
                os.dup2(saved, fd)
            except OSError:
                pass
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


def child_main(sock: socket.socket, registry: Registry) -> None:
    set_parent_death_signal()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the worker's event loop owns that fd, not this process
    _ignore_stop_signals()
    asyncio.events._set_running_loop(None)  # a task may call asyncio.run() itself
    sock.setblocking(True)
    if sock.fileno() < _LOWEST_FD:  # a task that closes or redirects fds 0-2 must not reach it
        high = socket.socket(fileno=high_fd(sock.fileno()))
        sock.close()
        sock = high
    streams = _StandardStreams()
    inbox = _Inbox(sock)  # the token frame first, then the tries
    token = inbox.next()
    if token is None:
        return
    serve_tries_here()
    serving = _Serving.current = _Serving(sock, json.loads(token), os.getpid())
    call_hooks(registry.startup, "startup")
    tries: collections.deque[list[Any]] = collections.deque()  # sent, not yet run
    withdrawn: set[int] = set()  # ids of tries the worker took back before they ran
    while True:
        try:
            # Between tries, take what the worker sent meanwhile: more tries, withdrawals.
            frames = inbox.ready() if tries else [frame for frame in [inbox.next()] if frame]
        except OSError:
            return
        for frame in frames:
            kind, items = json.loads(frame)
            if kind == "withdraw":
                withdrawn.update(items)
            else:
                tries.extend(items)
        if not tries:
            if inbox.closed:  # the worker closed its end: a graceful stop
                call_hooks(registry.shutdown, "shutdown")
                return
            continue
        if not _run_one(tries.popleft(), withdrawn, serving, streams, registry):
            return


def _run_one(request: list[Any], withdrawn: set[int], serving: _Serving,
             streams: _StandardStreams, registry: Registry) -> bool:  # fmt: skip
    """Run one try and send its reply (a withdrawn one is not run); False when the worker can
    no longer be answered."""
    serving.try_id, serving.nonce, name, args, max_value_bytes, task = request
    function = registry.get(name)
    if serving.try_id in withdrawn:
        withdrawn.discard(serving.try_id)
        result: Any = Stopped()
    elif function is None:
        result = Raised(f"{name} is not registered in the child")
    else:
        result = run_call(function, args, task and TaskContext.from_message(task),
                          registry.middleware)  # fmt: skip
        if os.getpid() != serving.pid:  # a process the task forked came back here: not its turn
            os._exit(0)
        streams.restore()
        _ignore_stop_signals(unless_kept=True)
    result = within_limit(result, max_value_bytes)
    reply = [serving.token, serving.try_id, serving.nonce, serving.pid, to_message(result)]
    try:
        send_frame(sock=serving.sock, body=json.dumps(reply).encode())
    except OSError:
        return False
    return True
