"""The child's side of the process pool: forked from the worker, it runs one try at a time
for it, reading requests from its socket and answering each (see the package's docstring for
what a try may and may not do to the tries after it)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any, ClassVar

from dothis.engine.context import TaskContext
from dothis.engine.hooks import call_hooks
from dothis.engine.registry import Registry
from dothis.engine.tries import Raised, run_call, serve_tries_here, to_message, within_limit

HEADER = struct.Struct("!Q")  # every message is framed by its 8-byte length
_LOWEST_FD = 3  # the child's socket and its copies of fds 0-2 live at or above this


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
    header = _recv_exact(sock, HEADER.size)
    if header is None:
        return None
    return _recv_exact(sock, HEADER.unpack(header)[0])


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
            send_frame(sock, json.dumps(reply).encode())
        except OSError:
            return
