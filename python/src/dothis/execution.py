"""From a claimed task hash to the fields of its outcome.

``prepare`` checks everything a redis-cli user could have typed wrong and returns either a call
ready to run or the Failure that ends the task; ``outcome_fields`` turns a return value or a
Failure into the fields finish.lua writes.
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dothis import codec
from dothis.pool import Reply
from dothis.protocol import PROTOCOL_VERSION, ErrorCode, Field, Outcome, State, now_iso
from dothis.registry import Registry


@dataclass(frozen=True)
class Failure:
    code: ErrorCode
    reason: str
    exception: str = ""

    def as_reply(self) -> Reply:
        return Reply("error", self.reason, self.exception)

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
    attempts: int = 1
    retries: int = 0
    timeout: float | None = None


_INTEGER = re.compile(r"0|[1-9][0-9]{0,8}")
_SECONDS = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?")


def _options(fields: dict[bytes, bytes]) -> tuple[int, int, float | None] | Failure:
    """attempts, retries and timeout, checked (SPEC.md 3.1)."""
    for name in (Field.RESULT_TTL, Field.FAILURE_TTL, Field.TTL):
        value = _field(fields, name)
        if (
            value is not None
            and not (_INTEGER.fullmatch(value) and value != "0")
            and (value != "-1" or name == Field.TTL)
        ):
            return Failure(ErrorCode.INVALID_FIELD, f"{name} must be a positive integer of "
                                                    f"seconds, not {value[:32]!r}")  # fmt: skip
    attempts = _field(fields, Field.ATTEMPTS) or "1"
    retries = _field(fields, Field.RETRIES) or "0"
    timeout = _field(fields, Field.TIMEOUT)
    if not _INTEGER.fullmatch(attempts) or attempts == "0":
        return Failure(ErrorCode.INVALID_FIELD, f"attempts must be a positive integer, not "
                                                f"{attempts[:32]!r}")  # fmt: skip
    if not _INTEGER.fullmatch(retries):
        return Failure(ErrorCode.INVALID_FIELD, f"retries must be an integer, not {retries[:32]!r}")
    seconds = None
    if timeout is not None:
        if not _SECONDS.fullmatch(timeout) or float(timeout) == 0:
            return Failure(ErrorCode.INVALID_FIELD, f"timeout must be a positive number of "
                                                    f"seconds, not {timeout[:32]!r}")  # fmt: skip
        seconds = float(timeout)
    return int(attempts), int(retries), seconds


def _field(fields: dict[bytes, bytes], name: Field) -> str | None:
    raw = fields.get(name.value.encode())
    return None if raw is None else raw.decode("utf-8")


def prepare(fields: dict[bytes, bytes], registry: Registry) -> Call | Failure:
    """Check a claimed hash; the Call to run, or why the task fails without running."""
    try:
        function = _field(fields, Field.FUNCTION)
        raw_args = _field(fields, Field.ARGS)
        protocol = _field(fields, Field.PROTOCOL)
        options = _options(fields)
    except UnicodeDecodeError as error:
        return Failure(ErrorCode.INVALID_ENCODING, f"a field is not valid UTF-8: {error}")
    if protocol is not None and protocol != str(PROTOCOL_VERSION):
        return Failure(
            ErrorCode.UNSUPPORTED_PROTOCOL,
            f"the task asks for protocol {protocol[:32]!r}; this worker implements "
            f"{PROTOCOL_VERSION}",
        )
    if isinstance(options, Failure):
        return options
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
    return Call(function, target, args, inspect.iscoroutinefunction(target), *options)


def failure_fields(failure: Failure, result: Outcome = Outcome.FAILED) -> list[str]:
    return [
        Field.STATE, State.FINISHED,
        Field.RESULT, result,
        Field.ERROR_CODE, failure.code,
        Field.ERROR_REASON, failure.reason,
        Field.ERROR_EXCEPTION, failure.exception,
        Field.FINISHED_CREATED, now_iso(),
    ]  # fmt: skip


def unserializable(type_name: str, error: str) -> Failure:
    return Failure(
        ErrorCode.UNSERIALIZABLE_RESULT,
        f"the function returned a {type_name} with no JSON form: {error}",
    )


def success_fields(encoded: str) -> list[str]:
    """The fields of a success; ``encoded`` is the JSON text of the return value."""
    # This order makes HGETALL list the fields as the original key schema shows them.
    return [
        Field.STATE, State.FINISHED,
        Field.RESULT_VALUE, encoded,
        Field.RESULT, Outcome.SUCCESSFUL,
        Field.FINISHED_CREATED, now_iso(),
    ]  # fmt: skip
