"""What the overview and the workers page show: counts by state, throughput and workers.

Counts are LLEN/ZCARD (O(1)); throughput is ZCOUNT over the finish-time scores of the succeeded
and failed registries (SPEC.md 2.1), so it survives restarts of the dashboard; workers are read
from the registry ``<queue>:workers`` and their manifests (SPEC.md 9.1). A sharded queue (SPEC.md
11.2) is one row: the counts and throughput of its shards added up, its workers counted once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from dothis.dashboard.reader import Reader
from dothis.producer.inspection import live_workers, pending_functions, queue_info
from dothis.store.connection import translate_errors
from dothis.wire.clock import now_ms
from dothis.wire.display import age_seconds as age
from dothis.wire.display import decode_json as json_or_text
from dothis.wire.protocol import Keys

STATES = ("pending", "scheduled", "waiting", "executing", "failed", "succeeded", "rejected")
HOUR_MS = 3_600_000
BUCKETS = 12  # the last hour in 5-minute buckets
BACKLOG_WINDOW = 100  # the next pending tasks read to name the functions with a backlog


def counts(reader: Reader, names: list[str]) -> dict[str, dict[str, int]]:
    """Tasks by state and live workers of each queue (a sharded queue's summed over its shards:
    a worker serving several shards counts once per shard), in one pipelined round trip."""
    sharded = reader.sharded()
    parts = {name: reader.parts(name, sharded.get(name)) for name in names}
    found = _counts(reader, [part for name in names for part in parts[name]])
    return {name: {state: sum(found[part][state] for part in parts[name])
                   for state in (*STATES, "workers")} for name in names}  # fmt: skip


def _counts(reader: Reader, names: list[str]) -> dict[str, dict[str, int]]:
    stamp = now_ms()
    pipe = reader.client.pipeline(transaction=False)
    for name in names:
        keys = Keys(name)
        pipe.llen(keys.pending)
        pipe.zcard(keys.scheduled)
        pipe.zcard(keys.waiting)
        pipe.llen(keys.executing)
        pipe.zcard(keys.failed)
        pipe.zcard(keys.succeeded)
        pipe.llen(keys.rejected)
        pipe.zcount(keys.workers, stamp, "+inf")
    with translate_errors(reader.url):
        found = cast(list[int], pipe.execute()) if names else []
    size = len(STATES) + 1
    result = {}
    for index, name in enumerate(names):
        row = found[index * size : (index + 1) * size]
        result[name] = {**dict(zip(STATES, row, strict=False)), "workers": row[-1]}
    return result


def throughput(reader: Reader, name: str, parts: list[str] | None = None) -> dict[str, Any]:
    """Tasks that ended in the last hour (succeeded, and failed/cancelled/expired), in total and
    per 5-minute bucket, oldest bucket first; of the queues ``parts`` (default: ``name``)."""
    end = now_ms()
    step = HOUR_MS // BUCKETS
    pipe = reader.client.pipeline(transaction=False)
    for keys in [Keys(part) for part in parts or [name]]:
        for key in (keys.succeeded, keys.failed):
            for bucket in range(BUCKETS):
                start = end - HOUR_MS + bucket * step
                pipe.zcount(key, start, start + step - 1 if bucket < BUCKETS - 1 else "+inf")
    with translate_errors(reader.url):
        found = cast(list[int], pipe.execute())
    rows = [found[index : index + BUCKETS] for index in range(0, len(found), BUCKETS)]
    succeeded = [sum(column) for column in zip(*rows[0::2], strict=True)]
    failed = [sum(column) for column in zip(*rows[1::2], strict=True)]
    return {"succeeded": sum(succeeded), "failed": sum(failed),
            "succeeded_buckets": succeeded, "failed_buckets": failed,
            "bucket_seconds": step // 1000}  # fmt: skip


def queue_overview(reader: Reader, name: str) -> dict[str, Any]:
    """One queue: counts by state, oldest pending age, throughput, workers, and the functions
    with a backlog (among the next pending tasks) that no live worker runs; a sharded queue's
    summed over its shards (``shards``: their count)."""
    shards = reader.shard_count(name)
    parts = reader.parts(name, shards)
    infos = [queue_info(reader.queue(part)) for part in parts]
    ages = [one["oldest_pending_seconds"] for one in infos
            if one["oldest_pending_seconds"] is not None]  # fmt: skip
    info = {state: sum(one[state] for one in infos) for state in STATES}
    info["oldest_pending_seconds"] = max(ages, default=None)
    by_id = {worker.get("id"): worker for one in infos for worker in one["workers"]}
    workers = list(by_id.values())
    served: set[str] = set()
    for worker in workers:
        listed = json_or_text(worker.get("functions"))
        if isinstance(listed, list):
            served.update(str(function) for function in listed)
    backlog = Counter(
        function
        for part, one in zip(parts, infos, strict=True)
        if one["pending"]
        for function in pending_functions(reader.queue(part), BACKLOG_WINDOW)
    )
    functions = [{"function": function, "pending": count, "served": function in served}
                 for function, count in backlog.most_common()]  # fmt: skip
    return {"queue": name, "counts": {state: info[state] for state in STATES},
            "oldest_pending_seconds": info["oldest_pending_seconds"],
            "throughput": throughput(reader, name, parts), "workers": len(workers),
            "backlog": functions, "backlog_window": BACKLOG_WINDOW, "shards": shards}  # fmt: skip


def overview(reader: Reader) -> list[dict[str, Any]]:
    return [queue_overview(reader, name) for name in reader.queue_names()]


def worker_rows(reader: Reader, names: list[str]) -> list[dict[str, Any]]:
    """Every live worker key of the queues: its manifest, decoded, and its heartbeat age (a
    worker serving several shards of a sharded queue once, under the queue's name)."""
    rows = []
    sharded = reader.sharded()
    for name in names:
        with translate_errors(reader.url):
            listed = [live_workers(reader.client, Keys(part))
                      for part in reader.parts(name, sharded.get(name))]  # fmt: skip
        found = list({fields.get("id"): fields for one in listed for fields in one}.values())
        for fields in found:
            running = json_or_text(fields.get("running"))
            rows.append({
                "queue": name,
                "id": fields.get("id", "?"),
                "host": fields.get("host"),
                "pid": fields.get("pid"),
                "language": fields.get("language"),
                "implementation": fields.get("implementation"),
                "version": fields.get("version"),
                "concurrency": fields.get("concurrency"),
                "queues": json_or_text(fields.get("queues")),
                "functions": json_or_text(fields.get("functions")),
                "started": fields.get("started"),
                "heartbeat": fields.get("heartbeat"),
                "heartbeat_age_seconds": age(fields.get("heartbeat")),
                "running": running if isinstance(running, list) else [],
                "protocol": fields.get("protocol"),
            })  # fmt: skip
    return rows
