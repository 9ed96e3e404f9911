"""``@task``, ``@periodic`` and ``@cron``: register a function with a registry (the default one
unless told otherwise) and give it ``delay`` / ``enqueue`` to queue calls of it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

from dothis.engine.registry import NAME_ATTRIBUTE, Registry, Schedule, default_registry
from dothis.producer.options import OPTION_NAMES
from dothis.producer.queue import shared_queue
from dothis.producer.task import Task
from dothis.wire.protocol import DEFAULT_QUEUE

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=Callable[..., Any])
H = TypeVar("H", bound=Callable[[], Any])


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
        self.queue: str | None = defaults.get("queue")
        self.url: str | None = defaults.get("url")
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
        options = {**self.defaults, **{k: kwargs.pop(k) for k in OPTION_NAMES if k in kwargs}}
        queue_name = kwargs.pop("queue", None) or self.queue
        bound = inspect.signature(self.function).bind(*args, **kwargs)
        return shared_queue(queue_name, self.url).enqueue_call(
            self.name, dict(bound.arguments), **options
        )


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
    table = registry if registry is not None else default_registry

    def decorate(func: Callable[P, R]) -> TaskFunction[P, R]:
        return TaskFunction(func, table.add(func, name), defaults)

    return decorate(function) if function is not None else decorate


def _schedule(registry: Registry | None, name: str | None, queue: str | None,
              args: Mapping[str, Any] | None, **when: Any) -> Callable[[Any], Any]:  # fmt: skip
    table = registry if registry is not None else default_registry

    def decorate(function: Any) -> Any:
        registered = table.add(function, name)
        wrapped = function if isinstance(function, TaskFunction) else TaskFunction(
            function, registered, {})  # fmt: skip
        home = queue or wrapped.queue or DEFAULT_QUEUE
        table.add_schedule(Schedule(registered, registered, args=dict(args or {}), queue=home,
                                    **when))  # fmt: skip
        return wrapped

    return decorate


def periodic(
    seconds: float, *, name: str | None = None, queue: str | None = None,
    args: Mapping[str, Any] | None = None, registry: Registry | None = None,
) -> Callable[[Any], Any]:  # fmt: skip
    """``@periodic(25)``: run every 25 s, once per occurrence however many workers run. The
    schedule fires into ``queue`` (default: the function's ``@task(queue=)``, else ``dothis``);
    only workers serving that queue fire it."""
    return _schedule(registry, name, queue, args, every=seconds)


def cron(
    expression: str, *, name: str | None = None, queue: str | None = None,
    args: Mapping[str, Any] | None = None, registry: Registry | None = None,
) -> Callable[[Any], Any]:  # fmt: skip
    """``@cron("0 5 * * tue")``: run at 05:00 UTC each Tuesday, once per occurrence, in
    ``queue`` as for ``periodic``."""
    return _schedule(registry, name, queue, args, cron=expression)


def middleware(factory: M) -> M:
    """``@middleware`` on a context manager factory ``factory(task)``: entered around every call
    of every function of the default registry, in the process that runs it (a database session,
    a span, a timer). ``task`` is the ``TaskContext``. For another registry: its
    ``add_middleware``.
    """
    default_registry.add_middleware(factory)
    return factory


def on_startup(hook: H) -> H:
    """``@on_startup``: ``hook()`` (or ``await hook()``) once in each process that runs tasks (the
    worker, and each of its pool's children), before its first task."""
    default_registry.on_startup(hook)
    return hook


def on_shutdown(hook: H) -> H:
    """``@on_shutdown``: ``hook()`` (or ``await hook()``) in each process that runs tasks, as it
    stops."""
    default_registry.on_shutdown(hook)
    return hook
