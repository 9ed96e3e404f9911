"""Enqueue options: validated once, turned into hash fields, a placement and parent ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dothis.engine.registry import function_name
from dothis.errors import InvalidArguments
from dothis.wire import codec
from dothis.wire.clock import iso_from_ms, now_ms
from dothis.wire.protocol import ID_MAX_BYTES, Field, State, check_name


class HasId(Protocol):
    """A Task handle, or anything else with the ``id`` of a task."""

    @property
    def id(self) -> str: ...


Parents = str | HasId | Iterable[str | HasId]

OPTION_NAMES = (
    "task_id", "attempts", "timeout", "delay", "at", "at_front", "depends_on", "ttl",
    "result_ttl", "failure_ttl", "on_success", "on_failure", "description",
)  # fmt: skip


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArguments(f"{name} must be a positive int, not {value!r}")
    return value


def _keep_ttl(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
        raise InvalidArguments(f"{name} must be a positive int of seconds, or -1 to keep forever,"
                               f" not {value!r}")  # fmt: skip
    return value


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArguments(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _decimal(value: float) -> str:
    return format(value, ".6f").rstrip("0").rstrip(".")


def _function(name: str, value: Any) -> str:
    try:
        return check_name(function_name(value), name, 256)
    except (ValueError, TypeError) as error:
        raise InvalidArguments(f"{name}: {error}") from error


@dataclass(frozen=True)
class TaskOptions:
    """Everything a producer may set about a task besides its function and arguments."""

    task_id: str | None = None
    attempts: int | None = None
    timeout: float | None = None
    delay: float | None = None
    at: datetime | None = None
    at_front: bool = False
    depends_on: Parents | None = None
    ttl: int | None = None
    result_ttl: int | None = None
    failure_ttl: int | None = None
    on_success: Any = None
    on_failure: Any = None
    description: str | None = None

    def parents(self) -> list[str]:
        """The ids this task depends on, checked (a Task handle counts by its ``id``)."""
        value = self.depends_on
        if value is None:
            return []
        items = [value] if isinstance(value, str) or hasattr(value, "id") else list(value)
        ids = [item if isinstance(item, str) else item.id for item in items]
        for parent in ids:
            try:
                check_name(parent, "depends_on id", ID_MAX_BYTES)
            except ValueError as error:
                raise InvalidArguments(str(error)) from error
        return list(dict.fromkeys(ids))

    def due_ms(self) -> int | None:
        if self.delay is not None and self.at is not None:
            raise InvalidArguments("give delay or at, not both")
        if self.delay is not None:
            if (isinstance(self.delay, bool) or not isinstance(self.delay, int | float)
                    or self.delay < 0):  # fmt: skip
                raise InvalidArguments(f"delay must be a number of seconds >= 0, not "
                                       f"{self.delay!r}")  # fmt: skip
            return now_ms() + int(self.delay * 1000)
        if self.at is not None:
            if not isinstance(self.at, datetime):
                raise InvalidArguments(f"at must be a datetime, not {self.at!r}")
            when = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
            return int(when.timestamp() * 1000)
        return None

    def placement_and_fields(self) -> tuple[str, list[str], list[str]]:
        """(placement for enqueue.lua, the fields after the base ones, parent ids)."""
        fields: list[str] = []
        if self.attempts is not None:
            fields += [Field.ATTEMPTS, str(_positive_int("attempts", self.attempts))]
        if self.timeout is not None:
            fields += [Field.TIMEOUT, _decimal(_seconds("timeout", self.timeout))]
        if self.ttl is not None:
            fields += [Field.TTL, str(_positive_int("ttl", self.ttl))]
        if self.result_ttl is not None:
            fields += [Field.RESULT_TTL, str(_keep_ttl("result_ttl", self.result_ttl))]
        if self.failure_ttl is not None:
            fields += [Field.FAILURE_TTL, str(_keep_ttl("failure_ttl", self.failure_ttl))]
        if self.on_success is not None:
            fields += [Field.ON_SUCCESS, _function("on_success", self.on_success)]
        if self.on_failure is not None:
            fields += [Field.ON_FAILURE, _function("on_failure", self.on_failure)]
        if self.description is not None:
            fields += [Field.DESCRIPTION, str(self.description)]
        parents = self.parents()
        if parents:
            fields += [Field.DEPENDS_ON, codec.encode(parents)]
        due = self.due_ms()
        if due is not None:
            if parents:
                raise InvalidArguments("a task with depends_on starts when its parents succeed; "
                                       "it cannot also have delay or at")  # fmt: skip
            if self.at_front:
                raise InvalidArguments("at_front and delay/at do not go together")
            fields += [Field.STATE, State.SCHEDULED, Field.SCHEDULED_FOR, iso_from_ms(due)]
            return str(due), fields, parents
        return ("front" if self.at_front else "back"), fields, parents
