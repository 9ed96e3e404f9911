"""prepare() turns each kind of bad hash into its documented error code, without Redis."""

from __future__ import annotations

import pytest

from dothis import ErrorCode, Registry
from dothis.engine.checks import Invocation, prepare
from dothis.wire.records import Failure

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
    assert isinstance(outcome, Invocation)
    assert outcome.function(**outcome.args) == "hello ann!"


def test_missing_args_means_no_arguments() -> None:
    no_args = Registry()
    no_args.add(lambda: 7, name="seven")
    outcome = prepare(fields(function=b"seven"), no_args)
    assert isinstance(outcome, Invocation) and outcome.args == {}


def test_results_without_json_form_and_retry_requests_are_described() -> None:
    from dothis.engine.tries import (
        Retry,
        RetryRequested,
        Returned,
        Unserializable,
        from_message,
        run_call,
        to_message,
    )

    assert isinstance(run_call(lambda: {1, 2}, {}), Unserializable)
    assert isinstance(run_call(lambda: float("nan"), {}), Unserializable)
    assert run_call(lambda: [0, False, None], {}) == Returned("[0,false,null]")

    def again() -> None:
        raise Retry("later", delay=2.5)

    reply = run_call(again, {})
    assert reply == RetryRequested("later", 2.5)
    assert from_message(to_message(reply)) == reply  # what a child process sends, as JSON


@pytest.mark.parametrize(
    ("extra", "problem"),
    [({"attempts": b"0"}, "attempts"), ({"attempts": b"three"}, "attempts"),
     ({"retries": b"-1"}, "retries"), ({"timeout": b"0"}, "timeout"),
     ({"timeout": b"1e3"}, "timeout"), ({"timeout": b"soon"}, "timeout")],
)  # fmt: skip
def test_malformed_options_are_invalid_fields(extra: dict[str, bytes], problem: str) -> None:
    outcome = prepare({**fields(function=b"greet", args=b'{"name": "a"}'), **fields(**extra)},
                      registry)  # fmt: skip
    assert isinstance(outcome, Failure) and outcome.code == ErrorCode.INVALID_FIELD
    assert problem in outcome.reason


def test_options_are_read() -> None:
    outcome = prepare(fields(function=b"greet", args=b'{"name": "a"}', attempts=b"3",
                             retries=b"1", timeout=b"2.5"), registry)  # fmt: skip
    assert isinstance(outcome, Invocation)
    settings = outcome.settings
    assert (settings.attempts, settings.retries, settings.timeout) == (3, 1, 2.5)


def test_a_name_is_registered_once() -> None:
    from dothis import RegistryError

    with pytest.raises(RegistryError):
        registry.add(lambda name: name, name="greet")


@pytest.mark.parametrize("version", [" 1", "1.0", "01", "two", ""])
def test_protocol_must_be_exactly_one(version: str) -> None:
    hash_fields = fields(function=b"greet", args=b'{"name": "a"}', protocol=version.encode())
    outcome = prepare(hash_fields, registry)
    assert isinstance(outcome, Failure) and outcome.code == ErrorCode.UNSUPPORTED_PROTOCOL


def test_the_fit_of_argument_names_is_remembered_per_function_and_names() -> None:
    # bind's answer depends on the names only: the same names get the same answer again, other
    # names (or another function under a name registered again) are judged afresh.
    fits = Registry()
    fits.add(lambda name: name, name="one")
    for _ in range(2):
        assert fits.misfit("one", {"name": "a"}) is None
        assert "missing a required argument" in (fits.misfit("one", {}) or "")
        assert "unexpected keyword argument 'other'" in (
            fits.misfit("one", {"name": "a", "other": 1}) or ""
        )
    again = Registry()
    again.add(lambda name: name, name="one")
    assert again.misfit("one", {"name": 1}) is None
    fits.add(lambda: None, name="none")
    assert fits.misfit("none", {"name": "a"}) is not None
    outcome = prepare(fields(function=b"one", args=b'{"name": "x"}'), fits)
    assert isinstance(outcome, Invocation) and not outcome.is_async
