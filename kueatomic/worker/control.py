"""Deferred starts: while ``deferred()`` is active, ``process()`` only registers workers, so
the ``kueatomic worker`` command can import a module, adjust concurrency, then start them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_deferring = 0
_queues: list[Any] = []


@contextlib.contextmanager
def deferred() -> Iterator[list[Any]]:
    """Within the block, ``process()`` defers; yields the list of queues that deferred."""
    global _deferring
    with _lock:
        _deferring += 1
        _queues.clear()
    try:
        yield _queues
    finally:
        with _lock:
            _deferring -= 1


def deferring(queue: Any) -> bool:
    """Whether ``process()`` on ``queue`` should only register (remembers the queue)."""
    with _lock:
        if _deferring and all(q is not queue for q in _queues):
            _queues.append(queue)
        return bool(_deferring)
