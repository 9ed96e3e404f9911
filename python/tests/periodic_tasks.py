"""A module a worker process loads in the periodic test: a schedule firing every second."""

from __future__ import annotations

import dothis.examples  # noqa: F401
from dothis import periodic


@periodic(1, name="tick")
def tick() -> str:
    return "tock"
