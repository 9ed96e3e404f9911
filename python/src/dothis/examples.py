"""The four standard functions every dothis worker offers the conformance suite.

dothis worker --queue dothis dothis.examples
"""

from __future__ import annotations

import time
from typing import Any

from dothis.producer.decorators import task


@task
def echo(text: Any) -> Any:
    """Return ``text`` unchanged."""
    return text


@task
def add(a: float, b: float) -> float:
    """Return ``a + b``."""
    return a + b


@task
def sleep(seconds: float) -> float:
    """Sleep ``seconds`` and return them."""
    time.sleep(seconds)
    return seconds


@task
def fail(message: str) -> None:
    """Raise RuntimeError(message)."""
    raise RuntimeError(message)
