"""The worker's batches: commands queued together go out in one write and each caller gets its
own reply (parsed as redis-py parses it), its own refusal, or the connection's failure."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from dothis.store.batching import Batcher
from dothis.store.connection import connect_async

pytestmark = pytest.mark.integration


async def _with_batcher(url: str, body: Any, **options: Any) -> Any:
    client = redis.asyncio.Redis.from_url(url, protocol=2, **options) if options \
        else connect_async(url)  # fmt: skip
    echo = client.register_script("return ARGV[1]")
    try:
        return await body(Batcher(client, {"echo": echo}), echo.sha)
    finally:
        await client.aclose()


def test_replies_come_back_in_order_each_to_its_caller(url: str, r: redis.Redis) -> None:
    r.set("batch:text", "not a list")
    r.hset("batch:hash", mapping={"a": "1", "b": "2"})

    async def body(batcher: Batcher, sha: str) -> list[Any]:
        futures = [batcher.submit(None, ("INCR", "batch:counter")) for _ in range(300)]
        futures.append(batcher.submit(None, ("LMOVE", "batch:text", "batch:x", "RIGHT", "LEFT")))
        futures.append(batcher.submit(None, ("HGETALL", "batch:hash")))
        futures.append(batcher.submit("echo", ("EVALSHA", sha, 0, "hello")))
        return await asyncio.gather(*futures, return_exceptions=True)

    replies = asyncio.run(_with_batcher(url, body))
    assert replies[:300] == list(range(1, 301))  # limit 500: one batch, in order
    assert isinstance(replies[300], redis.ResponseError) and "WRONGTYPE" in str(replies[300])
    assert replies[301] == {b"a": b"1", b"b": b"2"}  # redis-py's HGETALL callback applied
    assert replies[302] == b"hello"


def test_a_script_missing_from_the_cache_is_loaded_and_run(url: str, r: redis.Redis) -> None:
    async def body(batcher: Batcher, sha: str) -> list[Any]:
        assert await batcher.send("echo", ("EVALSHA", sha, 0, "first")) == b"first"
        r.script_flush()
        return await asyncio.gather(*(batcher.submit("echo", ("EVALSHA", sha, 0, str(n)))
                                      for n in range(3)))  # fmt: skip

    assert asyncio.run(_with_batcher(url, body)) == [b"0", b"1", b"2"]


def test_a_killed_connection_fails_its_batch_and_the_next_reconnects(
    url: str, r: redis.Redis
) -> None:
    async def body(batcher: Batcher, sha: str) -> tuple[list[Any], Any]:
        assert await batcher.send(None, ("CLIENT", "SETNAME", "batcher")) in (b"OK", True)
        killed = r.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        outcomes = []
        for _ in range(3):  # the dead connection fails at most one batch, then a new one works
            try:
                outcomes.append(await batcher.send(None, ("PING",)))
                break
            except redis.ConnectionError as error:
                outcomes.append(error)
        return outcomes, await batcher.send(None, ("ECHO", "after"))

    outcomes, after = asyncio.run(_with_batcher(url, body))
    assert outcomes[-1] is True or outcomes[-1] == b"PONG"
    assert all(isinstance(o, redis.ConnectionError) for o in outcomes[:-1]) and len(outcomes) <= 2
    assert after == b"after"


def test_a_server_that_does_not_answer_times_the_batch_out(url: str, r: redis.Redis) -> None:
    async def body(batcher: Batcher, sha: str) -> tuple[BaseException, float, Any]:
        await batcher.send(None, ("PING",))
        r.client_pause(1500, all=True)
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError) as raised:
            await batcher.send(None, ("GET", "batch:nothing"))
        took = time.monotonic() - started
        deadline = time.monotonic() + 10
        while True:  # a new connection once the pause is over
            try:
                return raised.value, took, await batcher.send(None, ("ECHO", "back"))
            except redis.TimeoutError:
                assert time.monotonic() < deadline

    error, took, back = asyncio.run(_with_batcher(url, body, socket_timeout=0.3))
    assert "Timeout" in str(error) and took < 1.2
    assert back == b"back"


def test_a_producer_sends_its_commands_in_one_write(url: str, r: redis.Redis) -> None:
    from dothis.store.batching import Direct
    from dothis.store.connection import connect

    r.set("direct:text", "not a list")
    r.hset("direct:hash", mapping={"a": "1"})
    client = connect(url)
    try:
        direct = Direct.of(client)
        assert direct is not None
        replies = direct.send([("INCR", "direct:n"), ("LPUSH", "direct:text", "x"),
                               ("HGETALL", "direct:hash"), ("INCR", "direct:n")])  # fmt: skip
        assert replies[0] == 1 and replies[3] == 2  # in order, around the refusal
        assert isinstance(replies[1], redis.ResponseError) and "WRONGTYPE" in str(replies[1])
        assert replies[2] == {b"a": b"1"}
        client.client_setname("direct")
        assert r.client_kill_filter(_type="normal", skipme=True) >= 1
        with contextlib.suppress(redis.ConnectionError):  # the dead connection fails at most
            direct.send([("PING",)])  # this call; the next one reconnects
        assert direct.send([("ECHO", "after")]) == [b"after"]
    finally:
        client.close()


def test_threads_sending_at_once_through_one_producer_each_get_their_replies(
    url: str, r: redis.Redis
) -> None:
    import threading

    from dothis.store.batching import Direct
    from dothis.store.connection import connect

    client = connect(url)
    try:
        direct = Direct.of(client)
        assert direct is not None
        # A send blocked in Redis holds the connection the producer keeps; another thread's send
        # goes on a pooled one and does not wait for it.
        blocked: list[Any] = []
        holder = threading.Thread(target=lambda: blocked.append(
            direct.send([("BLPOP", "direct:nothing", 1)])))  # fmt: skip
        holder.start()
        deadline = time.monotonic() + 5
        while not any(client["cmd"] == "blpop" for client in r.client_list()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        assert direct.send([("ECHO", "meanwhile")]) == [b"meanwhile"]
        assert time.monotonic() - started < 0.5
        holder.join(5)
        assert blocked == [[None]]
        assert direct.send([("ECHO", "after")]) == [b"after"]
    finally:
        client.close()


def test_a_forked_process_does_not_send_on_the_connection_its_parent_kept(url: str) -> None:
    import os

    from dothis.store.batching import Direct
    from dothis.store.connection import connect

    client = connect(url)
    try:
        direct = Direct.of(client)
        assert direct is not None
        parent_id = direct.send([("CLIENT", "ID")])[0]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own connection, or it would read the parent's replies
            try:
                os.write(write_end, str(direct.send([("CLIENT", "ID")])[0]).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        child_id = int(os.read(read_end, 64) or b"0")
        os.waitpid(pid, 0)
        os.close(read_end)
        assert child_id and child_id != parent_id
        assert direct.send([("CLIENT", "ID")])[0] == parent_id  # the parent's is untouched
    finally:
        client.close()
