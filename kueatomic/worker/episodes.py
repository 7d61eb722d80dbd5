"""Fault episodes of one worker loop: the first failure is logged and emitted as an "error"
event, the loop backs off (50 ms doubling to 2 s), and the first success after it logs that
the loop works again. Sans I/O: times are passed in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import is_outage

log = logging.getLogger("kueatomic.worker")

FIRST_PAUSE = 0.05
MAX_PAUSE = 2.0


class Episode:
    def __init__(self, loop: str, emit: Callable[..., Any]) -> None:
        self.loop = loop
        self.emit = emit
        self.pause = FIRST_PAUSE
        self.since: float | None = None  # when the current episode began
        self.failures = 0

    def failed(self, exc: BaseException, now: float) -> float:
        """Count a failure; returns the seconds to back off."""
        self.failures += 1
        if self.since is None:
            self.since = now
            if is_outage(exc):
                log.warning("%s loop: Redis unavailable (%s); keeping results and retrying "
                            "with backoff", self.loop, exc)
            else:
                log.error("%s loop: %s: %s", self.loop, type(exc).__name__, exc, exc_info=exc)
            self.emit("error", exc)
            pause = FIRST_PAUSE
        else:
            pause = self.pause
        self.pause = min(pause * 2, MAX_PAUSE)
        return pause

    def ok(self, now: float) -> None:
        if self.since is not None:
            log.info("%s loop: working again after %.1f s (%d failed calls)", self.loop,
                     now - self.since, self.failures)
        self.since = None
        self.failures = 0
        self.pause = FIRST_PAUSE

    def note(self, message: str) -> None:
        log.info("%s loop: %s", self.loop, message)
