"""The worker: claims tasks and runs them through the engine (see ``worker.worker``)."""

from dothis.worker.options import WorkerOptions
from dothis.worker.worker import Worker

__all__ = ["Worker", "WorkerOptions"]
