"""Deferred starts: while ``deferred()`` is active, Kue's shorthand ``queue.process()`` only
registers, so the ``kueatomic worker`` command can import a module, adjust concurrency, then
start every worker that got registrations during the import."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_deferring = 0
_workers: list[Any] = []


@contextlib.contextmanager
def deferred() -> Iterator[list[Any]]:
    """Within the block, starts are deferred; yields the workers that registered handlers."""
    global _deferring
    with _lock:
        _deferring += 1
        _workers.clear()
    try:
        yield _workers
    finally:
        with _lock:
            _deferring -= 1


def deferring(worker: Any) -> bool:
    """Whether a start of ``worker`` should wait for the CLI (remembers the worker)."""
    with _lock:
        if _deferring and all(w is not worker for w in _workers):
            _workers.append(worker)
        return bool(_deferring)
