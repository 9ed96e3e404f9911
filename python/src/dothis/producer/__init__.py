"""The producer: Queue (a ShardedQueue for ``shards=N``), Task handles, options, the ``@task``
decorators and eager mode."""

from dothis.producer.queue import Call, Queue, shared_queue
from dothis.producer.sharded import ShardedQueue
from dothis.producer.task import Task

__all__ = ["Call", "Queue", "ShardedQueue", "Task", "shared_queue"]
