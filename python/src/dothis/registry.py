"""Functions a worker may run, looked up by registered name; a name read from Redis is never
imported or evaluated. Also the ``@task`` decorator and the periodic and cron schedules."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from dothis.errors import RegistryError
from dothis.protocol import name_problem

if TYPE_CHECKING:
    from dothis.schedules import Schedule
    from dothis.task import Task

P = ParamSpec("P")
R = TypeVar("R")

NAME_ATTRIBUTE = "__dothis_name__"


class TaskFunction(Generic[P, R]):
    """A registered function: call it as before, or queue it with ``delay`` / ``enqueue``.

    >>> @task(queue="math", attempts=3)
    ... def add(a: int, b: int) -> int:
    ...     return a + b
    >>> add.delay(3, 4).wait(10)         # positional arguments are bound to parameter names
    7
    """

    def __init__(self, function: Callable[P, R], name: str, defaults: Mapping[str, Any]):
        self.function = function
        self.name = name
        self.queue = defaults.get("queue")
        self.url = defaults.get("url")
        self.defaults = {k: v for k, v in defaults.items() if k not in ("queue", "url")}
        self.__doc__ = function.__doc__
        self.__wrapped__ = function
        setattr(self, NAME_ATTRIBUTE, name)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Task:
        """Queue a call with the function's defaults; returns the Task."""
        return self.enqueue(*args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Task:
        """Queue a call; options (``task_id``, ``delay``, ``attempts``, ...) override defaults."""
        from dothis.options import OPTION_NAMES
        from dothis.producer import shared_queue

        options = {**self.defaults, **{k: kwargs.pop(k) for k in OPTION_NAMES if k in kwargs}}
        queue_name = kwargs.pop("queue", None) or self.queue
        bound = inspect.signature(self.function).bind(*args, **kwargs)
        return shared_queue(queue_name, self.url).enqueue_call(
            self.name, dict(bound.arguments), **options
        )


class Registry:
    """A mapping of function names to callables, and the schedules that fire them."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        self.schedules: list[Schedule] = []

    def add(self, function: Callable[..., Any], name: str | None = None) -> str:
        """Register ``function`` under ``name`` (default: its ``__name__``) and return the name."""
        if isinstance(function, TaskFunction):
            function = function.function
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
        return name

    def task(
        self, function: Callable[P, R] | None = None, *, name: str | None = None, **defaults: Any
    ) -> Any:
        """``@registry.task`` or ``@registry.task(name=..., queue=..., attempts=..., ...)``."""

        def decorate(func: Callable[P, R]) -> TaskFunction[P, R]:
            return TaskFunction(func, self.add(func, name), defaults)

        return decorate(function) if function is not None else decorate

    def register(self, function: Any = None, *, name: str | None = None) -> Any:
        """Register without wrapping: ``@registry.register`` returns the function itself."""

        def decorate(func: Any) -> Any:
            setattr(func, NAME_ATTRIBUTE, self.add(func, name))
            return func

        return decorate(function) if function is not None else decorate

    def periodic(
        self, seconds: float, *, name: str | None = None, args: Mapping[str, Any] | None = None
    ) -> Callable[[Any], Any]:
        """Register a function and run it every ``seconds`` (aligned to the clock)."""
        return self._schedule(every=seconds, name=name, args=args)

    def cron(
        self, expression: str, *, name: str | None = None, args: Mapping[str, Any] | None = None
    ) -> Callable[[Any], Any]:
        """Register a function and run it at the times of a cron expression (UTC)."""
        return self._schedule(cron=expression, name=name, args=args)

    def _schedule(self, **schedule: Any) -> Callable[[Any], Any]:
        from dothis.schedules import Schedule

        def decorate(function: Any) -> Any:
            registered = self.add(function, schedule.pop("name"))
            args = dict(schedule.pop("args") or {})
            self.schedules.append(Schedule(registered, registered, args=args, **schedule))
            return function if isinstance(function, TaskFunction) else TaskFunction(
                function, registered, {})  # fmt: skip

        return decorate

    def get(self, name: str) -> Callable[..., Any] | None:
        return self._functions.get(name)

    def signature(self, name: str) -> inspect.Signature:
        return self._signatures[name]

    def names(self) -> list[str]:
        return sorted(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __len__(self) -> int:
        return len(self._functions)


default_registry = Registry()


@overload
def task(function: Callable[P, R], *, name: str | None = None) -> TaskFunction[P, R]: ...


@overload
def task(
    function: None = None, *, name: str | None = None, registry: Registry | None = None,
    **defaults: Any,
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...  # fmt: skip


def task(
    function: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    registry: Registry | None = None,
    **defaults: Any,
) -> Any:
    """Register a function with the default registry (or ``registry``): ``@task`` or
    ``@task(name="send-mail", queue="mail", attempts=3, timeout=30, result_ttl=3600)``."""
    return (registry or default_registry).task(function, name=name, **defaults)


def periodic(
    seconds: float, *, name: str | None = None, args: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> Callable[[Any], Any]:  # fmt: skip
    """``@periodic(25)``: run every 25 s, once per occurrence however many workers run."""
    return (registry or default_registry).periodic(seconds, name=name, args=args)


def cron(
    expression: str, *, name: str | None = None, args: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> Callable[[Any], Any]:  # fmt: skip
    """``@cron("0 5 * * tue")``: run at 05:00 UTC each Tuesday, once per occurrence."""
    return (registry or default_registry).cron(expression, name=name, args=args)


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
