"""`dothis worker --processes N`: N worker processes under one supervisor, as a user starts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import WorkerProcess, free_port, wait_until

from dothis import Queue
from dothis.wire.protocol import Field
from dothis.worker.supervisor import default_processes, slot_worker_id

pytestmark = pytest.mark.acceptance

TASKS = '''
import os
import time

from dothis import task


@task
def pid(pause: float = 0.0) -> int:
    """The pid of the worker process that ran it (inline pool: the worker itself)."""
    time.sleep(pause)
    return os.getpid()
'''

# Short leases, so that the tasks of a killed worker are recovered within a second or two.
FAST = ("--lease-ms", "1000", "--heartbeat-ms", "250", "--reap-ms", "250")


class Supervised(WorkerProcess):
    """``dothis worker`` with exactly the flags given (no ``--processes 1`` added), serving the
    test's task module."""

    def __init__(self, url: str, queue: str, *options: str, module: Path) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="dothis-supervisor-", suffix=".log", delete=False
        )
        args = [sys.executable, "-m", "dothis", "worker", "--url", url, "--queue", queue,
                "--pool", "inline", *options, str(module)]  # fmt: skip
        environment = {**os.environ, "DOTHIS_CONFIG": ""}
        environment.pop("DOTHIS_WORKER_PROCESSES", None)
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=environment, start_new_session=True)  # fmt: skip


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "tmpmod.py"
    path.write_text(TASKS)
    return path


@pytest.fixture
def supervise(url: str, queue_name: str, module: Path) -> Iterator[type[Supervised]]:
    started: list[Supervised] = []

    def start(*options: str, target: str = url) -> Supervised:
        process = Supervised(target, queue_name, *options, module=module)
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        process.stop()  # SIGKILL: the children die with it (PR_SET_PDEATHSIG)


def listed(r: redis.Redis, queue: str) -> set[str]:
    """The ids in the queue's registry of workers whose worker key is alive."""
    ids = {member.decode() for member in r.zrange(f"{queue}:workers", 0, -1)}
    return {worker for worker in ids if r.exists(f"{queue}:worker:{worker}")}


def worker_pid(r: redis.Redis, queue: str, worker: str) -> int:
    return int(r.hget(f"{queue}:worker:{worker}", "pid") or 0)


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_ids_of_the_slots() -> None:
    assert [slot_worker_id("w", slot) for slot in range(3)] == ["w", "w-2", "w-3"]
    assert slot_worker_id(None, 2) is None


def test_three_processes_share_the_queue(supervise, r: redis.Redis, url: str,
                                         queue_name: str) -> None:  # fmt: skip
    supervisor = supervise("--processes", "3", "--worker-id", "sup")
    ids = wait_until(lambda: listed(r, queue_name) == {"sup", "sup-2", "sup-3"} or None,
                     timeout=20)  # fmt: skip
    assert ids, supervisor.output()
    pids = {worker_pid(r, queue_name, worker) for worker in ("sup", "sup-2", "sup-3")}
    assert len(pids) == 3 and {parent_of(pid) for pid in pids} == {supervisor.process.pid}
    with Queue(queue_name, url) as queue:
        tasks = [queue.enqueue("pid", pause=0.1) for _ in range(30)]
        ran = {task.wait(timeout=30) for task in tasks}
    assert ran == pids, supervisor.output()  # every process took some


def test_a_killed_process_is_started_again(supervise, r: redis.Redis, url: str,
                                           queue_name: str) -> None:  # fmt: skip
    supervisor = supervise("--processes", "2", *FAST)
    first = wait_until(lambda: len(listed(r, queue_name)) == 2 and listed(r, queue_name),
                       timeout=20)  # fmt: skip
    with Queue(queue_name, url) as queue:
        doomed = queue.enqueue("pid", pause=2)
        owner = wait_until(lambda: r.hget(doomed.key, "worker"), timeout=15).decode()
        victim = worker_pid(r, queue_name, owner)
        os.kill(victim, signal.SIGKILL)
        # Another worker takes the slot, with an id of its own; the dead one's task is recovered.
        wait_until(lambda: len(listed(r, queue_name) - first) == 1, timeout=20)
        assert doomed.wait(timeout=30) != victim, supervisor.output()
        assert r.hget(doomed.key, "claims") == b"2"
        assert {task.wait(timeout=30) for task in [queue.enqueue("pid") for _ in range(10)]}
    assert r.llen(f"{queue_name}:pending") == r.llen(f"{queue_name}:executing") == 0
    assert f"worker process {victim} (slot " in supervisor.output()
    assert "was killed by SIGKILL" in supervisor.output()
    assert supervisor.process.poll() is None


def test_sigterm_lets_running_tasks_finish(supervise, r: redis.Redis, url: str,
                                           queue_name: str) -> None:  # fmt: skip
    supervisor = supervise("--processes", "2", "--worker-id", "drain")
    wait_until(lambda: listed(r, queue_name) == {"drain", "drain-2"}, timeout=20)
    children = [worker_pid(r, queue_name, worker) for worker in ("drain", "drain-2")]
    with Queue(queue_name, url) as queue:
        tasks = [queue.enqueue("pid", pause=1) for _ in range(2)]
        wait_until(lambda: all(r.hget(t.key, "state") == b"executing" for t in tasks),
                   timeout=15)  # fmt: skip
        supervisor.signal(signal.SIGTERM)
        assert supervisor.wait(timeout=40) == 0, supervisor.output()
        assert [task.refresh().outcome for task in tasks] == ["successful"] * 2
        assert {task.value for task in tasks} == set(children)
    assert not any(alive(pid) for pid in children)
    assert not listed(r, queue_name)  # every worker left


def test_a_service_manager_signalling_every_process_is_one_stop(
    supervise, r: redis.Redis, url: str, queue_name: str
) -> None:
    """systemd's default KillMode (control-group) sends SIGTERM to the supervisor and to every
    worker process at once, and the supervisor forwards its own: running tasks still finish
    (two copies of one stop are not a second signal that forces)."""
    supervisor = supervise("--processes", "2", "--worker-id", "unit")
    wait_until(lambda: listed(r, queue_name) == {"unit", "unit-2"}, timeout=20)
    children = [worker_pid(r, queue_name, worker) for worker in ("unit", "unit-2")]
    with Queue(queue_name, url) as queue:
        tasks = [queue.enqueue("pid", pause=1) for _ in range(2)]
        wait_until(lambda: all(r.hget(t.key, "state") == b"executing" for t in tasks),
                   timeout=15)  # fmt: skip
        for pid in (supervisor.process.pid, *children):
            os.kill(pid, signal.SIGTERM)
        assert supervisor.wait(timeout=40) == 0, supervisor.output()
        assert [task.refresh().outcome for task in tasks] == ["successful"] * 2
        assert [task.refresh().get(Field.CLAIMS) for task in tasks] == ["1", "1"]
    assert "returning running tasks to pending" not in supervisor.output()


def test_a_bad_url_stops_without_a_restart_loop(supervise) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    supervisor = supervise("--processes", "2", target=nowhere)
    assert supervisor.wait(timeout=60) == 1, supervisor.output()
    output = supervisor.output()
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors and len(set(errors)) == 1 and "cannot reach Redis" in errors[0], output
    assert len(errors) <= 3, output  # the two first processes, at most one started again
    assert output.count("ERROR dothis.supervisor") == 1 and "Traceback" not in output, output


def test_the_default_is_a_process_per_cpu(supervise, r: redis.Redis, queue_name: str) -> None:
    supervisor = supervise()
    expected = default_processes()
    assert expected == len(os.sched_getaffinity(0))
    wait_until(lambda: len(listed(r, queue_name)) == expected, timeout=20)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(timeout=40) == 0, supervisor.output()
