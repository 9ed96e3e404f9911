"""How a process writes the progress its tasks report (SPEC.md 5.16): progress.lua on a
connection of the process's own, opened at the first report (so a pool child, forked without
one, gets its own), guarded by the try's fencing token.

A report is best effort: when Redis cannot take it, the task goes on (``progress`` returns False)
and the log says so once.
"""

from __future__ import annotations

import logging
import os
import threading

from dothis.engine.context import TaskContext
from dothis.store.connection import REDIS_OR_REPLY_ERRORS, connect
from dothis.store.execute import SyncStore
from dothis.store.faults import report
from dothis.store.ops import Ops
from dothis.wire import codec
from dothis.wire.clock import now_iso
from dothis.wire.protocol import Keys

log = logging.getLogger("dothis.worker")


class ProgressWriter:
    def __init__(self, url: str) -> None:
        self.url = url
        self._store: SyncStore | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _connection(self) -> SyncStore:
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                self._store, self._pid = SyncStore(connect(self.url)), os.getpid()
            return self._store

    def __call__(self, task: TaskContext, fraction: float, message: str | None) -> bool:
        body: dict[str, object] = {"fraction": fraction, "updated": now_iso()}
        if message is not None:
            body["message"] = message
        request = Ops(Keys(task.queue)).progress(task.id, task.claims, task.worker_id,
                                                 codec.encode(body))  # fmt: skip
        try:
            return bool(self._connection().run(request))
        except REDIS_OR_REPLY_ERRORS as error:
            report(log, error, "cannot write the progress of %s", task.id)
            return False
