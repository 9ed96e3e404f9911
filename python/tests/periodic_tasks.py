"""A module a worker process loads in the periodic test: a schedule firing every second."""

from __future__ import annotations

import os

import dothis.examples  # noqa: F401
from dothis import periodic


@periodic(1, name="tick", queue=os.environ.get("DOTHIS_TEST_QUEUE", "dothis"))
def tick() -> str:
    return "tock"
