"""Functions the chaos workers run. Each execution is recorded the moment it happens.

``record`` appends one line, ``<token>\\n``, to the file named by ``DOTHIS_CHAOS_LOG`` with a single
``write`` on a descriptor opened with ``O_APPEND``: the line is in the kernel before the function
returns, so it survives a SIGKILL of the worker right after, and concurrent writers (threads and
processes) never interleave their lines.

dothis worker --queue chaos chaos.chaos_tasks
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time
from typing import Any

import dothis.examples  # noqa: F401  (registers echo, add, sleep, fail)
from dothis import task

LOG_ENV = "DOTHIS_CHAOS_LOG"
# The worker process: this module is imported by the worker before it starts any pool of
# children, so a child that runs a task still knows which process is its worker.
WORKER_PID = os.getpid()
# Diagnostics: SIGUSR1 makes the worker print every thread's Python stack to its log (stderr),
# which the harness asks for when a worker does not exit in time.
faulthandler.register(signal.SIGUSR1, all_threads=True)


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """SIGUSR2: print the stack of every asyncio task of the worker's loop to its log."""
    import asyncio

    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop in this thread
        return
    for job in tasks:
        print(f"asyncio task {job.get_name()}: {job!r}", file=sys.stderr)
        awaited: Any = job.get_coro()
        while awaited is not None:  # the chain of awaits, outermost first
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is None:
                print(f"  awaiting {awaited!r}", file=sys.stderr)
                break
            code = frame.f_code
            print(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None)
    sys.stderr.flush()


signal.signal(signal.SIGUSR2, _dump_asyncio_tasks)


def append_line(path: str, line: str) -> None:
    data = (line + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)


def _log(token: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        raise RuntimeError(f"{LOG_ENV} is not set: chaos workers record executions there")
    append_line(path, token)


@task
def record(token: str, seconds: float = 0.0) -> str:
    """Run for ``seconds``, then record one execution of ``token`` and return it."""
    if seconds:
        time.sleep(seconds)
    _log(token)
    return token


@task
def poison(token: str) -> None:
    """Record the execution, then SIGKILL the worker (and the process running this), every time."""
    _log(token)
    os.kill(WORKER_PID, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)  # not reached: SIGKILL cannot be caught


@task
def sink(token: str, **rest: object) -> str:
    """Accept any further arguments (the fuzz sends odd but valid JSON); record the token."""
    _log(token)
    return token


@task
def not_a_number() -> float:
    """Return NaN, which has no strict JSON form (unserializable-result)."""
    return float("nan")


@task
def fails(token: str) -> None:
    """Record the execution, then raise: the task ends failed with ``exception``."""
    _log(token)
    raise RuntimeError(f"{token} fails on purpose")


@task
def big(token: str, size: int) -> str:
    """Record the execution and return a string of ``size`` bytes (its JSON is 2 bytes more)."""
    _log(token)
    return "x" * size


@task
async def big_async(token: str, size: int) -> str:
    """``big`` as an ``async def``: it runs on the worker's event loop, not in the pool."""
    _log(token)
    return "x" * size


@task
async def block_loop(token: str, seconds: float) -> str:
    """An ``async def`` that blocks the worker's event loop for ``seconds`` (time.sleep, not
    asyncio.sleep): no other coroutine of the worker runs meanwhile."""
    time.sleep(seconds)
    _log(token)
    return token


FORKS_ENV = "DOTHIS_CHAOS_FORKS"


def _fork_and_return_both(token: str, child_first: bool) -> str:
    """os.fork(), and both processes return from the task; the child returns another value.

    ``child_first``: the child returns at once and the parent 0.3 s later; otherwise the parent
    returns at once and the child 0.5 s later, while its worker runs the next try. The parent
    appends the child's pid to ``$DOTHIS_CHAOS_FORKS`` so that the test can stop it by pid.
    """
    pid = os.fork()
    if pid == 0:  # the child: carelessly, it returns too
        if not child_first:
            time.sleep(0.5)
        return f"forked-child-of-{token}"
    forks = os.environ.get(FORKS_ENV)
    if forks:
        append_line(forks, str(pid))
    if child_first:
        time.sleep(0.3)
    _log(token)
    return token


@task
def careless_fork(token: str, child_first: bool = False) -> str:
    """A plain function that forks and lets the child return as well."""
    return _fork_and_return_both(token, child_first)


@task
async def careless_fork_async(token: str, child_first: bool = False) -> str:
    """``careless_fork`` on the worker's event loop: the child is a copy of the whole worker."""
    return _fork_and_return_both(token, child_first)
