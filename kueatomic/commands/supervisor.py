"""The process supervisor behind ``kueatomic worker --processes N``.

It keeps N children running, each a ``kueatomic worker ... --processes 1`` of its own:

- A child that exits while we are not stopping (any status, SIGKILL included) is logged with
  its pid and how it ended, and a replacement starts at once. Deaths in a row back off:
  the first replacement starts at once, then after 0.5 s, 1 s, 2 s ... up to 30 s; a child that
  had lived 30 s before it died resets the series, so a module that crashes on import does not
  spin, and a worker killed once a day is replaced at once.
- Status 2 is the CLI's "configuration refused" code (bad MODULE:ATTR, no handlers, an
  invalid option): when a child exits with it before any child has run for 30 s, a new child
  would fail the same way, so the supervisor stops the others and exits 2.
- SIGTERM/SIGINT: SIGTERM goes to every child once (they stop gracefully), nothing is
  replaced any more, and the supervisor waits for them. Each further signal forwards SIGTERM
  again: a child's second signal fails its running jobs with "Shutdown" and stops at once.
  The exit status is 0 when every child exited 0 after the stop (or was ended by that
  SIGTERM: a child still starting up has no handler yet), else 1.
- Children run in sessions of their own, so a terminal's Ctrl-C reaches only the supervisor,
  which forwards it exactly once. On Linux a child also gets SIGTERM if the supervisor itself
  dies (``PR_SET_PDEATHSIG``), so a killed supervisor leaves no orphan workers.

Everything is logged through ``logging.getLogger("kueatomic.supervisor")``. The loop sleeps
in ``select`` on a self-pipe written by ``signal.set_wakeup_fd``, so SIGCHLD, SIGTERM and
SIGINT wake it at once; the signal handlers only record the signal.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

log = logging.getLogger("kueatomic.supervisor")

FIRST_DELAY = 0.5  # seconds before the second replacement in a row
MAX_DELAY = 30.0
STABLE_AFTER = 30.0  # a child that lived this long resets the back-off
CONFIG_REFUSED = 2  # the CLI's exit status for a refused configuration
PR_SET_PDEATHSIG = 1
# After a stop: status 0, or killed by the SIGTERM we sent (a child still starting up has
# no handler yet; systemd counts SIGTERM as a clean exit too).
CLEAN_STOP = (0, -signal.SIGTERM)


def describe(returncode: int) -> str:
    """``SIGKILL`` for -9, ``status 3`` for 3."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"


class _Slot:
    """One of the N places a child runs in."""

    __slots__ = ("process", "restart_at", "returncode", "started")

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.restart_at: float | None = None
        self.returncode: int | None = None


class Supervisor:
    """Run ``command`` in ``processes`` children until a signal stops them; :meth:`run` in
    the main thread returns the exit status."""

    def __init__(self, command: Sequence[str], processes: int, what: str = "") -> None:
        self.command = list(command)
        self.slots = [_Slot() for _ in range(processes)]
        self.what = what or " ".join(self.command)
        self.failures = 0  # deaths in a row of children that lived < STABLE_AFTER
        self.stable = False  # some child has run STABLE_AFTER seconds
        self.stops = 0  # stop signals handled so far
        self.fatal: int | None = None
        self._received: list[int] = []
        self._preexec = _die_with_parent_hook()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        try:
            log.info("kueatomic worker %d: supervising %d processes of %s", os.getpid(),
                     len(self.slots), self.what)
            log.debug("child command: %s", " ".join(self.command))
            for slot in self.slots:
                self._start(slot)
            while True:
                self._handle_signals()
                self._reap()
                if self.stops and all(slot.process is None for slot in self.slots):
                    break
                self._start_due()
                self._sleep(read_fd, self._timeout())
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(read_fd)
            os.close(write_fd)
        if self.fatal is not None:
            return self.fatal
        codes = [slot.returncode for slot in self.slots]
        if all(code in CLEAN_STOP for code in codes):
            log.info("stopped: %s exited cleanly", _children(len(self.slots)))
            return 0
        log.warning("children ended with %s", ", ".join(
            "no child (waiting to be replaced)" if code is None else describe(code)
            for code in codes))
        return 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record it: the loop (woken through the wakeup fd) does the work.
        if signum != signal.SIGCHLD:
            self._received.append(signum)

    def _sleep(self, read_fd: int, timeout: float) -> None:
        try:
            select.select([read_fd], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries select
            pass
        try:
            while os.read(read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def _timeout(self) -> float:
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        if not due or self.stops:
            return 1.0
        return max(0.0, min(1.0, min(due) - time.monotonic()))

    # -- signals ----------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        while self._received:
            self.stop(signal.Signals(self._received.pop(0)).name)

    def stop(self, reason: str) -> None:
        """Stop replacing children and forward SIGTERM to every running child (again on
        each call: a child's second signal stops it at once)."""
        self.stops += 1
        for slot in self.slots:
            slot.restart_at = None
        running = [slot.process for slot in self.slots if slot.process is not None]
        if self.stops == 1:
            log.info("%s: stopping %s gracefully (again to stop at once)", reason,
                     _children(len(running)))
        else:
            log.info("%s again: telling %s to stop at once", reason, _children(len(running)))
        for process in running:
            try:
                process.send_signal(signal.SIGTERM)
            except OSError:  # pragma: no cover - exited and reaped meanwhile
                pass

    # -- children ---------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        try:
            # Own session: a terminal's Ctrl-C reaches only us, and we forward it once.
            # preexec_fn is safe here: the supervisor runs no other threads.
            process = subprocess.Popen(self.command, start_new_session=True,
                                       preexec_fn=self._preexec)  # noqa: PLW1509
        except OSError as exc:
            delay = self._next_delay() or FIRST_DELAY
            log.error("cannot start a child (%s); trying again in %.1f s", exc, delay)
            slot.restart_at = time.monotonic() + delay
            return
        slot.process, slot.started, slot.returncode = process, time.monotonic(), None
        log.info("started child %d", process.pid)

    def _start_due(self) -> None:
        if self.stops:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and slot.restart_at is not None and slot.restart_at <= now:
                self._start(slot)

    def _next_delay(self) -> float:
        delay = 0.0 if self.failures == 0 else min(FIRST_DELAY * 2 ** (self.failures - 1),
                                                   MAX_DELAY)
        self.failures += 1
        return delay

    def _reap(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            if now - slot.started >= STABLE_AFTER:
                self.stable = True
            code = process.poll()
            if code is None:
                continue
            slot.process, slot.returncode = None, code
            lived = now - slot.started
            if self.stops:
                log.log(logging.INFO if code in CLEAN_STOP else logging.WARNING,
                        "child %d exited with %s", process.pid, describe(code))
                continue
            if lived >= STABLE_AFTER:
                self.failures = 0
            if code == CONFIG_REFUSED and not self.stable:
                log.error("child %d exited with status 2 after %.1f s: its configuration was "
                          "refused (see its message above), a replacement would fail the "
                          "same way; stopping", process.pid, lived)
                self.fatal = CONFIG_REFUSED
                self.stop("configuration refused")
                continue
            delay = self._next_delay()
            if delay:
                log.warning("child %d exited with %s after %.1f s; starting a replacement in "
                            "%.1f s (children keep dying)", process.pid, describe(code), lived,
                            delay)
            else:
                log.warning("child %d exited with %s; starting a replacement", process.pid,
                            describe(code))
            slot.restart_at = now + delay


def _children(count: int) -> str:
    return "1 child" if count == 1 else f"{count} children"


def _die_with_parent_hook() -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that makes the child get SIGTERM when we die."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover
        return None
    parent = os.getpid()

    def hook() -> None:  # runs in the child between fork and exec: no logging here
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # we died before the prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook
