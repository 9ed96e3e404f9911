"""Task functions that misbehave towards the process running them: they fork carelessly, close or
redirect the standard descriptors, block a thread past its timeout, return huge values
(tests/integration/test_isolation.py)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from typing import Any

from dothis import task

released = threading.Event()  # lets the tests end the threads that ``blocked`` keeps busy


def _write_on_the_pipe(body: bytes) -> None:
    """Write one frame on the pipe between this pool child and the worker, as a careless forked
    process could (it inherited the descriptor)."""
    from dothis.worker import pool

    serving = getattr(getattr(pool, "_Serving", None), "current", None)
    if serving is not None:
        os.write(serving.sock.fileno(), struct.pack("!Q", len(body)) + body)
        return
    import gc  # an older pool: the child's end is its one open Connection
    from multiprocessing.connection import Connection

    ends = [o for o in gc.get_objects() if isinstance(o, Connection) and not o.closed]
    ends[0].send_bytes(body)


@task
def fork_both_return(pause: float) -> str:
    """Fork, and return in both processes: the forked one at once, the original after ``pause``."""
    if os.fork() == 0:
        return "grandchild"
    time.sleep(pause)
    return "child"


@task
def fork_forge_reply() -> str:
    """The forked process writes a made-up result on the pipe and exits; then the task returns."""
    pid = os.fork()
    if pid == 0:
        try:
            _write_on_the_pipe(json.dumps(["Returned", '"forged"']).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return "real"


@task
def fork_reply_from_grandchild() -> str:
    """The forked process sends a reply that is right in all but its sender's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            from dothis.worker import pool

            serving = pool._Serving.current
            message = [serving.token, serving.try_id, serving.nonce, os.getpid(),
                       ["Returned", '"forged"']]  # fmt: skip
            _write_on_the_pipe(json.dumps(message).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return "real"


@task
def fork_sleeper(seconds: float) -> str:
    """Leave a forked process behind (it holds the pool's socket open) for ``seconds``."""
    if os.fork() == 0:
        time.sleep(seconds)
        os._exit(0)
    return "forked"


@task
def std_fds() -> list[Any]:
    """What fds 0, 1 and 2 are: [device, inode] each, or None when closed."""
    found: list[Any] = []
    for fd in (0, 1, 2):
        try:
            status = os.fstat(fd)
        except OSError:
            found.append(None)
        else:
            found.append([status.st_dev, status.st_ino])
    return found


@task
def close_std_fds() -> str:
    for fd in (0, 1, 2):
        os.close(fd)
    return "closed"


@task
def redirect_std_fds() -> str:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return "redirected"


@task
def write_std(text: str) -> str:
    """Write ``text`` on fds 1 and 2 (EBADF when a task before closed them)."""
    os.write(1, text.encode() + b"\n")
    os.write(2, text.encode() + b"\n")
    return text


@task
def blocked(seconds: float) -> str:
    """Block for ``seconds`` (or until the test sets ``released``)."""
    released.wait(seconds)
    return "unblocked"


@task
def same(value: Any) -> Any:
    return value


@task
def huge_text(size: int) -> str:
    """A string of ``size`` characters (its JSON is two bytes longer)."""
    return "x" * size
