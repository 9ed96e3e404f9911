"""The bound: minimal redis-py loops that send only the protocol's commands, nothing else.

enqueue     per task: HSET <q>:task:<id> (4 fields) + LPUSH <q>:pending <id>, pipelined together,
            one round trip per task
bulk        the same commands, 1,000 tasks per round trip
drain-step  per task: LMOVE, then HSET (outcome), LREM, PUBLISH: one round trip per command
drain-batch 100 LMOVE in one round trip, then the 100 x (HSET, LREM, PUBLISH) in one more

Run: python raw.py --url URL --figure {enqueue,bulk,drain-step,drain-batch} --n N
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import datetime, timezone

import redis

from common import key_memory, redis_commands, redis_cpu, used_memory


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fields() -> dict[str, str]:
    return {"function": "noop", "state": "pending", "args": "{}", "pending-created": now()}


def enqueue(client: redis.Redis, q: str, n: int, batch: int) -> float:
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        task_id = str(uuid.uuid4())
        pipe.hset(f"{q}:task:{task_id}", mapping=fields())
        pipe.lpush(f"{q}:pending", task_id)
        if (i + 1) % batch == 0:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - started


def drain(client: redis.Redis, q: str, n: int, batch: int) -> float:
    pending, executing, results = f"{q}:pending", f"{q}:executing", f"{q}:results"
    started = time.perf_counter()
    done = 0
    if batch == 1:
        while done < n:
            entry = client.lmove(pending, executing, "RIGHT", "LEFT")
            if entry is None:
                break
            key = f"{q}:task:{entry.decode()}"
            client.hset(key, mapping={"state": "finished", "result": "successful",
                                      "result-value": "null", "finished-created": now()})
            client.lrem(executing, 1, entry)
            client.publish(results, key)
            done += 1
    else:
        while done < n:
            pipe = client.pipeline(transaction=False)
            for _ in range(min(batch, n - done)):
                pipe.lmove(pending, executing, "RIGHT", "LEFT")
            entries = [e for e in pipe.execute() if e is not None]
            if not entries:
                break
            stamp = now()
            for entry in entries:
                key = f"{q}:task:{entry.decode()}"
                pipe.hset(key, mapping={"state": "finished", "result": "successful",
                                        "result-value": "null", "finished-created": stamp})
                pipe.lrem(executing, 1, entry)
                pipe.publish(results, key)
            pipe.execute()
            done += len(entries)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--figure", required=True,
                        choices=["enqueue", "bulk", "drain-step", "drain-batch"])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queue", default="bench")
    opts, _ = parser.parse_known_args()  # --log, -c: accepted for the common driver interface
    client = redis.Redis.from_url(opts.url)
    client.flushall()
    q, n = opts.queue, opts.n
    if opts.figure in ("enqueue", "bulk"):
        enqueue(client, q, 10, 10)  # warm up
        client.flushall()
        client.execute_command("MEMORY", "PURGE")
        mem0 = used_memory(client)
        seconds = enqueue(client, q, n, 1 if opts.figure == "enqueue" else 1000)
        client.execute_command("MEMORY", "PURGE")
        result = {"rate": n / seconds, "seconds": seconds, "n": n,
                  "memory_per_task": (used_memory(client) - mem0) / n,
                  "key_usage_per_task": key_memory(client)[1] / n}
    else:
        enqueue(client, q, n, 1000)
        cpu0, cmd0 = redis_cpu(client), redis_commands(client)
        seconds = drain(client, q, n, 1 if opts.figure == "drain-step" else 100)
        left = client.llen(f"{q}:pending") + client.llen(f"{q}:executing")
        if left:
            raise SystemExit(f"raw drain left {left} entries")
        result = {"rate": n / seconds, "steady_rate": n / seconds, "seconds": seconds, "n": n,
                  "redis_cpu_per_task_us": (redis_cpu(client) - cpu0) / n * 1e6,
                  "redis_commands_per_task": (redis_commands(client) - cmd0) / n}
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
