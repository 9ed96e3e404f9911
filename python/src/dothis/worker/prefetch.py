"""How many tasks the worker claims ahead of its free slots (SPEC.md 5.2 allows a bounded
prefetch; each is started at once, so it is owned in executing and recovered if the worker dies).

A fixed number (``--prefetch N``), or by default ``auto``: only as many as the worker will start
within ``WINDOW`` seconds at the pace of its recent tries. Short tasks then share round trips in
batches (a claim pipeline, a start pipeline, a finish pipeline for many), while a worker whose
tries take longer than the window claims only for its free slots, as with no prefetch at all: a
slow task does not keep others waiting behind it for long (at most ``MAX_AUTO``, which took no
more than the window to run, at the pace they came at).
"""

from __future__ import annotations

WINDOW = 0.05  # seconds of recent pace that auto prefetch claims ahead
MAX_AUTO = 100  # the most auto prefetch claims ahead (32 drained 10-20 % slower: bench/)
WEIGHT = 0.2  # of the latest try in the running mean of try durations


class Prefetch:
    """The prefetch now: ``fixed`` tasks, or (None) auto, from the durations ``observe`` gets."""

    def __init__(self, fixed: int | None, concurrency: int) -> None:
        self.fixed = fixed
        self.concurrency = concurrency
        self.mean: float | None = None  # seconds per try, a running mean

    def observe(self, seconds: float) -> None:
        """A try ran for ``seconds``."""
        if self.fixed is not None:
            return
        self.mean = seconds if self.mean is None else self.mean + WEIGHT * (seconds - self.mean)

    def current(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:  # nothing measured yet: claim for the free slots only
            return 0
        ahead = WINDOW * self.concurrency / max(self.mean, 1e-6)
        return min(int(ahead), MAX_AUTO)

    def describe(self) -> str:
        return "auto" if self.fixed is None else str(self.fixed)
