from __future__ import annotations

import pytest
from support import free_port

from dothis import ConnectionFailed, Queue
from dothis.store.connection import redact


def test_password_is_redacted() -> None:
    assert redact("redis://user:secret@host:1/0") == "redis://user:***@host:1/0"
    assert redact("redis://host:1/0") == "redis://host:1/0"


def test_unreachable_redis_names_url_and_fix() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    queue = Queue("q", url)
    with pytest.raises(ConnectionFailed) as caught:
        queue.enqueue("echo", text="x")
    message = str(caught.value)
    assert url in message
    assert "is redis-server running?" in message
    assert "DOTHIS_REDIS_URL" in message
