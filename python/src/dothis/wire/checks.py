"""Checks of the fields a task hash may carry, in SPEC.md 8.1's order (a redis-cli user can type
anything): each returns the parsed value or the Failure that ends the task."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from dothis.wire.clock import now, parse_iso
from dothis.wire.protocol import PROTOCOL_VERSION, ErrorCode, Field
from dothis.wire.records import Failure

_INTEGER = re.compile(r"0|[1-9][0-9]{0,8}")
_SECONDS = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?")

Fields = dict[bytes, bytes]
_NAMES = {field: field.value.encode() for field in Field}  # each field's name as the hash has it


@dataclass(frozen=True)
class Settings:
    """What a hash says about its tries: total attempts, retries so far, timeout per try."""

    attempts: int = 1
    retries: int = 0
    timeout: float | None = None


def text(fields: Fields, name: Field) -> str | None:
    """A field as text; UnicodeDecodeError when it is not UTF-8."""
    raw = fields.get(_NAMES[name])
    return None if raw is None else raw.decode("utf-8")


def protocol_problem(fields: Fields) -> Failure | None:
    protocol = text(fields, Field.PROTOCOL)
    if protocol is not None and protocol != str(PROTOCOL_VERSION):
        return Failure(ErrorCode.UNSUPPORTED_PROTOCOL, f"the task asks for protocol "
                       f"{protocol[:32]!r}; this worker implements {PROTOCOL_VERSION}")  # fmt: skip
    return None


def settings(fields: Fields) -> Settings | Failure:
    """attempts, retries and timeout (SPEC.md 3.1). A malformed ``ttl``, ``result-ttl`` or
    ``failure-ttl`` fails nothing: it counts as absent (T-FIELD-6), as the Lua's ending does."""
    attempts = text(fields, Field.ATTEMPTS) or "1"
    retries = text(fields, Field.RETRIES) or "0"
    timeout = text(fields, Field.TIMEOUT)
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
    return Settings(int(attempts), int(retries), seconds)


def expired(fields: Fields, when: datetime | None = None) -> Failure | None:
    """The failure of a task that waited longer than its ttl to start, else None."""
    ttl, created = fields.get(b"ttl"), fields.get(b"pending-created")
    if ttl is None or created is None or ttl == b"0":
        return None
    if not _INTEGER.fullmatch(ttl.decode("latin-1")):
        return None  # a malformed ttl: no limit (SPEC.md 3.1, T-FIELD-6)
    try:
        since = parse_iso(created.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    waited = ((when or now()) - since).total_seconds()
    if waited <= int(ttl):
        return None
    return Failure(ErrorCode.EXPIRED, f"waited {waited:.1f} s to start; its ttl is {int(ttl)} s")


def keep_seconds(fields: Fields, failed: bool, default: int) -> int:
    """How long the hash of an ended task is kept: its own result-ttl / failure-ttl when valid,
    else ``default``; -1 means kept until deleted."""
    own = fields.get(b"failure-ttl" if failed else b"result-ttl")
    if own is not None and (own == b"-1" or (_INTEGER.fullmatch(own.decode("latin-1"))
                                             and own != b"0")):  # fmt: skip
        return int(own)
    return default
