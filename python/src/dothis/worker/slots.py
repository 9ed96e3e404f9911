"""The worker's concurrency limit: one semaphore of ``concurrency`` slots that every try takes
(a busy child of the process pool holds one for the tries it runs)."""

from __future__ import annotations

import asyncio


class Slots(asyncio.Semaphore):
    def try_acquire(self) -> bool:
        """Take a slot when one is free and no one waits for it (as ``acquire`` would without
        waiting); False otherwise."""
        if self.locked():
            return False
        self._value -= 1
        return True
