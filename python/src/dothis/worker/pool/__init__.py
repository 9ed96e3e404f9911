"""Where plain (sync) task functions run: a pool of child processes, so that a try can be stopped,
or a pool of threads.

**Processes.** Each child is forked from the worker once, so it has every registered function,
and then runs one function at a time for the worker. Messages on its socket are JSON (never
pickle), each framed by its 8-byte length. A try that outlives its timeout gets its child SIGKILLed
and replaced; a child that dies mid-try (a signal, ``os._exit``, a crash in native code) is
replaced and the try ends as ``crashed`` (its end is watched through a pidfd too, since a process
the task forked may keep the socket open). Children die with the worker (PR_SET_PDEATHSIG) and exit
when their socket closes.

A try must not be able to harm the tries after it:

- every request carries its try's number and a fresh nonce, and the reply must repeat them with
  the child's token (random, made for this child after the fork) and the child's pid; any other
  reply (a process the task forked, writing on the inherited socket) is refused: the child is
  replaced and the try ends ``crashed``. The child itself never answers from another pid: when a
  fork inside the task returns in both processes, the forked one ``_exit``s;
- fds 0, 1 and 2 (and ``sys.stdin``, ``sys.stdout``, ``sys.stderr``) are restored after every try,
  and the socket is never one of them;
- SIGTERM and SIGINT do nothing in a child (a ``systemctl stop`` or Ctrl-C reaches the whole
  process group): the worker decides, and SIGKILLs a child it wants gone.

**Threads.** A thread cannot be stopped: a try that outlives its timeout (or is cancelled) leaves
its thread running in the background, its result ignored, and the next try gets another thread.
"""

from dothis.worker.pool.batches import ProcessPool
from dothis.worker.pool.child import _Serving, set_parent_death_signal
from dothis.worker.pool.parent import Child, ChildCrashed, ForeignReply, check_reply

__all__ = [
    "Child",
    "ChildCrashed",
    "ForeignReply",
    "ProcessPool",
    "_Serving",
    "check_reply",
    "set_parent_death_signal",
]
