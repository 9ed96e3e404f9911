"""The rules as data, without Redis: what each role may run and touch, the line ``dothis acl``
prints, and the PermissionDenied a refusal becomes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from dothis.cli import main
from dothis.store.acl import Request, explain_noperm, rules, script_commands, split_line
from dothis.store.scripts import NAMES

OPS = Path(__file__).resolve().parents[2] / "src" / "dothis" / "store" / "ops.py"
WRITES = {"hset", "hdel", "del", "lpush", "rpush", "lrem", "lmove", "blmove", "zadd", "zrem",
          "sadd", "srem", "expire", "pexpire", "publish", "evalsha", "eval", "script|load",
          "multi", "exec", "unlink", "flushall", "flushdb", "keys", "scan"}  # fmt: skip


def test_each_role_runs_the_commands_of_its_scripts() -> None:
    worker, producer = rules("worker", ["q"]), rules("producer", ["q"])
    for script in NAMES:
        assert set(script_commands(script)) <= set(worker.commands), script
    assert set(script_commands("enqueue")) <= set(producer.commands)
    assert {"evalsha", "script|load", "eval"} <= set(producer.commands)
    assert script_commands("reject") == ("lrem", "lpush", "ltrim")


def test_the_worker_may_send_every_plain_command_of_the_operations_layer() -> None:
    sent = {name.lower() for name in re.findall(r'Command\(\("([A-Z]+)"', OPS.read_text())}
    assert sent and sent <= set(rules("worker", ["q"]).commands)


def test_a_producer_touches_only_what_enqueue_takes() -> None:
    producer = rules("producer", ["emails"])
    assert producer.keys == ("~emails:task:*", "~emails:pending", "~emails:scheduled",
                             "~emails:dependents:*", "~emails:waiting")  # fmt: skip
    assert producer.channels == ("&emails:results", "&emails:outcomes", "&emails:progress")
    assert not {"lrange", "blmove", "lmove", "publish", "zrem"} & set(producer.commands)
    assert "hgetall" in producer.commands and "lrange" not in producer.commands


def test_the_monitor_reads_only() -> None:
    monitor = rules("monitor", ["q"])
    assert not WRITES & set(monitor.commands)
    assert all(key.startswith("%R~q:") for key in monitor.keys)
    assert monitor.selectors == ("(+zrange %R~dothis.queues)", "(+hget +hgetall %R~dothis.shards)")


def test_queue_names_are_literal_in_patterns() -> None:
    tricky = rules("worker", ["a*b?[c]\\d", "{emails}"])
    assert "~a\\*b\\?\\[c\\]\\\\d:task:*" in tricky.keys
    assert "~{emails}:pending" in tricky.keys and "&{emails}:results" in tricky.channels
    with pytest.raises(ValueError, match="whitespace"):
        rules("worker", ["a b"])
    with pytest.raises(ValueError, match="unknown role"):
        rules("admin", ["q"])


def test_the_line_reads_back_as_the_command() -> None:
    found = rules("producer", ["a*b", "{x}"])
    line = found.line("dothis-producer", "PASSWORD")
    assert split_line(line) == found.setuser("dothis-producer", "PASSWORD")
    assert line.startswith("ACL SETUSER dothis-producer reset on >PASSWORD resetkeys "
                           "resetchannels -@all +")  # fmt: skip
    assert line.endswith(' "(+zadd ~dothis.queues)" "(+hsetnx +hget ~dothis.shards)"')


def test_the_cli_prints_the_line_or_the_rules_as_json() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["acl", "--role", "worker", "-q", "a", "-q", "b",
                                  "--password-placeholder"])  # fmt: skip
    assert result.exit_code == 0
    assert result.stdout == rules("worker", ["a", "b"]).line("dothis-worker", "PASSWORD") + "\n"
    data = json.loads(runner.invoke(main, ["acl", "--role", "monitor", "-q", "a", "--user", "m",
                                           "--json"]).stdout)  # fmt: skip
    assert data["user"] == "m" and data["keys"][0] == "%R~a:task:*"
    assert data["commands"]["lindex"] and data["command"][:3] == ["ACL", "SETUSER", "m"]
    fresh = {runner.invoke(main, ["acl", "--role", "producer", "-q", "a"]).stdout.split()[5]
             for _ in range(2)}  # fmt: skip
    assert len(fresh) == 2  # a new random password each time
    bad = runner.invoke(main, ["acl", "--role", "worker", "-q", "a b"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: queue name contains whitespace")


SCRIPT_REFUSAL = "The user executing the script can't {} script: {}, on @user_script:{}."


def test_a_refused_command_names_the_rule() -> None:
    error = redis.exceptions.NoPermissionError(
        "this user has no permissions to run the 'script|load' command"
    )
    denied = explain_noperm(error, Request(script="enqueue", keys=("q:task:1",)))
    assert denied is not None and denied.rules == ("+script|load",)
    assert "the command SCRIPT|LOAD in enqueue.lua" in str(denied)
    assert isinstance(denied, redis.exceptions.NoPermissionError)  # worker loops still catch it


def test_a_command_refused_inside_a_script_is_found_on_its_line() -> None:
    lines = Path(__file__).resolve().parents[3].joinpath("lua", "reject.lua").read_text()
    number = next(i for i, line in enumerate(lines.splitlines(), 1)
                  if "redis.call('LTRIM'" in line)  # fmt: skip
    error = redis.ResponseError(SCRIPT_REFUSAL.format("run this command or subcommand", "ab",
                                                      number))  # fmt: skip
    denied = explain_noperm(error, Request(script="reject", keys=("q:executing", "q:rejected")))
    assert denied is not None and denied.rules == ("+ltrim",)


def test_a_refused_key_names_its_pattern() -> None:
    error = redis.ResponseError(
        SCRIPT_REFUSAL.format(
            "access at least one of the keys mentioned in the command arguments", "ab", 3
        )
    )
    denied = explain_noperm(error, Request(script="enqueue", keys=(
        "{o}:task:1", "{o}:pending", "{o}:scheduled")))  # fmt: skip
    assert denied is not None
    assert denied.rules == ("~{o}:task:*", "~{o}:pending", "~{o}:scheduled")
    keys = redis.exceptions.NoPermissionError(
        "this user has no permissions to access one of the keys used as arguments"
    )
    denied = explain_noperm(keys, Request(command=(b"BLMOVE", b"a:pending", b"a:executing")))
    assert denied is not None and denied.rules == ("~a:pending", "~a:executing")
    assert "a key of BLMOVE (one of a:pending, a:executing)" in str(denied)


def test_a_refused_channel_names_it() -> None:
    error = redis.ResponseError(
        SCRIPT_REFUSAL.format("publish to the channel mentioned in the command", "ab", 9)
    )
    denied = explain_noperm(error, Request(script="progress", keys=("q:task:1",)))
    assert denied is not None and denied.rules == ("&q:progress",)


def test_a_refused_pipeline_command_is_read_from_its_annotation() -> None:
    error = redis.exceptions.NoPermissionError(
        "Command # 1 (HSET o:worker:w1 id w1 host h) of pipeline caused error: this user has "
        "no permissions to access one of the keys used as arguments"
    )
    denied = explain_noperm(error)
    assert denied is not None and denied.rules == ("~o:worker:*",) and "HSET" in str(denied)


def test_other_errors_are_not_refusals() -> None:
    assert explain_noperm(redis.ResponseError("WRONGTYPE Operation against a key")) is None
    assert explain_noperm(redis.ConnectionError("Connection refused")) is None
