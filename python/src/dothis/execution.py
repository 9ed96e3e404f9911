"""From a claimed task hash to the fields of its outcome.

``prepare`` checks everything a redis-cli user could have typed wrong and returns either a call
ready to run or the Failure that ends the task; ``outcome_fields`` turns a return value or a
Failure into the fields finish.lua writes.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dothis import codec
from dothis.protocol import PROTOCOL_VERSION, ErrorCode, Field, Outcome, State, now_iso
from dothis.registry import Registry


@dataclass(frozen=True)
class Failure:
    code: ErrorCode
    reason: str
    exception: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> Failure:
        reason = str(error) or type(error).__name__
        trace = "".join(traceback.format_exception(error))
        return cls(ErrorCode.EXCEPTION, reason, trace)


@dataclass(frozen=True)
class Call:
    name: str
    function: Callable[..., Any]
    args: dict[str, Any]
    is_async: bool


def _field(fields: dict[bytes, bytes], name: Field) -> str | None:
    raw = fields.get(name.value.encode())
    return None if raw is None else raw.decode("utf-8")


def prepare(fields: dict[bytes, bytes], registry: Registry) -> Call | Failure:
    """Check a claimed hash; the Call to run, or why the task fails without running."""
    try:
        function = _field(fields, Field.FUNCTION)
        raw_args = _field(fields, Field.ARGS)
        protocol = _field(fields, Field.PROTOCOL)
    except UnicodeDecodeError as error:
        return Failure(ErrorCode.INVALID_ENCODING, f"a field is not valid UTF-8: {error}")
    if protocol is not None and protocol != str(PROTOCOL_VERSION):
        return Failure(
            ErrorCode.UNSUPPORTED_PROTOCOL,
            f"the task asks for protocol {protocol[:32]!r}; this worker implements "
            f"{PROTOCOL_VERSION}",
        )
    if not function:
        return Failure(ErrorCode.MISSING_FUNCTION, "the task hash has no function field")
    target = registry.get(function)
    if target is None:
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
    try:
        registry.signature(function).bind(**args)
    except TypeError as error:
        return Failure(ErrorCode.BAD_ARGUMENTS, f"args do not fit {function}(): {error}")
    return Call(function, target, args, inspect.iscoroutinefunction(target))


def failure_fields(failure: Failure) -> list[str]:
    return [
        Field.STATE, State.FINISHED,
        Field.RESULT, Outcome.FAILED,
        Field.ERROR_CODE, failure.code,
        Field.ERROR_REASON, failure.reason,
        Field.ERROR_EXCEPTION, failure.exception,
        Field.FINISHED_CREATED, now_iso(),
    ]  # fmt: skip


def success_fields(value: Any) -> list[str]:
    """The fields of a success, or of an unserializable-result failure."""
    try:
        encoded = codec.encode(value)
    except (TypeError, ValueError) as error:
        return failure_fields(
            Failure(
                ErrorCode.UNSERIALIZABLE_RESULT,
                f"the function returned a {type(value).__name__} with no JSON form: {error}",
            )
        )
    # This order makes HGETALL list the fields as the original key schema shows them.
    return [
        Field.STATE, State.FINISHED,
        Field.RESULT_VALUE, encoded,
        Field.RESULT, Outcome.SUCCESSFUL,
        Field.FINISHED_CREATED, now_iso(),
    ]  # fmt: skip
