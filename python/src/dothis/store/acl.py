"""Least-privilege Redis ACL users for the three roles (SPEC.md "ACL: the permissions of each
role"): ``producer``, ``worker`` and ``monitor``.

The rules are data derived from the protocol: the key templates (``KEY_TEMPLATES``, the key table
of SPEC.md 2.1), the commands each Lua script runs (read from ``lua/<name>.lua``), and the plain
commands each role sends, each with the reason it is needed. ``dothis acl`` prints them as an
``ACL SETUSER`` line; ``store.denied`` turns a refusal back into the rule that is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis.exceptions

from dothis.errors import PermissionDenied
from dothis.store.resources import lua_source
from dothis.store.scripts import NAMES as SCRIPT_NAMES
from dothis.wire.protocol import KEY_TEMPLATES, QUEUES_REGISTRY, Keys
from dothis.wire.shards import SHARDS_REGISTRY

ROLES = ("producer", "worker", "monitor")

# Running the protocol's scripts. Redis cannot limit these to some scripts: what holds a script
# to the role is that every command it runs, and every key and channel it touches, is checked
# against the same user (SPEC.md "ACL").
SCRIPTING = {
    "evalsha": "runs the protocol's scripts by their SHA1 (SPEC.md 10)",
    "eval": "the Node client (ioredis) sends a script's text the first time on each connection",
    "script|load": "the Python client loads a script after a NOSCRIPT reply (SPEC.md 10)",
    "script|exists": "the Python client checks its scripts before a pipeline of script calls",
}

# The plain commands each role sends besides its scripts, and why.
PRODUCER = {
    "ping": "checks the connection (Queue.ping; the results subscription's health check)",
    "time": "the offset of this machine's clock to Redis before the first enqueue (SPEC.md 9.8)",
    "hgetall": "reads a task (Queue.read_task, Task.info, Node getTask)",
    "hmget": "reads a task's outcome when a result is announced (Task.wait)",
    "exists": "finds a task by id (Queue.fetch)",
    "type": "the Node client checks a task key's type before reading it",
    "llen": "the number of pending tasks (len(queue), Node size())",
    "subscribe": "waits for results and progress on <queue>:results, <queue>:outcomes and "
    "<queue>:progress",
    "client|setname": "the Node client names its connections",
}
WORKER = {
    "ping": "the check at start that Redis answers",
    "role": "the check at start that Redis is a primary, not a read-only replica",
    "time": "the offset of this machine's clock to Redis (SPEC.md 9.8)",
    "blmove": "claims an entry, blocking (SPEC.md 5.2)",
    "lmove": "claims an entry without blocking (SPEC.md 5.2)",
    "lrange": "the reaper pages through <queue>:executing (SPEC.md 5.7)",
    "hget": "the reaper reads a worker key's leases field",
    "hmget": "the reaper and the parents check read a task's state",
    "hgetall": "reads a task hash",
    "exists": "the reaper checks whether an owner's worker key lives",
    "hexists": "checks cancel-requested on the tasks it runs (SPEC.md 5.14)",
    "type": "the Node worker checks a key's type",
    "llen": "burst mode checks whether anything is pending",
    "smembers": "the children waiting on a finished parent (SPEC.md 5.13)",
    "srem": "follow-ups done (SPEC.md 5.13)",
    "srandmember": "finds ended tasks whose follow-ups are due (SPEC.md 5.13)",
    "zrangebyscore": "due scheduled tasks (SPEC.md 5.11); the waiting tasks to check",
    "zrevrange": "dothis failed and dothis requeue --all list the failed registry",
    "zadd": "the registry of workers (SPEC.md 9.1); the waiting index",
    "zrem": "leaves the registry of workers; the waiting index",
    "zremrangebyscore": "drops dead workers from the registry of workers (SPEC.md 9.1)",
    "hset": "writes the worker key (SPEC.md 9.1)",
    "pexpire": "the worker key's lease (SPEC.md 9.1)",
    "del": "deletes the worker key at shutdown (SPEC.md 9.4)",
    "multi": "the worker key and its registry entry change together (SPEC.md 9.1)",
    "exec": "the worker key and its registry entry change together (SPEC.md 9.1)",
    "discard": "ends a transaction the client abandons",
    "client|id": "the Node worker notes its blocking connection's id",
    "client|setname": "the Node worker names its connections",
}
MONITOR = {
    "ping": "checks the connection",
    "time": "ages and due times in Redis's clock (SPEC.md 9.8)",
    "llen": "counts of pending, executing and rejected entries",
    "lrange": "lists pending, executing and rejected entries",
    "lindex": "the oldest pending entry (dothis info)",
    "zcard": "counts of scheduled, waiting, failed and succeeded tasks",
    "zcount": "counts of tasks in a time range (the dashboard)",
    "zrange": "lists scheduled and waiting tasks",
    "zrevrange": "lists failed and succeeded tasks, newest first",
    "zrangebyscore": "the live workers in <queue>:workers (SPEC.md 9.1)",
    "zscore": "when a listed task is due or finished",
    "hgetall": "reads a task or a worker key (dothis inspect, dothis info)",
    "hget": "reads one field of a task",
    "hmget": "reads some fields of many tasks",
    "exists": "whether a task exists",
    "type": "a key's type",
    "ttl": "how long a finished task is kept",
    "scard": "how many children wait on a task",
    "sscan": "the children waiting on a task (the dashboard)",
    "subscribe": "live results and progress on <queue>:results and <queue>:progress",
}

ROLE_COMMANDS = {"producer": PRODUCER, "worker": WORKER, "monitor": MONITOR}
ROLE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "producer": ("enqueue",),
    "worker": SCRIPT_NAMES,
    "monitor": (),
}
_CHANNELS = ("results", "outcomes", "progress")
_QUEUE_KEYS = tuple(name for name in KEY_TEMPLATES if name not in _CHANNELS)
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    # what enqueue.lua takes (the task, pending, scheduled, the parents' task and dependents,
    # waiting): a producer reads no other key and writes no other
    "producer": ("task", "pending", "scheduled", "dependents", "waiting"),
    "worker": _QUEUE_KEYS,
    "monitor": _QUEUE_KEYS,
}
# The registry of queues (SPEC.md 2.3) and the shard counts of sharded queues (11.2) are shared
# by every queue: a selector of its own allows the commands each role sends to each key and
# nothing else on that key.
ROLE_SELECTORS = {
    "producer": (f"(+zadd ~{QUEUES_REGISTRY})", f"(+hsetnx +hget ~{SHARDS_REGISTRY})"),
    "worker": (f"(+zadd ~{QUEUES_REGISTRY})", f"(+hsetnx +hget ~{SHARDS_REGISTRY})"),
    "monitor": (f"(+zrange %R~{QUEUES_REGISTRY})", f"(+hget +hgetall %R~{SHARDS_REGISTRY})"),
}
PASSWORD_PLACEHOLDER = "PASSWORD"
_CALL = re.compile(r"redis\.p?call\(\s*['\"]([A-Za-z]+)['\"]")


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis glob pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@cache
def script_commands(script: str) -> tuple[str, ...]:
    """The commands ``lua/<script>.lua`` runs, lower case, in order of first use."""
    found = (name.lower() for name in _CALL.findall(lua_source(script)))
    return tuple(dict.fromkeys(found))


def key_pattern(queue: str, template: str) -> str:
    """The glob of the keys of ``template`` (a name of ``KEY_TEMPLATES``) in ``queue``."""
    text = KEY_TEMPLATES[template].replace("<queue>", "\0")
    text = re.sub(r"<[a-z]+>", "*", text)
    return text.replace("\0", glob_escape(queue))


@dataclass(frozen=True)
class Rules:
    """The permissions of one role on some queues: every command with why it is needed, the
    key patterns, the channels and the selectors."""

    role: str
    queues: tuple[str, ...]
    commands: dict[str, str]
    keys: tuple[str, ...]
    channels: tuple[str, ...]
    selectors: tuple[str, ...]

    def arguments(self) -> list[str]:
        """The ACL rules, after ``ACL SETUSER <user> reset on >PASSWORD``."""
        return ["resetkeys", "resetchannels", "-@all",
                *(f"+{name}" for name in self.commands), *self.keys, *self.channels,
                *self.selectors]  # fmt: skip

    def setuser(self, user: str, password: str) -> list[str]:
        """The whole command: ``ACL SETUSER <user> reset on >PASSWORD <rules>``."""
        return ["ACL", "SETUSER", user, "reset", "on", f">{password}", *self.arguments()]

    def line(self, user: str, password: str) -> str:
        """The command as one line for redis-cli or an ACL file (a selector is quoted)."""
        return " ".join(quote(argument) for argument in self.setuser(user, password))

    def as_data(self) -> dict[str, Any]:
        return {"role": self.role, "queues": list(self.queues), "commands": self.commands,
                "keys": list(self.keys), "channels": list(self.channels),
                "selectors": list(self.selectors), "rules": self.arguments()}  # fmt: skip


def quote(argument: str) -> str:
    """An argument as redis-cli reads it: bare when it has no space or quote, else in double
    quotes with ``\\`` and ``"`` escaped."""
    if argument and not re.search(r"[\s\"']", argument):
        return argument
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def split_line(line: str) -> list[str]:
    """The arguments of a line written by ``Rules.line``, read as redis-cli reads them: a bare
    argument as it is (a backslash included), a quoted one with ``\\`` and ``\"`` escapes."""
    return [_unquote(token) for token in _TOKEN.findall(line)]


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _commands(role: str) -> dict[str, str]:
    why: dict[str, list[str]] = {}
    scripts = ROLE_SCRIPTS[role]
    if scripts:
        for name, reason in SCRIPTING.items():
            why[name] = [reason]
    for script in scripts:
        for name in script_commands(script):
            why.setdefault(name, []).append(f"{script}.lua")
    for name, reason in ROLE_COMMANDS[role].items():
        why.setdefault(name, []).append(reason)
    return {name: _reason(why[name]) for name in sorted(why)}


def _reason(parts: list[str]) -> str:
    scripts = [part for part in parts if part.endswith(".lua")]
    others = [part for part in parts if not part.endswith(".lua")]
    if scripts:
        others.append("run by " + ", ".join(scripts))
    return "; ".join(others)


def rules(role: str, queues: list[str] | tuple[str, ...]) -> Rules:
    """The least-privilege rules of ``role`` on ``queues`` (ValueError for an unknown role or an
    invalid queue name)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    if not queues:
        raise ValueError("name at least one queue")
    names = tuple(dict.fromkeys(Keys(queue).queue for queue in queues))
    prefix = "%R" if role == "monitor" else ""
    keys = tuple(f"{prefix}~{key_pattern(queue, template)}"
                 for queue in names for template in ROLE_KEYS[role])  # fmt: skip
    channels = tuple(f"&{key_pattern(queue, name)}" for queue in names for name in _CHANNELS)
    return Rules(role, names, _commands(role), keys, channels, ROLE_SELECTORS[role])


# Explaining a refusal ------------------------------------------------------------------------

# The replies of Redis 7 to a command, a key or a channel the user may not use, at the top level
# (NOPERM) and inside a script (ERR ..., with the script's line).
_REFUSED = (
    ("command", re.compile(r"no permissions to run the '([^']+)' command")),
    ("key", re.compile(r"no permissions to access one of the keys")),
    ("channel", re.compile(r"no permissions to access one of the channels")),
    ("command", re.compile(r"script can't run this command or subcommand")),
    ("key", re.compile(r"script can't access at least one of the keys")),
    ("channel", re.compile(r"script can't publish to the channel")),
)
_SCRIPT_LINE = re.compile(r"@user_script:(\d+)")
# redis-py names the command of a pipeline that failed: "Command # 1 (HSET key field ...) of ..."
_PIPELINE = re.compile(r"Command # \d+ \((\S+)(?: (\S+))?")
_FIXED_KEYS = {KEY_TEMPLATES[name].removeprefix("<queue>"): name for name in _QUEUE_KEYS
               if "<" not in KEY_TEMPLATES[name].removeprefix("<queue>")}  # fmt: skip
_VARIABLE_KEYS = {":task:": "task", ":dependents:": "dependents", ":worker:": "worker"}
FIX = "or create the user with the line `dothis acl --role ROLE --queue QUEUE` prints"


class Denied(PermissionDenied, redis.exceptions.NoPermissionError):
    """A PermissionDenied that is also redis-py's NoPermissionError: code that catches Redis
    refusals (a worker's loops, which retry them as faults) still catches it."""


@dataclass(frozen=True)
class Request:
    """What was refused: a script call (its name and KEYS) or a plain command (its arguments)."""

    command: tuple[Any, ...] = ()
    script: str | None = None
    keys: tuple[str, ...] = ()


def refusal(error: BaseException) -> tuple[str, str | None] | None:
    """("command", name) / ("key", None) / ("channel", None) for a permission refusal, else
    None."""
    if not isinstance(error, redis.exceptions.ResponseError) or isinstance(error, Denied):
        return None
    text = str(error)
    for kind, pattern in _REFUSED:
        found = pattern.search(text)
        if found:
            return kind, found.group(1).lower() if found.groups() else None
    return None


def pattern_of(key: str) -> str:
    """The rule that allows ``key``: ``~<queue>:pending``, ``~<queue>:task:*``, or the key."""
    for suffix, template in _FIXED_KEYS.items():
        if key.endswith(suffix) and len(key) > len(suffix):
            return f"~{key_pattern(key[: -len(suffix)], template)}"
    for marker, template in _VARIABLE_KEYS.items():
        at = key.rfind(marker)
        if at > 0:
            return f"~{key_pattern(key[:at], template)}"
    return f"~{glob_escape(key)}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _script_command(script: str, error: BaseException) -> str | None:
    """The command on the line of ``script`` that Redis names in its refusal."""
    found = _SCRIPT_LINE.search(str(error))
    if found is None:
        return None
    lines = lua_source(script).splitlines()
    number = int(found.group(1))
    calls = _CALL.findall(lines[number - 1]) if 0 < number <= len(lines) else []
    return calls[0].lower() if calls else None


def _keys_of(request: Request) -> list[str]:
    if request.script == "take" and request.keys and request.keys[0].endswith(":pending"):
        # take.lua also touches the task hashes it builds from the queue's prefix (SPEC.md 5.18)
        return [*request.keys, request.keys[0].removesuffix("pending") + "task:"]
    if request.script is not None:
        return list(request.keys)
    name = _text(request.command[0]).lower() if request.command else ""
    args = [_text(arg) for arg in request.command[1:]]
    if name in ("lmove", "blmove"):
        return args[:2]
    return args[:1]


def _channel(request: Request) -> str | None:
    keys = [key for key in _keys_of(request) if pattern_of(key).endswith(":task:*")]
    if not keys:
        return None
    queue = keys[0][: keys[0].rfind(":task:")]
    return f"&{key_pattern(queue, 'progress' if request.script == 'progress' else 'results')}"


def _command_refused(command: str | None, script: str | None, where: str) -> Denied:
    if command:
        rules: tuple[str, ...] = (f"+{command}",)
        what = f"the command {command.upper()}"
    else:  # a script's command that its line does not show: every command the script runs
        rules = tuple(f"+{name}" for name in script_commands(script)) if script else ()
        what = "a command"
    rule = f"add the rule {' '.join(rules)}" if rules else "add the command the script runs"
    message = f"Redis refused {what}{where} to this user (ACL): {rule}"
    return Denied(f"{message}, {FIX}", command=command, rules=rules)


def _from_pipeline(text: str) -> Request:
    found = _PIPELINE.search(text)
    if found is None:
        return Request()
    name, key = found.group(1), found.group(2)
    return Request(command=(name, key.rstrip(")")) if key else (name,))


def explain_noperm(error: BaseException, request: Request | None = None) -> Denied | None:
    """The PermissionDenied a user should see for a refusal of Redis's ACL (NOPERM, or a script's
    "can't run / access / publish"): it names the command, key or channel and the rule to add.
    None when ``error`` is no permission refusal."""
    found = refusal(error)
    if found is None:
        return None
    kind, command = found
    request = request or _from_pipeline(str(error))
    where = f" in {request.script}.lua" if request.script else ""
    if kind == "command" and command is None and request.script:
        command = _script_command(request.script, error)
    if kind == "command":
        return _command_refused(command, request.script, where)
    name = _text(request.command[0]).lower() if request.command else (
        "evalsha" if request.script else None)  # fmt: skip
    sent = name.upper() if name else "a command"
    if kind == "channel":
        channel = _channel(request)
        rule = f"add the rule {channel}" if channel else "add &<queue>:results &<queue>:progress"
        message = f"Redis refused a channel of {sent}{where} to this user (ACL): {rule}"
        return Denied(f"{message}, {FIX}", command=name, rules=(channel,) if channel else ())
    keys = _keys_of(request)
    patterns = tuple(dict.fromkeys(pattern_of(key) for key in keys))
    shown = f" (one of {', '.join(keys)})" if keys else ""
    rule = (f"add the rule{'s' if len(patterns) > 1 else ''} {' '.join(patterns)}" if patterns
            else "add the key patterns of the queue")  # fmt: skip
    message = f"Redis refused a key of {sent}{where}{shown} to this user (ACL): {rule}"
    return Denied(f"{message}, {FIX}", command=name, rules=patterns)
