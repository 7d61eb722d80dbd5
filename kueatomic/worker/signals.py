"""Signal handling for ``Queue.run()`` and the CLI only (never in a constructor): the first
SIGINT/SIGTERM stops gracefully, the second releases running jobs back to inactive at once.
A worker that refuses to run (``failed()`` turns true) is stopped gracefully as by a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.2  # how often the waits below look at failed()
log = logging.getLogger("kueatomic.worker")


def run_until_signalled(graceful: Callable[[], None], immediate: Callable[[], None],
                        failed: Callable[[], bool] = lambda: False) -> None:
    """Block the main thread until a signal arrives (or ``failed()``) and the graceful stop
    has finished."""
    done = threading.Event()
    received = 0

    def stop_gracefully() -> None:
        try:
            graceful()
        finally:
            done.set()

    def handle(signum: int, frame: Any) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("%s: stopping gracefully (again to stop at once)",
                     signal.Signals(signum).name)
            threading.Thread(target=stop_gracefully, name="kueatomic-shutdown", daemon=True).start()
        elif received == 2:
            log.info("stopping now: running jobs are released back to inactive")
            threading.Thread(target=immediate, name="kueatomic-abort", daemon=True).start()

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        while not done.wait(POLL_S):
            if received == 0 and failed():
                received = 1  # a signal now stops at once, as a second one would
                stop_gracefully()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def serve_until_signalled(graceful: Callable[[], Coroutine[Any, Any, None]],
                                immediate: Callable[[], Coroutine[Any, Any, None]],
                                failed: Callable[[], bool] = lambda: False) -> None:
    """The asyncio version: wait for a signal (or ``failed()``) on the running loop, then
    stop."""
    loop = asyncio.get_running_loop()
    first = asyncio.Event()
    received = 0

    def handle() -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.info("stopping gracefully (again to stop at once)")
            first.set()
        elif received == 2:
            log.info("stopping now: running jobs are released back to inactive")
            loop.create_task(immediate())

    for sig in SIGNALS:
        loop.add_signal_handler(sig, handle)
    try:
        while not first.is_set():
            if failed():
                received = max(received, 1)
                break
            try:
                await asyncio.wait_for(first.wait(), POLL_S)
            except TimeoutError:
                pass
        await graceful()
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
