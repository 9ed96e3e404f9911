"""Several worker processes under one supervisor: ``dothis worker --processes N``.

The supervisor forks its N children before any Redis connection or event loop exists (the user's
modules are imported first, so every child has their functions); each child runs one full worker
in a process group of its own and dies with the supervisor (PR_SET_PDEATHSIG). The supervisor
itself only waits, with SIGCHLD, SIGTERM and SIGINT blocked and taken by ``sigtimedwait``:

- a child that dies unexpectedly is started again, at most once a second per slot; one that exits
  with status 0 (``--burst`` done) is not;
- children that exit with a non-zero status within ``STARTUP_SECONDS`` of their start N times in a
  row (a bad URL, Redis down) stop the whole supervisor, with status 1, instead of looping;
- the first SIGTERM or SIGINT is forwarded as one SIGTERM to every child (running tasks finish
  within the grace period), a second as another (they give their tasks back); children still
  running ``KILL_AFTER_GRACE`` seconds after the grace period are SIGKILLed. The exit status is 0
  when every child stopped with 0.

Children are in process groups of their own so that a Ctrl-C (SIGINT to the terminal's group) or
a ``kill`` of the supervisor's group reaches them once, through the supervisor, and never as two
signals (which a worker reads as "give the tasks back now").
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from dothis.worker.pool import set_parent_death_signal
from dothis.worker.worker import Worker

log = logging.getLogger("dothis.supervisor")

WATCHED = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
RESTART_INTERVAL = 1.0  # seconds between two starts of one slot, at least
STARTUP_SECONDS = 10.0  # a child that fails sooner after its start failed to start
KILL_AFTER_GRACE = 15.0  # seconds after the grace period before children are SIGKILLed
TICK = 1.0  # the longest wait for a signal
REPEAT_WINDOW_SECONDS = 2.0  # a child's second stop signal this soon is the same stop

# sigtimedwait, fork and PR_SET_PDEATHSIG: Linux.
SUPPORTED = hasattr(signal, "sigtimedwait") and hasattr(os, "fork") and sys.platform == "linux"


def default_processes() -> int:
    """The CPUs this process may run on (1 where the supervisor is not supported)."""
    if not SUPPORTED:
        return 1
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def slot_worker_id(base: str | None, slot: int) -> str | None:
    """The worker id of slot ``slot`` (0-based) given ``--worker-id base``: ``base``, then
    ``base-2``, ``base-3``...; None (a new UUID per process) without one."""
    if base is None or slot == 0:
        return base
    return f"{base}-{slot + 1}"


def describe_status(code: int) -> str:
    """An exit code as ``os.waitstatus_to_exitcode`` gives it, in words."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class _Slot:
    number: int
    pid: int | None = None
    started: float = 0.0  # time.monotonic() of its last start
    restart_at: float = 0.0
    done: bool = False  # exited with 0 on its own: not started again


class Supervisor:
    """Runs ``serve(slot)`` in ``processes`` forked children; ``run()`` returns the exit status.

    ``serve`` runs one worker to its end in the child and returns that child's exit status."""

    def __init__(self, serve: Callable[[int], int], processes: int, grace_seconds: float) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.serve = serve
        self.grace_seconds = grace_seconds
        self.slots = [_Slot(number) for number in range(processes)]
        self.stopping = False
        self.failed = False  # gave up, or a child did not stop with status 0
        self.failures = 0  # children in a row that failed within STARTUP_SECONDS
        self.deadline: float | None = None  # when children still running get SIGKILLed
        self.pid = os.getpid()
        self._mask: set[int | signal.Signals] = set()

    def run(self) -> int:
        self.pid = os.getpid()
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        try:
            log.info("supervisor %d: starting %d worker processes", self.pid, len(self.slots))
            for slot in self.slots:
                self._start(slot)
            while self._busy():
                self._wait()
                self._reap()
                self._restart_due()
                self._kill_overdue()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        log.info("supervisor %d: every worker process has exited", self.pid)
        return 1 if self.failed else 0

    def _busy(self) -> bool:
        """A child is running, or one is due to start again."""
        return any(slot.pid is not None or not (slot.done or self.stopping) for slot in self.slots)

    # -- children -------------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(slot.number)
        slot.pid = pid
        log.debug("worker process %d started in slot %d", pid, slot.number + 1)

    def _child(self, number: int) -> NoReturn:
        """The forked child: one worker, then ``os._exit`` (never back into the caller's stack)."""
        code = 1
        try:
            set_parent_death_signal()
            if os.getppid() == self.pid:  # else the supervisor died before the line above
                os.setpgid(0, 0)
                signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
                # systemd (KillMode=control-group) signals every process, and this supervisor
                # forwards its own: the two copies are one stop, not a request to force.
                Worker.repeat_window = REPEAT_WINDOW_SECONDS
                code = self.serve(number)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            log.exception("worker process %d failed", os.getpid())
        finally:
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)

    def _reap(self) -> None:
        """Every child that has exited; any child, so that as a container's PID 1 the supervisor
        also reaps the orphans the kernel hands it."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((slot for slot in self.slots if slot.pid == pid), None)
            if slot is not None:
                slot.pid = None
                self._ended(slot, pid, os.waitstatus_to_exitcode(status))

    def _ended(self, slot: _Slot, pid: int, code: int) -> None:
        now = time.monotonic()
        lived = now - slot.started
        what = f"worker process {pid} (slot {slot.number + 1}) {describe_status(code)}"
        if self.stopping:
            # Killed by the SIGTERM it was sent: before its worker took signals, so with no task.
            if code not in (0, -signal.SIGTERM):
                self.failed = True
                log.warning("%s", what)
            return
        if code == 0:
            slot.done = True
            log.info("%s after %.1f s: not started again", what, lived)
            return
        # Only an exit with a status counts (a bad URL, Redis down): a signal is no start failure.
        self.failures = self.failures + 1 if code > 0 and lived < STARTUP_SECONDS else 0
        if self.failures >= len(self.slots):
            log.error("%s after %.1f s; %d worker processes in a row failed within %.0f s of "
                      "starting: stopping (exit status 1)", what, lived, self.failures,
                      STARTUP_SECONDS)  # fmt: skip
            self.failed = True
            self._stop()
            return
        slot.restart_at = max(now, slot.started + RESTART_INTERVAL)
        log.warning("%s after %.1f s; starting another in %.1f s", what, lived,
                    slot.restart_at - now)  # fmt: skip

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and not (slot.done or self.stopping) and slot.restart_at <= now:
                self._start(slot)

    # -- signals and stopping -------------------------------------------------------------------

    def _wait(self) -> None:
        """Until a signal comes, a restart is due, or the kill deadline passes (at most TICK)."""
        now = time.monotonic()
        due = [slot.restart_at for slot in self.slots
               if slot.pid is None and not (slot.done or self.stopping)]  # fmt: skip
        if self.deadline is not None:
            due.append(self.deadline)
        timeout = min([TICK, *(when - now for when in due)])
        caught = signal.sigtimedwait(WATCHED, max(timeout, 0.0))
        if caught is not None and caught.si_signo != signal.SIGCHLD:
            self._on_signal(caught.si_signo)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stopping:
            log.info("%s: stopping %d worker process(es); running tasks finish within %.0f s "
                     "(again to force)", name, self._running(), self.grace_seconds)  # fmt: skip
            self._stop()
        else:
            log.warning("second %s: the worker processes give back their running tasks and "
                        "exit", name)  # fmt: skip
            self._forward(signal.SIGTERM)

    def _stop(self) -> None:
        self.stopping = True
        self.deadline = time.monotonic() + self.grace_seconds + KILL_AFTER_GRACE
        self._forward(signal.SIGTERM)

    def _running(self) -> int:
        return sum(slot.pid is not None for slot in self.slots)

    def _forward(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:  # not reaped yet, so the pid is still this child's
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signum)

    def _kill_overdue(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline or not self._running():
            return
        log.error("%d worker process(es) still running %.0f s after the grace period: killing "
                  "them", self._running(), KILL_AFTER_GRACE)  # fmt: skip
        self.failed = True
        self.deadline = None
        self._forward(signal.SIGKILL)
