"""The standard functions every dothis worker offers the conformance suite (conformance/README.md).

dothis worker --queue dothis dothis.examples
"""

from __future__ import annotations

import time
from typing import Any

from dothis.engine.context import progress
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


@task
def report_progress(fractions: list[float], seconds: float) -> int:
    """Report each fraction in turn as progress ("step <n>"), sleeping ``seconds`` after each;
    return how many were reported."""
    for number, fraction in enumerate(fractions, 1):
        progress(fraction, f"step {number}")
        time.sleep(seconds)
    return len(fractions)
