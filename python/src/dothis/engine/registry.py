"""Functions a worker may run, looked up by registered name, and the schedules that fire them.

A name read from Redis is only ever looked up here: never imported or evaluated. The decorators
that fill a registry (``@task``, ``@periodic``, ``@cron``) are in ``dothis.producer.decorators``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dothis.errors import RegistryError
from dothis.wire.clock import iso_from_ms
from dothis.wire.protocol import DEFAULT_QUEUE, name_problem

if TYPE_CHECKING:
    from croniter import croniter

NAME_ATTRIBUTE = "__dothis_name__"


def _croniter() -> type[croniter]:
    """croniter, imported when a cron schedule is first made or computed (it takes ~0.1 s)."""
    from croniter import croniter as loaded

    return loaded


@dataclass(frozen=True)
class Schedule:
    """A periodic (``every`` seconds) or cron schedule of one function, on one queue."""

    name: str
    function: str
    every: float | None = None
    cron: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise RegistryError("a schedule has either every (seconds) or cron (an expression)")
        if self.every is not None and not self.every > 0:
            raise RegistryError(f"every must be a positive number of seconds, not {self.every!r}")
        if self.cron is not None and not _croniter().is_valid(self.cron):
            raise RegistryError(f"{self.cron!r} is not a valid cron expression")
        problem = name_problem(self.name, "schedule name", 200)
        if problem:
            raise RegistryError(problem)

    def latest(self, now: int) -> int:
        """The latest occurrence at or before ``now`` (ms since the epoch)."""
        if self.every is not None:
            period = int(self.every * 1000)
            return now // period * period
        assert self.cron is not None
        moment = datetime.fromtimestamp(now / 1000, UTC)
        previous: datetime = _croniter()(self.cron, moment).get_prev(datetime)
        return int(previous.timestamp() * 1000)

    def task_id(self, occurrence: int) -> str:
        return f"{self.name}@{iso_from_ms(occurrence)}"


FITS_REMEMBERED = 4096  # argument-name sets whose fit is remembered, across all functions


class Registry:
    """A mapping of function names to callables, and the schedules that fire them."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        self._async: dict[str, bool] = {}
        # Whether args with these names fit a function (bind's answer depends on the names only).
        self._fits: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self.schedules: list[Schedule] = []
        # Entered around every call, in the process that runs it (engine/context.py).
        self.middleware: list[Callable[..., Any]] = []
        # Called once in each process that runs tasks: before its first task, as it stops.
        self.startup: list[Callable[[], Any]] = []
        self.shutdown: list[Callable[[], Any]] = []

    def add(self, function: Callable[..., Any], name: str | None = None) -> str:
        """Register ``function`` under ``name`` (default: its ``__name__``) and return the name."""
        function = getattr(function, "__wrapped__", function)
        name = name or str(getattr(function, "__name__", ""))
        problem = name_problem(name, "function name", 256)
        if problem:
            raise RegistryError(f"cannot register {function!r}: {problem}")
        existing = self._functions.get(name)
        if existing is not None and existing is not function:
            raise RegistryError(
                f"a function named {name!r} is already registered ({existing!r}); "
                "pass name=... to register this one under another name"
            )
        self._functions[name] = function
        self._signatures[name] = inspect.signature(function)
        self._async[name] = inspect.iscoroutinefunction(function)
        self._fits.clear()
        return name

    def register(self, function: Any = None, *, name: str | None = None) -> Any:
        """Register without wrapping: ``@registry.register`` returns the function itself."""

        def decorate(func: Any) -> Any:
            setattr(func, NAME_ATTRIBUTE, self.add(func, name))
            return func

        return decorate(function) if function is not None else decorate

    def add_schedule(self, schedule: Schedule) -> None:
        if any(known.name == schedule.name for known in self.schedules):
            raise RegistryError(f"a schedule named {schedule.name!r} is already registered; "
                                "pass name=... to tell them apart")  # fmt: skip
        self.schedules.append(schedule)

    def add_middleware(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        """Register a context manager factory ``factory(task)`` entered around every call."""
        self.middleware.append(factory)
        return factory

    def on_startup(self, hook: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``hook()`` (or await it) in each process that runs tasks, before its first task."""
        self.startup.append(hook)
        return hook

    def on_shutdown(self, hook: Callable[[], Any]) -> Callable[[], Any]:
        """Run ``hook()`` (or await it) in each process that runs tasks, as it stops."""
        self.shutdown.append(hook)
        return hook

    def get(self, name: str) -> Callable[..., Any] | None:
        return self._functions.get(name)

    def signature(self, name: str) -> inspect.Signature:
        return self._signatures[name]

    def is_async(self, name: str) -> bool:
        return self._async[name]

    def misfit(self, name: str, args: dict[str, Any]) -> str | None:
        """Why named arguments ``args`` do not fit the function ``name`` (bind's TypeError), or
        None when they do; remembered by the names given, since nothing else decides it."""
        key = (name, tuple(args))
        if key in self._fits:
            return self._fits[key]
        try:
            self._signatures[name].bind(**args)
            problem = None
        except TypeError as error:
            problem = str(error)
        if len(self._fits) >= FITS_REMEMBERED:
            self._fits.clear()
        self._fits[key] = problem
        return problem

    def names(self) -> list[str]:
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __len__(self) -> int:
        return len(self._functions)


default_registry = Registry()


def function_name(function: str | Callable[..., Any]) -> str:
    """The wire name of a function given as a name or as a (registered) callable."""
    if isinstance(function, str):
        return function
    registered = getattr(function, NAME_ATTRIBUTE, None)
    if isinstance(registered, str):
        return registered
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"{function!r} has no name; pass the registered function name as a str")
    return name
