"""Coalesced creates: concurrent ``save()`` calls of new jobs ride in one create_jobs call.

Web handlers and asyncio services create jobs one at a time from many concurrent callers.
Sent one by one, each is a round trip and a script call, and a few hundred at once exhaust
the connection pool. Here the first caller goes out at once (no added latency without
concurrency); callers that arrive while its call is in flight wait, and the next of them
takes all that waited in one call, as ``create_bulk`` would. Each caller gets its own id or
its own error: a call that Redis refused (it wrote nothing) is sent again job by job, so one
job's refusal never becomes another's; an outage reaches every caller of the call, as it
would have reached each of them alone.

``Coalescer`` is the bookkeeping, shared by the sync queue (threads, a Condition) and the
asyncio one (tasks, an asyncio.Condition); it does no I/O and takes no lock itself.
"""

from __future__ import annotations

from typing import Any

from .errors import KueError, RedisUnavailable, is_outage


class Pending:
    """One waiting create: its encoded block, then its id or its error."""

    __slots__ = ("block", "done", "error", "job_id", "lead", "wake")

    def __init__(self, block: Any) -> None:
        self.block = block
        self.wake: Any = None  # the asyncio queue's future for this caller
        self.lead = False  # this caller sends the next call
        self.done = False
        self.job_id: int | None = None
        self.error: BaseException | None = None

    def ready(self) -> bool:
        """The caller may go on: to send (lead) or to return (done)."""
        return self.done or self.lead

    def outcome(self) -> int:
        if self.error is not None:
            raise self.error
        assert self.job_id is not None
        return self.job_id


class Coalescer:
    """Who sends the next create call, and what it carries. Call under the caller's lock."""

    def __init__(self) -> None:
        self.waiting: list[Pending] = []
        self.sending = False

    def arrive(self, block: Any) -> Pending:
        entry = Pending(block)
        self.waiting.append(entry)
        if not self.sending:
            self.sending = entry.lead = True
        return entry

    def take(self) -> list[Pending]:
        """Everything waiting, for the leader's call."""
        batch, self.waiting = self.waiting, []
        return batch

    def finished(self, batch: list[Pending]) -> list[Pending]:
        """The call is over: its callers are done; the first of the next ones leads.
        Returns the callers to wake, the next leader first: its call goes out while the
        others are still being woken."""
        for entry in batch:
            entry.done = True
        if self.waiting:
            self.waiting[0].lead = True
            return [self.waiting[0], *batch]
        self.sending = False
        return batch


def hand_out(batch: list[Pending], ids: list[int] | None, error: BaseException | None) -> bool:
    """Hand out a call's ids, or its error. True when the call must be sent again job by
    job: Redis refused it (so it wrote nothing) and it carried more than one caller's job."""
    if error is None:
        assert ids is not None
        for entry, job_id in zip(batch, ids):
            entry.job_id = job_id
        return False
    if len(batch) > 1 and isinstance(error, KueError) and not is_outage(error):
        return True
    if not isinstance(error, Exception):  # the sending caller was cancelled or interrupted
        error = RedisUnavailable(
            f"the create call carrying this job was interrupted ({type(error).__name__}) in "
            "the caller that sent it; the job may or may not have been created")
    for entry in batch:
        entry.error = error
    return False
