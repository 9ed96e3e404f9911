"""Functions a worker may run, looked up by registered name; a name read from Redis is never
imported or evaluated."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from dothis.errors import RegistryError
from dothis.protocol import name_problem

F = TypeVar("F", bound=Callable[..., Any])

NAME_ATTRIBUTE = "__dothis_name__"


class Registry:
    """A mapping of function names to callables."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        self._signatures: dict[str, inspect.Signature] = {}

    def add(self, function: Callable[..., Any], name: str | None = None) -> str:
        """Register ``function`` under ``name`` (default: its ``__name__``) and return the name."""
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

    @overload
    def register(self, function: F, *, name: str | None = None) -> F: ...

    @overload
    def register(self, function: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def register(
        self, function: F | None = None, *, name: str | None = None
    ) -> F | Callable[[F], F]:
        """Decorator: ``@registry.register`` or ``@registry.register(name="other")``."""

        def decorate(func: F) -> F:
            registered = self.add(func, name)
            setattr(func, NAME_ATTRIBUTE, registered)
            return func

        return decorate(function) if function is not None else decorate

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
def task(function: F, *, name: str | None = None, registry: Registry | None = None) -> F: ...


@overload
def task(
    function: None = None, *, name: str | None = None, registry: Registry | None = None
) -> Callable[[F], F]: ...


def task(
    function: F | None = None, *, name: str | None = None, registry: Registry | None = None
) -> F | Callable[[F], F]:
    """Register a function with the default registry (or ``registry``): ``@task`` or
    ``@task(name="send-mail")``."""
    return (registry or default_registry).register(function, name=name)


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
