"""The worker's side of the process pool: a handle on each child, its socket and its pidfd
watched once for the child's whole life."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from dothis.engine.context import TaskContext
from dothis.engine.registry import Registry
from dothis.engine.tries import TryResult, from_message
from dothis.worker.pool.child import HEADER, child_main, send_frame

log = logging.getLogger("dothis.pool")

# A reply longer than this is not one a child sends (its value is within max-value-bytes).
_MIN_REPLY_LIMIT = 64 * 1024 * 1024


class ChildCrashed(Exception):
    """The child process running a try died."""


class ForeignReply(Exception):
    """The child's socket carried something that is not the reply to the try it runs."""


def check_reply(data: bytes, *, token: str, try_id: int, nonce: str, pid: int) -> TryResult:
    """The result a reply carries, if it is the reply of child ``pid`` to this try."""
    try:
        got_token, got_try, got_nonce, got_pid, message = json.loads(data)
        result = from_message(message)
    except Exception as error:  # anything that does not parse as one of the pool's replies
        raise ForeignReply(
            f"a message that is not one of the pool's replies ({error!r:.80})"
        ) from None
    if not (isinstance(got_token, str) and hmac.compare_digest(got_token, token)):
        raise ForeignReply("a reply without the child's token")
    if got_try != try_id or got_nonce != nonce:
        raise ForeignReply(f"a reply to another try ({got_try!r:.20}, not {try_id})")
    if got_pid != pid:
        raise ForeignReply(f"a reply from process {got_pid!r:.20}, not from the child {pid}")
    return result


class Child:
    def __init__(self, registry: Registry, siblings: list[socket.socket]) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child: keep only its own end
            try:
                parent_end.close()
                for other in siblings:
                    other.close()
                child_main(child_end, registry)
            finally:
                os._exit(0)
        child_end.close()
        self.pid = pid
        self.sock = parent_end
        self.token = secrets.token_hex(16)  # made after the fork: no child forked before has it
        self.tries = 0
        self._nonces: list[str] = []  # drawn 256 at a time: one getrandom, not one per try
        self.stopping: asyncio.Future[int] | None = None
        send_frame(self.sock, json.dumps(self.token).encode())  # a few bytes: never blocks
        self.sock.setblocking(False)
        # Readable when the child ends: a process the task forked may hold the child's end of
        # the socket open, so the end of the stream alone does not tell.
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(pid)
        self._loop: asyncio.AbstractEventLoop | None = None  # watching the socket and pidfd
        self._buffer = bytearray()  # bytes read, not yet a whole frame
        self._backlog = bytearray()  # bytes of frames not yet written (the socket was full)
        self._frames: collections.deque[bytes] = collections.deque()  # frames no try asked for
        self._on_frame: Callable[[bytes], None] | None = None  # who takes each reply
        self._on_end: Callable[[Exception], None] | None = None  # who hears of the child's end
        self._ended = False
        self.reply_limit = _MIN_REPLY_LIMIT

    def stray_output(self) -> bool:
        """Whether the socket had something between tries (a message no try asked for, or the
        end of a child that died)."""
        if self._frames or self._buffer or self._ended:
            return True
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # b"": the end of the stream
        except BlockingIOError:
            return False
        except OSError:
            pass
        return True

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the socket, and notice the child's end, for as long as the child lives: no
        registration with the event loop per try."""
        if self._loop is not None:
            return
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)
        if self.pidfd is not None:
            loop.add_reader(self.pidfd, self._process_ended)

    def _unwatch(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        loop.remove_reader(self.sock.fileno())
        if self._backlog:
            loop.remove_writer(self.sock.fileno())
            self._backlog.clear()
        if self.pidfd is not None:
            loop.remove_reader(self.pidfd)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._end(ChildCrashed(str(error)))
            return
        if not data:
            self._end(ChildCrashed("its socket closed"))
            return
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if size > self.reply_limit:
                self._end(ForeignReply(f"a frame of {size} bytes, longer than any reply"))
                return
            if len(self._buffer) < HEADER.size + size:
                return
            frame = bytes(self._buffer[HEADER.size : HEADER.size + size])
            del self._buffer[: HEADER.size + size]
            if self._on_frame is not None:
                self._on_frame(frame)
            else:
                self._frames.append(frame)  # nothing asked for it: stray output

    def _process_ended(self) -> None:
        """The child is gone: a reply it sent first still counts."""
        while self._loop is not None and not self._ended:
            before = len(self._buffer) + len(self._frames)
            self._readable()
            if len(self._buffer) + len(self._frames) == before:
                break
        self._end(ChildCrashed("it ended without a reply"))

    def _end(self, error: Exception) -> None:
        if self._ended:
            return
        self._ended = True
        self._unwatch()  # an ended stream stays readable: it must not wake the loop again
        if self._on_end is not None:
            self._on_end(error)

    def keep_stray(self, frame: bytes) -> None:
        """A frame no try asked for: ``stray_output`` says so from now on."""
        self._frames.append(frame)

    def kill(self) -> None:
        """SIGKILL the child now (``stop`` collects it)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def drain(self) -> None:
        """Take what the socket holds now (before deciding that a try went unanswered)."""
        if self._loop is not None and not self._ended:
            self._readable()

    def listen(
        self, on_frame: Callable[[bytes], None], on_end: Callable[[Exception], None]
    ) -> None:
        """Hand every frame the child sends to ``on_frame``, and its end to ``on_end``."""
        self._on_frame, self._on_end = on_frame, on_end
        self._watch(asyncio.get_running_loop())
        if self._ended:
            on_end(ChildCrashed("it had ended"))

    def request(self, name: str, args: dict[str, Any], max_value_bytes: int,
                task: TaskContext | None) -> tuple[int, str, list[Any]]:  # fmt: skip
        """A try for this child: its number, its nonce and the request to send."""
        self.tries += 1
        if not self._nonces:  # from the parent's CSPRNG: no child can know a nonce not yet sent
            drawn = secrets.token_hex(8 * 256)
            self._nonces = [drawn[start : start + 16] for start in range(0, len(drawn), 16)]
        try_id, nonce = self.tries, self._nonces.pop()
        message = task.to_message() if task is not None else None
        return try_id, nonce, [try_id, nonce, name, args, max_value_bytes, message]

    def send(self, kind: str, items: list[Any]) -> None:
        """One frame: ``run`` with tries, or ``withdraw`` with the numbers of tries not to run.
        Written now as far as the socket takes it; the rest (behind which later frames queue)
        as the socket drains, while the child is watched."""
        if self._ended:
            raise ChildCrashed("it had ended")
        body = json.dumps([kind, items]).encode()
        frame = HEADER.pack(len(body)) + body
        if self._backlog:
            self._backlog += frame
            return
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            raise ChildCrashed(str(error)) from error
        if sent < len(frame):
            if self._loop is None:
                self._watch(asyncio.get_running_loop())
            assert self._loop is not None
            self._backlog = bytearray(frame[sent:])
            self._loop.add_writer(self.sock.fileno(), self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._backlog)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._end(ChildCrashed(str(error)))
            return
        del self._backlog[:sent]
        if not self._backlog and self._loop is not None:
            self._loop.remove_writer(self.sock.fileno())

    async def stop(self, grace: float = 0.0) -> int:
        """Stop the child and collect it (once, however often it is called); its exit status.
        With ``grace``, an idle child is first asked to end (it runs its shutdown hooks) and
        given that many seconds; then, or at once, it is killed."""
        if self.stopping is None:
            self.stopping = asyncio.ensure_future(self._stop(grace))
        return await asyncio.shield(self.stopping)

    async def _stop(self, grace: float) -> int:
        if grace > 0:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self._close_fds()
                    return status
                await asyncio.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._close_fds()
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, self.pid, 0)
        return status

    def _close_fds(self) -> None:
        self._unwatch()
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def exit_description(self, status: int) -> str:
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exited with status {os.WEXITSTATUS(status)}"
