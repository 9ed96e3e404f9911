"""The producer: Queue, Task handles, options, the ``@task`` decorators and eager mode."""

from dothis.producer.queue import Call, Queue, shared_queue
from dothis.producer.task import Task

__all__ = ["Call", "Queue", "Task", "shared_queue"]
