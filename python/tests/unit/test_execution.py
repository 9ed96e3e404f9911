"""prepare() turns each kind of bad hash into its documented error code, without Redis."""

from __future__ import annotations

import pytest

from dothis import ErrorCode, Registry
from dothis.execution import Call, Failure, prepare, success_fields

registry = Registry()


@registry.register
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def fields(**values: bytes) -> dict[bytes, bytes]:
    return {key.replace("_", "-").encode(): value for key, value in values.items()}


@pytest.mark.parametrize(
    ("hash_fields", "code"),
    [
        (fields(args=b"{}"), ErrorCode.MISSING_FUNCTION),
        (fields(function=b"", args=b"{}"), ErrorCode.MISSING_FUNCTION),
        (fields(function=b"os.system", args=b"{}"), ErrorCode.UNKNOWN_FUNCTION),
        (fields(function=b"greet", args=b"{not json"), ErrorCode.MALFORMED_ARGS),
        (fields(function=b"greet", args=b'{"name": NaN}'), ErrorCode.MALFORMED_ARGS),
        (fields(function=b"greet", args=b'["x"]'), ErrorCode.ARGS_NOT_OBJECT),
        (fields(function=b"greet", args=b'"x"'), ErrorCode.ARGS_NOT_OBJECT),
        (fields(function=b"greet", args=b"{}"), ErrorCode.BAD_ARGUMENTS),
        (fields(function=b"greet", args=b'{"name": "a", "extra": 1}'), ErrorCode.BAD_ARGUMENTS),
        (fields(function=b"greet", args=b'{"name": "\xff"}'), ErrorCode.INVALID_ENCODING),
        (fields(function=b"gr\xffeet", args=b"{}"), ErrorCode.INVALID_ENCODING),
        (
            fields(function=b"greet", args=b'{"name": "a"}', protocol=b"2"),
            ErrorCode.UNSUPPORTED_PROTOCOL,
        ),
    ],
)
def test_bad_hashes_fail_with_their_code(hash_fields: dict[bytes, bytes], code: ErrorCode) -> None:
    outcome = prepare(hash_fields, registry)
    assert isinstance(outcome, Failure)
    assert outcome.code == code
    assert outcome.reason


def test_good_hash_becomes_a_call() -> None:
    outcome = prepare(fields(function=b"greet", args=b'{"name": "ann"}', protocol=b"1"), registry)
    assert isinstance(outcome, Call)
    assert outcome.function(**outcome.args) == "hello ann!"


def test_missing_args_means_no_arguments() -> None:
    no_args = Registry()
    no_args.add(lambda: 7, name="seven")
    outcome = prepare(fields(function=b"seven"), no_args)
    assert isinstance(outcome, Call) and outcome.args == {}


def test_unserializable_result_is_a_failure() -> None:
    written = dict(zip(*[iter(success_fields({1, 2}))] * 2, strict=True))
    assert written["result"] == "failed"
    assert written["error-code"] == ErrorCode.UNSERIALIZABLE_RESULT


def test_a_name_is_registered_once() -> None:
    from dothis import RegistryError

    with pytest.raises(RegistryError):
        registry.add(lambda name: name, name="greet")


@pytest.mark.parametrize("version", [" 1", "1.0", "01", "two", ""])
def test_protocol_must_be_exactly_one(version: str) -> None:
    hash_fields = fields(function=b"greet", args=b'{"name": "a"}', protocol=version.encode())
    outcome = prepare(hash_fields, registry)
    assert isinstance(outcome, Failure) and outcome.code == ErrorCode.UNSUPPORTED_PROTOCOL
