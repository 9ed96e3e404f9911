"""From a claimed task hash to a call ready to run, or the Failure that ends the task without
running (SPEC.md 8.1's order of checks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dothis.engine.context import Middleware, TaskContext
from dothis.engine.registry import Registry
from dothis.wire import checks, codec
from dothis.wire.protocol import ErrorCode, Field
from dothis.wire.records import Failure


@dataclass(frozen=True)
class Invocation:
    """A checked call: the function, its named arguments and the task's try settings."""

    name: str
    function: Callable[..., Any]
    args: dict[str, Any]
    is_async: bool
    settings: checks.Settings
    # The task it runs for (dothis.current_task()) and the middleware entered around the call.
    task: TaskContext | None = None
    middleware: tuple[Middleware, ...] = ()

    def next_try(self) -> Invocation:
        retries = self.settings.retries + 1
        task = None if self.task is None else replace(self.task, try_number=retries + 1)
        return replace(self, settings=replace(self.settings, retries=retries), task=task)


def _unchecked(*_: Any, **__: Any) -> Any:
    raise RuntimeError("no function: the consumer runs this task itself")


def prepare(fields: checks.Fields, registry: Registry | None) -> Invocation | Failure:
    """Check a claimed hash. With ``registry`` None (a consumer that runs tasks itself) only the
    hash's own fields are checked, not the function."""
    try:
        function = checks.text(fields, Field.FUNCTION)
        raw_args = checks.text(fields, Field.ARGS)
        unsupported = checks.protocol_problem(fields)
        settings = checks.settings(fields)
    except UnicodeDecodeError as error:
        return Failure(ErrorCode.INVALID_ENCODING, f"a field is not valid UTF-8: {error}")
    if unsupported is not None:
        return unsupported
    if isinstance(settings, Failure):
        return settings
    if not function:
        return Failure(ErrorCode.MISSING_FUNCTION, "the task hash has no function field")
    target = registry.get(function) if registry is not None else _unchecked
    if target is None:
        assert registry is not None
        return Failure(
            ErrorCode.UNKNOWN_FUNCTION,
            f"no function named {function[:256]!r} is registered with this worker "
            f"(registered: {', '.join(registry.names()) or 'none'})",
        )
    args: Any = {}
    if raw_args is not None:
        try:
            args = codec.decode(raw_args)
        except ValueError as error:
            return Failure(ErrorCode.MALFORMED_ARGS, f"args is not valid JSON: {error}")
    if not isinstance(args, dict):
        return Failure(
            ErrorCode.ARGS_NOT_OBJECT,
            f"args must be a JSON object of named arguments, not {type(args).__name__}",
        )
    if registry is None:
        return Invocation(function, target, args, False, settings)
    misfit = registry.misfit(function, args)
    if misfit is not None:
        return Failure(ErrorCode.BAD_ARGUMENTS, f"args do not fit {function}(): {misfit}")
    return Invocation(function, target, args, registry.is_async(function), settings,
                      middleware=tuple(registry.middleware))  # fmt: skip
