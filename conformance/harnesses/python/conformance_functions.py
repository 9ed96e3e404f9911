"""The functions the Python harness's workers register (conformance/README.md, "Harness protocol").

The five standard functions of dothis.examples, plus the ones some cases need:

- crash(code): ends the process running it at once (os._exit), as a crash in native code would;
- a schedule named conformance-tick, every second, of tick(text) with args {"text": "tick"}, firing
  into the queue conf-periodic only (a case that serves that queue sees its occurrences; no other
  case's worker serves it, so no other case sees them); on a Redis Cluster the orchestrator names
  the queue {conf-periodic} in DOTHIS_CONFORMANCE_PERIODIC_QUEUE.
"""

from __future__ import annotations

import os
from typing import Any

from dothis.examples import add, echo, fail, report_progress, sleep
from dothis.producer.decorators import periodic, task

__all__ = ["add", "crash", "echo", "fail", "report_progress", "sleep", "tick"]

# conf-periodic; the orchestrator names {conf-periodic} instead when it runs on a Redis Cluster
PERIODIC_QUEUE = os.environ.get("DOTHIS_CONFORMANCE_PERIODIC_QUEUE") or "conf-periodic"


@task
def crash(code: int) -> None:
    """End the process running this try at once, with exit status ``code``."""
    os._exit(code)


@periodic(1, name="conformance-tick", queue=PERIODIC_QUEUE, args={"text": "tick"})
@task
def tick(text: Any) -> Any:
    """The function of the conformance-tick schedule: returns ``text``."""
    return text
