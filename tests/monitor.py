"""Watch what clients send to a test Redis (MONITOR), for the "only Lua writes" tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis


@contextmanager
def sent_commands(url: str) -> Iterator[list[str]]:
    """Yield a list that fills with the first word (lower case) of every command a client
    sends to the Redis at ``url`` while the block runs; commands scripts run are left out."""
    admin = redis.Redis.from_url(url, decode_responses=True)
    sent: list[str] = []
    ready, stopped = threading.Event(), threading.Event()
    marker = f"kueatomic-monitor-stop-{uuid.uuid4().hex}"

    def watch() -> None:
        with admin.monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                text = command["command"]
                if marker in text:
                    stopped.set()
                    return
                if not text.startswith("MONITOR") and command.get("client_type") != "lua":
                    sent.append(text.split(" ", 1)[0].lower())

    threading.Thread(target=watch, daemon=True).start()
    assert ready.wait(5), "MONITOR did not start"
    try:
        yield sent
    finally:
        redis.Redis.from_url(url).echo(marker)  # everything sent before it has been seen
        assert stopped.wait(5), "MONITOR did not see the end marker"
        admin.close()
