"""Task lists, one page at a time, a task's every field, and the search over a recent window.

A page costs O(page size): LRANGE or ZRANGE with the page's offsets on the state's list or sorted
set, then one HMGET per task on the page, pipelined; the total is LLEN or ZCARD. Nothing ever reads
a whole list. The search reads a bounded window: the newest ``SEARCH_WINDOW`` entries of each.
The lists of a sharded queue (SPEC.md 11.2) are read shard by shard: a page is one shard's.
"""

from __future__ import annotations

from typing import Any, cast

from dothis.dashboard.reader import Reader, text
from dothis.engine.followups import callback_id
from dothis.errors import InvalidArguments
from dothis.producer.inspection import hash_fields
from dothis.store.connection import translate_errors
from dothis.wire.clock import iso_from_ms
from dothis.wire.display import age_seconds as age
from dothis.wire.display import decode_json as json_or_text
from dothis.wire.display import pretty
from dothis.wire.protocol import ID_MAX_BYTES, Field, Keys, name_problem

LIST_STATES = ("pending", "scheduled", "waiting", "executing", "failed", "succeeded", "rejected")
ROW_FIELDS = (Field.FUNCTION, Field.STATE, Field.RESULT, Field.ARGS, Field.PENDING_CREATED,
              Field.FINISHED_CREATED, Field.ERROR_CODE, Field.ERROR_REASON,
              Field.PROGRESS)  # fmt: skip
SEARCH_WINDOW = 1000
MAX_PAGE = 500
ARGS_PREVIEW = 120
SEARCH_FIELDS = (Field.FUNCTION, Field.ARGS, Field.STATE, Field.RESULT)


def check_state(state: str) -> str:
    if state not in LIST_STATES:
        raise InvalidArguments(f"no task list {state!r}: use one of {', '.join(LIST_STATES)}")
    return state


def check_id(task_id: str) -> str:
    problem = name_problem(task_id, "the task id", ID_MAX_BYTES)
    if problem:
        raise InvalidArguments(problem)
    return task_id


def _entries(reader: Reader, keys: Keys, state: str, start: int, count: int
             ) -> tuple[int, list[tuple[bytes, float | None]]]:  # fmt: skip
    """The total of the state's key and one page of (entry, score), in display order."""
    client = reader.client
    end = start + count - 1
    pipe = client.pipeline(transaction=False)
    if state == "pending":  # the next to run (the right end) first
        pipe.llen(keys.pending)
        pipe.lrange(keys.pending, -(end + 1), -(start + 1))
    elif state in ("executing", "rejected"):
        key = keys.executing if state == "executing" else keys.rejected
        pipe.llen(key)
        pipe.lrange(key, start, end)
    elif state in ("scheduled", "waiting"):  # the soonest first
        key = keys.scheduled if state == "scheduled" else keys.waiting
        pipe.zcard(key)
        pipe.zrange(key, start, end, withscores=True)
    else:  # failed, succeeded: the newest first
        key = keys.failed if state == "failed" else keys.succeeded
        pipe.zcard(key)
        pipe.zrevrange(key, start, end, withscores=True)
    with translate_errors(reader.url):
        total, raw = pipe.execute()
    if state == "pending":
        return total, [(entry, None) for entry in reversed(raw)]
    if state in ("executing", "rejected"):
        return total, [(entry, None) for entry in raw]
    return total, [(entry, float(score)) for entry, score in raw]


def _row(task_id: str, values: list[str | None], score: float | None) -> dict[str, Any]:
    fields = dict(zip((str(name) for name in ROW_FIELDS), values, strict=True))
    args = fields.pop("args")
    progress = json_or_text(fields.pop("progress"))
    return {"id": task_id, **{name.replace("-", "_"): value for name, value in fields.items()},
            "args": None if args is None else args[:ARGS_PREVIEW],
            "args_cut": args is not None and len(args) > ARGS_PREVIEW,
            "progress": progress.get("fraction") if isinstance(progress, dict) else None,
            "score": None if score is None else iso_from_ms(int(score)),
            "exists": any(value is not None for value in values)}  # fmt: skip


def page(reader: Reader, queue: str, state: str, start: int = 0, count: int = 50,
         shard: int = 0) -> dict[str, Any]:  # fmt: skip
    """One page of the tasks in ``state``: ``total``, ``start``, ``count`` and ``rows``; of
    shard ``shard`` of a sharded queue (``queue``: the shard's name, ``sharded``: the logical
    name, the shard and the shard count; None on another queue)."""
    shards = reader.shard_count(queue)
    sharded = None
    if shards is not None:
        if not 0 <= shard < shards:
            raise InvalidArguments(f"queue {queue!r} has shards 0 to {shards - 1}, not {shard}")
        sharded = {"name": queue, "shard": shard, "count": shards}
        queue = reader.parts(queue, shards)[shard]
    found = _page(reader, queue, state, start, count)
    return {**found, "sharded": sharded}


def _page(reader: Reader, queue: str, state: str, start: int, count: int) -> dict[str, Any]:
    keys = reader.queue(queue).keys
    start, count = max(0, start), min(max(1, count), MAX_PAGE)
    total, entries = _entries(reader, keys, check_state(state), start, count)
    if state == "rejected":
        rows = [{"record": json_or_text(text(entry))} for entry, _ in entries]
        return {"queue": queue, "state": state, "total": total, "start": start,
                "count": count, "rows": rows}  # fmt: skip
    ids = [(keys.parse_entry(entry)[0], text(entry) or "", score) for entry, score in entries]
    valid = [task_id for task_id, _, _ in ids if task_id is not None]
    with translate_errors(reader.url):
        found = iter(hash_fields(reader.client, keys, valid, [str(f) for f in ROW_FIELDS]))
    rows = []
    for task_id, raw, score in ids:
        if task_id is None:
            rows.append({"id": None, "entry": raw, "exists": False})
        else:
            rows.append(_row(task_id, next(found), score))
    return {"queue": queue, "state": state, "total": total, "start": start, "count": count,
            "rows": rows}  # fmt: skip


def detail(reader: Reader, queue: str, task_id: str) -> dict[str, Any] | None:
    """Every field of the task's hash, decoded, with the links and timings a person wants;
    None when there is no such hash. On a sharded queue, the task of the shard of its id."""
    check_id(task_id)
    queue = reader.home(queue, task_id)
    keys = reader.queue(queue).keys
    pipe = reader.client.pipeline(transaction=False)
    pipe.hgetall(keys.task(task_id))
    pipe.ttl(keys.task(task_id))
    pipe.sscan(keys.dependents(task_id), 0, count=100)
    with translate_errors(reader.url):
        raw, ttl, (_, dependents) = pipe.execute()
    if not raw:
        return None
    fields = {cast(str, text(k)): cast(str, text(v)) for k, v in raw.items()}
    return {"queue": queue, "id": task_id, "fields": dict(sorted(fields.items())),
            "ttl_seconds": ttl if ttl >= 0 else None, **_links(fields, task_id),
            "dependents": sorted(cast(str, text(d)) for d in dependents)[:100],
            **_shown(fields), **_timings(fields)}  # fmt: skip


def _shown(fields: dict[str, str]) -> dict[str, Any]:
    args = fields.get(Field.ARGS)
    value = fields.get(Field.RESULT_VALUE)
    progress = json_or_text(fields.get(Field.PROGRESS))
    traceparent = fields.get(Field.TRACEPARENT, "")
    parts = traceparent.split("-")
    return {"args_pretty": None if args is None else pretty(json_or_text(args)),
            "value_pretty": None if value is None else pretty(json_or_text(value)),
            "progress": progress if isinstance(progress, dict) else None,
            "trace_id": parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None,
            "error": {"code": fields.get(Field.ERROR_CODE),
                      "reason": fields.get(Field.ERROR_REASON),
                      "traceback": fields.get(Field.ERROR_EXCEPTION)}}  # fmt: skip


def _links(fields: dict[str, str], task_id: str) -> dict[str, Any]:
    parents = json_or_text(fields.get(Field.DEPENDS_ON))
    callbacks = {}
    for name in (Field.ON_SUCCESS, Field.ON_FAILURE):
        if fields.get(name):
            callbacks[str(name)] = fields[name]
    return {"depends_on": [str(p) for p in parents] if isinstance(parents, list) else [],
            "callback_of": fields.get(Field.CALLBACK_OF),
            "callbacks": callbacks,
            "callback_id": callback_id(task_id) if callbacks else None}  # fmt: skip


def _timings(fields: dict[str, str]) -> dict[str, Any]:
    created = fields.get(Field.PENDING_CREATED)
    started = fields.get(Field.EXECUTING_CREATED)
    finished = fields.get(Field.FINISHED_CREATED)
    return {"timings": {
        "waited_seconds": age(created, started) if started else age(created),
        "ran_seconds": age(started, finished) if finished else (age(started) if started else None),
        "total_seconds": age(created, finished) if finished else age(created),
    }}  # fmt: skip


def _window(reader: Reader, keys: Keys, window: int) -> list[tuple[str, str]]:
    """(task id, the list it was found in) of the newest ``window`` entries of each list."""
    pipe = reader.client.pipeline(transaction=False)
    pipe.lrange(keys.pending, 0, window - 1)  # the most recently enqueued
    pipe.lrange(keys.executing, 0, window - 1)
    pipe.zrange(keys.scheduled, 0, window - 1)
    pipe.zrange(keys.waiting, 0, window - 1)
    pipe.zrevrange(keys.failed, 0, window - 1)
    pipe.zrevrange(keys.succeeded, 0, window - 1)
    with translate_errors(reader.url):
        found = pipe.execute()
    seen: dict[str, str] = {}
    for where, entries in zip(("pending", "executing", "scheduled", "waiting", "failed",
                               "succeeded"), found, strict=True):  # fmt: skip
        for entry in entries:
            task_id = keys.parse_entry(entry)[0]
            if task_id is not None:
                seen.setdefault(task_id, where)
    return list(seen.items())


def search(reader: Reader, queue: str, function: str = "", args: str = "",
           window: int = SEARCH_WINDOW, limit: int = 200) -> dict[str, Any]:  # fmt: skip
    """Tasks whose function is ``function`` (exactly; empty: any) and whose args contain
    ``args`` (a substring; empty: any), among the newest ``window`` of each list (of each
    shard of a sharded queue)."""
    candidates: list[tuple[str, str]] = []
    rows: list[list[str | None]] = []
    for part in reader.parts(queue, reader.shard_count(queue)):
        keys = reader.queue(part).keys
        found = _window(reader, keys, window)
        with translate_errors(reader.url):
            rows += hash_fields(reader.client, keys, [task_id for task_id, _ in found],
                                [str(f) for f in SEARCH_FIELDS])  # fmt: skip
        candidates += found
    matches = []
    for (task_id, where), (name, task_args, state, result) in zip(candidates, rows, strict=True):
        if function and name != function:
            continue
        if args and (task_args is None or args not in task_args):
            continue
        matches.append({"id": task_id, "list": where, "function": name, "state": state,
                        "result": result, "args": (task_args or "")[:ARGS_PREVIEW]})  # fmt: skip
    return {"queue": queue, "function": function, "args": args, "window": window,
            "searched": len(candidates), "found": len(matches), "rows": matches[:limit],
            "limit": limit}  # fmt: skip
