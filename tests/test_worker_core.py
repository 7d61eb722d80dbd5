"""``WorkerCore`` driven through the real loop generators of ``kueatomic.worker.loops`` by a
small fake runtime: a fake clock, a scripted fake Redis, no threads, sockets or sleeps.

One table of cases (``CASES``), each a scripted conversation: which loops run, which jobs are
already claimed (``held``) or waiting (``inactive``), what Redis answers (``faults``: per
script, the replies of its next calls), how long handlers take, when a shutdown begins, and
``got(world) == want``. Every case runs once per runtime, with the core built as that runtime
builds it (threaded: a ``threading.Lock``, here one that fails instead of deadlocking when the
core takes it twice; asyncio: no lock, and an abandoned job's task is cancelled). After every
step the slots must add up: free + claimed-or-running + reserved for reclaims == concurrency.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from kueatomic import scripts
from kueatomic.driver import command_of, map_error
from kueatomic.errors import RedisUnavailable, ScriptError, from_script_error
from kueatomic.keyspace import Keys
from kueatomic.ops import Call, Read
from kueatomic.states import DATA_FORMAT
from kueatomic.worker import calls
from kueatomic.worker.core import FLUSH_WAIT_S, NEVER, STICKY, WorkerCore
from kueatomic.worker.loops import (
    Abandon,
    Run,
    Send,
    Wait,
    claim_loop,
    flush_loop,
    housekeeping_loop,
    stop_loop,
)
from kueatomic.worker.registration import QUEUED, RUNNING, InFlight, Registration
from kueatomic.worker.settings import WorkerSettings

KEYS = Keys("q")
# repeats=False: the scheduler's calls have their own tests (tests/test_repeats.py)
BASE = {"lease_ms": 3000, "upkeep_interval_ms": 1000, "block_timeout_ms": 100, "repeats": False}
RUNTIMES = ("threaded", "asyncio")


# A fault in Case.faults: None is a healthy reply, a KueError the call's error reply (it did
# nothing), any other value the reply itself; or one of these:
@dataclass(frozen=True)
class Lost:  # the script ran, but its reply was lost: the whole batch raises exc
    exc: BaseException


@dataclass(frozen=True)
class Down:  # the whole batch raises exc, nothing ran
    exc: BaseException


@dataclass(frozen=True)
class Slow:  # the script runs, its reply comes `seconds` later
    seconds: float


@dataclass(frozen=True)
class LateDown:  # nothing ran, and the whole batch raises exc only `seconds` later
    seconds: float
    exc: BaseException


def unavailable() -> RedisUnavailable:
    return RedisUnavailable("Redis at memory://x is unreachable (Connection reset by peer)")


OOM = "OOM command not allowed when used memory > 'maxmemory'."
NIL = ("ERR Error running script (call to f_1): @user_script:9: user_script:9: attempt to "
       "index a nil value")


@dataclass(kw_only=True)
class Case:
    id: str
    loops: tuple[str, ...]  # of "claim", "flush", "housekeeping"
    got: Callable[[World], Any]
    want: Any
    held: tuple[tuple[int, str], ...] = ()  # claimed at t=0: (id, queued|running|ok|fail)
    inactive: tuple[int, ...] = ()
    fields: dict[int, dict[str, str]] = field(default_factory=dict)
    faults: dict[str, list[Any]] = field(default_factory=dict)  # script -> its next replies
    run_s: float | None = 0.0  # how long a handler runs (None: hangs); per job in handler
    handler: dict[int, float | None] = field(default_factory=dict)
    stop: tuple[float, float | None, bool] | None = None  # at s: (timeout_ms, fail_running)
    settings: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 4
    batch: int = 100
    upkeep: bool = False
    check_format: bool = False  # the runtimes' data-format check before the first claim
    until: float = 1.0  # fake seconds
    setup: Callable[[World], Any] | None = None


class CheckedLock:
    """The threaded runtime's ``threading.Lock``, failing where two threads would deadlock."""

    def __init__(self) -> None:
        self.lock, self.held = threading.Lock(), False

    def __enter__(self) -> None:
        assert self.lock.acquire(blocking=False), "the core took its own lock twice"
        self.held = True

    def __exit__(self, *exc: object) -> None:
        self.held = False
        self.lock.release()


@dataclass
class Task:
    name: str
    gen: Any
    at: float = 0.0  # when it goes on
    topic: Any = None  # what it waits on
    value: Any = None
    error: BaseException | None = None
    record: InFlight | None = None  # a slot running this job
    claiming: bool = False  # a claim call of the registration is on its way


def make_job(reg: Registration, job_id: int, fields: dict[str, str]) -> Any:
    try:
        return job_id, json.loads(fields["data"])
    except ValueError:
        raise ValueError(f"data is not JSON: {fields['data']!r}") from None


def ids(call: Call) -> list[int]:
    """The job ids a complete/fail/release/renew call carries."""
    step = {"complete_jobs": 4, "fail_jobs": 6, "release_jobs": 2, "renew_leases": 2}[call.script]
    return list(call.args[2::step])


class World:
    """The fake runtime (steps the loops as ``_carry_out`` does, on a fake clock) and Redis."""

    def __init__(self, case: Case, runtime: str) -> None:
        self.case, self.runtime, self.now = case, runtime, 0.0
        self.settings = WorkerSettings().updated(**{**BASE, **case.settings})
        self.faults = {name: list(replies) for name, replies in case.faults.items()}
        self.emitted: list[BaseException] = []
        self.under_lock: list[str] = []  # emit/signal calls made under the core's lock
        self.sends: list[tuple[float, list[Any]]] = []  # (time, batch)
        self.waited: list[tuple[str, str, float, int]] = []  # (loop, topic, timeout, free)
        self.ran: list[int] = []
        self.abandoned: list[tuple[float, list[int]]] = []
        self.ended: dict[str, float] = {}  # loop -> when it ended
        self.tokens: dict[str, str] = {}  # claim token -> "claim<n>"
        self.taken: dict[str, list[int]] = {}  # claim token -> the jobs it took
        self.tasks: list[Task] = []
        self.set_topics: set[Any] = set()  # signalled with no waiter (an Event left set)
        self.regs: list[Registration] = []
        self.lock = CheckedLock() if runtime == "threaded" else None
        self.core = WorkerCore(KEYS, self.settings, self.emit, clock=lambda: self.now,
                               lock=self.lock, signal=self.signal, upkeep=case.upkeep,
                               check_format=case.check_format)
        if case.upkeep:  # as both runtimes' _start_core
            self.core.enable_upkeep(self.settings.upkeep_interval_ms)
        self.reg = self.hold(self.register("email", case.concurrency, self.settings.lease_ms),
                             case.held)
        self.inactive = list(case.inactive)
        if case.setup:
            case.setup(self)

    def register(self, job_type: str, concurrency: int, lease_ms: int) -> Registration:
        reg = Registration(job_type, concurrency, lambda job: None, lease_ms,
                           min(self.case.batch, concurrency))
        self.core.add(reg)
        self.core.resume(reg)
        self.regs.append(reg)
        return reg

    def hold(self, reg: Registration, held: tuple[tuple[int, str], ...]) -> Registration:
        """Claim ``held`` through the core, then start and finish them as their stage says."""
        self.inactive, records = [i for i, _ in held], {}
        while self.inactive:
            claim = self.core.next_claim(reg, reg.generation)
            for record in self.core.claimed(claim, self.script(claim.call), make_job):
                records[record.id] = record
        for job_id, stage in held:
            if stage != "queued":
                assert self.core.start(records[job_id])
            if stage in ("ok", "fail"):
                failure = calls.describe_failure(RuntimeError("boom"))
                self.core.finished(records[job_id], stage == "ok",
                                   "" if stage == "ok" else failure, 5)
        return reg

    # --- what the core calls --------------------------------------------------------------
    def emit(self, event: str, exc: BaseException) -> None:
        if self.lock is not None and self.lock.held:
            self.under_lock.append(f"emit {exc!r}")
        self.emitted.append(exc)

    def signal(self, topic: Any) -> None:
        if self.lock is not None and self.lock.held:
            self.under_lock.append(f"signal {topic!r}")
        waiters = [t for t in self.tasks if t.topic == topic]
        for task in waiters:
            task.at, task.topic = min(task.at, self.now), None
        if topic in STICKY or not waiters:
            self.set_topics.add(topic)

    # --- the fake Redis -------------------------------------------------------------------
    def script(self, call: Call) -> Any:
        """What a healthy Redis answers (and does: activate takes jobs, reclaim finds them)."""
        name, args = call.script, call.args
        if name in ("activate_jobs", "reclaim_jobs"):
            if name == "activate_jobs":
                self.tokens.setdefault(args[4], f"claim{len(self.tokens) + 1}")
                self.taken[args[4]] = self.inactive[: args[2]]
                del self.inactive[: args[2]]
            reply: list[Any] = [str(int(self.now * 1000))]
            for job_id in self.taken.get(args[4] if name == "activate_jobs" else args[1], []):
                hashed = {"type": "email", "data": "{}", "attempts": "0", "max_attempts": "1",
                          **self.case.fields.get(job_id, {})}
                reply += [job_id, [v for pair in hashed.items() for v in pair]]
            return reply
        if name == "renew_leases":
            return [1] * ((len(args) - 2) // 2)
        return {"complete_jobs": [1] * int(args[1]), "release_jobs": [1] * int(args[1]),
                "fail_jobs": ["failed"] * int(args[1]),
                "promote_delayed_jobs": [0, -1], "recover_jobs": [0, 0, 0],
                "open_queue": [DATA_FORMAT, 0]}[name]

    def execute(self, batch: list[Any]) -> tuple[Any, BaseException | None, float]:
        replies, crash, latency = [], None, 0.0
        self.sends.append((round(self.now, 3), batch))
        for request in batch:
            if isinstance(request, Read):  # BLPOP on the wake-up list: nothing comes
                replies.append(None)
                latency = max(latency, request.command[-1])
                continue
            queued = self.faults.get(request.script)
            fault = queued.pop(0) if queued else None
            if isinstance(fault, (Down, LateDown)):
                crash = crash or fault.exc
                latency = max(latency, getattr(fault, "seconds", 0.0))
            elif isinstance(fault, BaseException):  # refused in place: did nothing
                replies.append(fault)
            else:
                reply = self.script(request)
                if isinstance(fault, Slow):
                    latency = max(latency, fault.seconds)
                elif isinstance(fault, Lost):
                    crash = crash or fault.exc
                elif fault is not None:
                    reply = fault
                replies.append(reply)
        return replies, crash, latency

    # --- the runtime ----------------------------------------------------------------------
    def slot(self, record: InFlight) -> Any:
        if not self.core.start(record):
            return
        seconds = self.case.handler.get(record.id, self.case.run_s)
        yield Wait(NEVER, math.inf if seconds is None else seconds)
        self.core.finished(record, True, "", int((seconds or 0) * 1000))

    def stopping(self, at: float, timeout_ms: float | None, fail_running: bool) -> Any:
        yield Wait(NEVER, at)
        yield from stop_loop(self.core, [self.reg], timeout_ms, fail_running, True)

    def run(self) -> World:
        made = {"claim": lambda: claim_loop(self.core, self.reg, self.reg.generation, make_job,
                                            self.settings.block_timeout_ms),
                "flush": lambda: flush_loop(self.core),
                "housekeeping": lambda: housekeeping_loop(self.core)}
        self.tasks = [Task(name, made[name]()) for name in self.case.loops]
        if self.case.stop:
            self.tasks.append(Task("stop", self.stopping(*self.case.stop)))
        for _ in range(20000):
            due = [t for t in self.tasks if t.at <= self.case.until]
            if not due:
                return self
            task = min(due, key=lambda t: t.at)  # the first of equals: round robin
            self.now = max(self.now, task.at)
            self.step(task)
            self.check_slots()
        raise AssertionError("the loops spin without time passing")

    def step(self, task: Task) -> None:
        self.tasks.remove(task)
        try:
            action = task.gen.throw(task.error) if task.error else task.gen.send(task.value)
        except StopIteration:
            self.ended[task.name] = round(self.now, 3)
            if task.name == "stop":
                self.core.stop()  # a final shutdown: the runtimes' _stop_all
            return
        self.tasks.append(task)
        task.value, task.error, task.claiming, task.at = None, None, False, self.now
        task.topic = None  # a call on its way is no Wait: no signal cuts it short
        if isinstance(action, Send):
            task.value, task.error, latency = self.execute(action.batch)
            task.value = None if task.error else task.value
            task.at += latency
            task.claiming = any(getattr(r, "script", "") in ("activate_jobs", "reclaim_jobs")
                                for r in action.batch)
        elif isinstance(action, Wait):
            if task.record is None:
                topic = action.topic if isinstance(action.topic, str) else "slots"
                self.waited.append((task.name, topic, round(action.timeout, 3), self.reg.free))
            if action.topic in self.set_topics:
                if action.topic not in STICKY:
                    self.set_topics.discard(action.topic)
            else:
                task.at, task.topic = self.now + action.timeout, action.topic
        elif isinstance(action, Run):
            self.ran += [r.id for r in action.records]
            self.tasks += [Task(f"job {r.id}", self.slot(r), self.now, record=r)
                           for r in action.records]
        else:
            assert isinstance(action, Abandon)
            self.abandoned.append((round(self.now, 3), [r.id for r in action.records]))
            if self.runtime == "asyncio":  # the job's task is cancelled (threads run on)
                for slot in [t for t in self.tasks if t.record in action.records]:
                    slot.gen.close()
                    self.tasks.remove(slot)

    def check_slots(self) -> None:
        for reg in self.regs:
            if reg is self.reg and any(t.claiming for t in self.tasks):
                continue  # a claim's reservation is on its way
            held = sum(1 for r in self.core.inflight.values()
                       if r.reg is reg and r.stage in (QUEUED, RUNNING))
            reserved = sum(claim.want for claim in reg.reclaims)
            assert reg.free + held + reserved == reg.concurrency, \
                f"t={self.now}: free {reg.free} + held {held} + reserved {reserved}"

    # --- what the checks look at ----------------------------------------------------------
    def sent(self) -> list[tuple[float, Any]]:
        return [(t, r) for t, batch in self.sends for r in batch]

    def calls(self, script: str) -> list[Call]:
        return [r for _, r in self.sent() if getattr(r, "script", "") == script]

    def names(self) -> list[str]:
        return [r.script if isinstance(r, Call) else r.command[0] for _, r in self.sent()]

    def times(self, script: str) -> list[float]:
        """When each call of ``script`` was sent ("": every request)."""
        return [t for t, r in self.sent() if script in ("", getattr(r, "script", ""))]

    def batches(self) -> list[list[tuple[str, list[int]]]]:
        return [[(r.script, ids(r)) for r in b] for _, b in self.sends]

    def pairs(self, script: str) -> list[tuple[int, str]]:
        """(id, claim) of each job a release call gave back."""
        return [(a, self.tokens[b]) for c in self.calls(script)
                for a, b in zip(c.args[2::2], c.args[3::2])]

    def norm(self, request: Any) -> tuple[Any, ...]:
        """``command_of(request)`` with the SHA as the script's name, tokens as claim names."""
        shas = {s.sha: name for name, s in scripts.registry().items()}
        return tuple(shas.get(v, self.tokens.get(v, "worker" if v == self.reg.worker_id else v))
                     for v in command_of(request))

    def waits(self, task: str) -> list[tuple[str, float, int]]:
        return [(topic, timeout, free) for name, topic, timeout, free in self.waited
                if name == task]

    def pauses(self, task: str) -> list[float]:
        """The backoffs a loop took (waits on "stop" or "never")."""
        return [t for topic, t, _ in self.waits(task) if topic in ("stop", "never")]

    def errors(self) -> list[str]:
        return [type(e).__name__ for e in self.emitted]

    def inflight(self) -> list[int]:
        return sorted(self.core.inflight)

    def outcomes(self) -> list[tuple[str, int]]:
        return [(o.kind, o.record.id) for o in self.core.outcomes]


def bug(reason: str) -> Any:
    return pytest.mark.xfail(strict=True, reason=reason)


def error_class(source: Any, want: tuple[Any, ...]) -> Case:
    """An error reply to complete_jobs: an outage keeps the outcome, a bug gives it up."""
    exc = from_script_error(source) if isinstance(source, str) else map_error(source)
    return Case(id=f"error class: {source!r}"[:60], loops=("flush",), held=((1, "ok"),),
                faults={"complete_jobs": [exc]}, until=0.04, want=want,
                got=lambda w: (w.errors(), getattr(w.emitted[0], "reason", None),
                               w.outcomes(), w.inflight()))


def refused(reason: str) -> tuple[Any, ...]:
    return ["RedisRefused"], reason, [("complete", 1)], [1]


def given_up(kind: str) -> tuple[Any, ...]:
    return [kind], None, [], []


SEVEN = ((1, "ok"), (2, "fail"), (3, "ok"), (4, "ok"), (5, "fail"), (6, "ok"), (7, "ok"))

CASES: list[Any] = [
    # --- claim sizing ---------------------------------------------------------------------
    Case(id="claim: want = min(free, batch); no free slot -> Wait on the slots topic",
         loops=("claim",), concurrency=4, batch=3, inactive=tuple(range(1, 11)), run_s=None,
         got=lambda w: ([c.args[2] for c in w.calls("activate_jobs")], w.reg.free, w.ran,
                        w.waits("claim"), w.norm(w.calls("activate_jobs")[0])),
         want=([3, 1], 0, [1, 2, 3, 4], [("slots", 1.0, 0)] * 2,
               ("EVALSHA", "activate_jobs", 3, "q:jobs:email:inactive", "q:leases", "q:paused", "q",
                "email",
                3, "worker", "claim1", 3000))),
    Case(id="claim: held slots -> no call at all", loops=("claim",), concurrency=2,
         held=((1, "running"), (2, "running")), until=2.5,
         got=lambda w: (w.names(), w.waits("claim")), want=([], [("slots", 1.0, 0)] * 3)),
    Case(id="claim: a finished job's slot is claimed again at once", loops=("claim",),
         concurrency=1, inactive=(1, 2), handler={1: 0.5, 2: None}, until=0.8,
         got=lambda w: w.times("activate_jobs"), want=[0.0, 0.5]),
    Case(id="claim: the unclaimed part of a reservation is given back", loops=("claim",),
         inactive=(1,), run_s=None, until=0.25,
         got=lambda w: ([c.args[2] for c in w.calls("activate_jobs")][:3], w.reg.free, w.ran),
         want=([4, 3, 3], 3, [1])),
    Case(id="claim: a job that cannot be loaded fails that attempt at once, slot freed",
         loops=("claim", "flush"), concurrency=2, inactive=(1, 2), fields={2: {"data": "{oops"}},
         run_s=None, until=0.3,
         got=lambda w: (w.ran, [ids(c) for c in w.calls("fail_jobs")],
                        w.calls("fail_jobs")[0].args[4], w.reg.free, w.inflight()),
         want=([1], [[2]], "Cannot load job 2: ValueError: data is not JSON: '{oops'", 1, [1])),
    Case(id="claim: a stopped registration's claim loop ends", loops=("claim", "flush"),
         concurrency=2, stop=(0.05, 1000, False),
         got=lambda w: (w.names(), w.ended), want=(["activate_jobs", "BLPOP"],
                                                   {"stop": 0.05, "flush": 0.05, "claim": 0.1})),
    Case(id="claim: a reply that comes after the stop -> released, not run",
         loops=("claim", "flush"), concurrency=2, inactive=(1, 2),
         faults={"activate_jobs": [Slow(0.2)]}, stop=(0.1, 1000, False),
         got=lambda w: (w.ran, w.pairs("release_jobs"), w.ended["stop"]),
         want=([], [(1, "claim1"), (2, "claim1")], 0.2)),
    # --- a claim's reply lost, refused, or a bug -------------------------------------------
    Case(id="claim lost: reclaim_jobs with the same token, slots kept reserved",
         loops=("claim",), concurrency=2, inactive=(1, 2), run_s=None, until=0.5,
         faults={"activate_jobs": [Lost(unavailable())]},
         got=lambda w: (w.norm(w.calls("reclaim_jobs")[0]), w.waits("claim")[0], w.ran, w.errors()),
         want=(("EVALSHA", "reclaim_jobs", 1, "q:leases", "q", "claim1", 3000), ("stop", 0.05, 0),
               [1, 2], ["RedisUnavailable"])),
    Case(id="claim lost: reclaim gives up after 2 x lease, reservation freed",
         loops=("claim",), concurrency=2, inactive=(1, 2), settings={"lease_ms": 300}, until=1.6,
         faults={"activate_jobs": [Lost(unavailable())], "reclaim_jobs": [Down(unavailable())] * 9},
         got=lambda w: (list(zip(w.times(""), w.names()))[:6], w.waits("claim")[:5],
                        list(w.tokens.values()), w.errors()),
         want=([(0.0, "activate_jobs"), (0.05, "reclaim_jobs"), (0.15, "reclaim_jobs"),
                (0.35, "reclaim_jobs"), (0.75, "reclaim_jobs"), (1.55, "activate_jobs")],
               [("stop", 0.05, 0), ("stop", 0.1, 0), ("stop", 0.2, 0), ("stop", 0.4, 0),
                ("stop", 0.8, 2)], ["claim1", "claim2"], ["RedisUnavailable"])),
    Case(id="claim refused (OOM): no reclaim, reservation freed", loops=("claim",),
         concurrency=2, inactive=(1, 2), run_s=None, until=0.1,
         faults={"activate_jobs": [from_script_error(OOM)]},
         got=lambda w: (w.names(), w.waits("claim")[0], w.ran, w.errors()),
         want=(["activate_jobs", "activate_jobs"], ("stop", 0.05, 2), [1, 2], ["RedisRefused"])),
    Case(id="claim bug: reservation freed, one error per episode, backoff doubles to 2 s",
         loops=("claim",), concurrency=2, until=7.28,
         faults={"activate_jobs": [from_script_error(NIL)] * 8 + [None, from_script_error(NIL)]},
         got=lambda w: (w.pauses("claim"), {f for _, _, _, f in w.waited}, w.errors()),
         want=([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 0.05], {2},
               ["ScriptError", "ScriptError"])),
    pytest.param(Case(
        id="claim lost, then stop while the reclaim is on its way: slots freed once",
        loops=("claim", "flush"), concurrency=2, held=((1, "running"),), inactive=(2,),
        run_s=None, stop=(0.1, 1000, False), until=2.0,
        faults={"activate_jobs": [Lost(unavailable())], "reclaim_jobs": [Slow(0.3)]},
        got=lambda w: (w.abandoned, w.pairs("release_jobs"), w.reg.free),
        want=([(1.1, [1])], [(2, "claim2"), (1, "claim1")], 2))),
    # --- flush batching -------------------------------------------------------------------
    Case(id="flush: by kind, flush_batch per call, 2 x flush_batch per flush",
         loops=("flush",), concurrency=8, held=SEVEN, settings={"flush_batch": 2},
         got=lambda w: (w.batches(), w.inflight()),
         want=([[("complete_jobs", [1, 3]), ("complete_jobs", [4]), ("fail_jobs", [2])],
                [("complete_jobs", [6, 7]), ("fail_jobs", [5])]], [])),
    Case(id="flush: status 2 (a retried write) is no LeaseLost, 0 and '' are",
         loops=("flush",), held=((1, "ok"), (2, "ok"), (3, "ok"), (4, "fail")),
         faults={"complete_jobs": [[1, 2, 0]], "fail_jobs": [[""]]},
         got=lambda w: (w.errors(), [str(e).split(":")[0] for e in w.emitted], w.inflight()),
         want=(["LeaseLost", "LeaseLost"], ["job 3 (email)", "job 4 (email)"], [])),
    pytest.param(Case(
        id="flush: fail_jobs statuses as bytes (a client without decode_responses)",
        loops=("flush",), held=((1, "fail"), (2, "fail")),
        faults={"fail_jobs": [[b"", b"delayed"]]},
        got=lambda w: (w.errors(), w.core.poke_upkeep), want=(["LeaseLost"], True))),
    Case(id="flush: a call refused (OOM) requeues just its outcomes", loops=("flush",),
         held=((1, "ok"), (2, "fail")), faults={"complete_jobs": [from_script_error(OOM)]},
         got=lambda w: (w.batches(), w.inflight(), w.errors()),
         want=([[("complete_jobs", [1]), ("fail_jobs", [2])], [("complete_jobs", [1])]], [],
               ["RedisRefused"])),
    pytest.param(Case(
        id="flush: per-call refusals back off 0.05, 0.1, 0.2 like every loop",
        loops=("flush",), held=((1, "ok"),), faults={"complete_jobs": [from_script_error(OOM)] * 3},
        got=lambda w: w.pauses("flush"), want=[0.05, 0.1, 0.2])),
    Case(id="flush: the whole flush unavailable -> everything requeued", loops=("flush",),
         held=((1, "ok"), (2, "fail")), faults={"complete_jobs": [Down(unavailable())]},
         got=lambda w: (w.batches(), w.pauses("flush"), w.inflight(), w.errors()),
         want=([[("complete_jobs", [1]), ("fail_jobs", [2])]] * 2, [0.05], [],
               ["RedisUnavailable"])),
    Case(id="flush: a bug in a call gives its outcomes up", loops=("flush",),
         held=((1, "ok"), (2, "ok")), faults={"complete_jobs": [from_script_error(NIL)]},
         got=lambda w: (len(w.sends), w.inflight(), w.outcomes(), w.errors()),
         want=(1, [], [], ["ScriptError"])),
    pytest.param(Case(
        id="flush: a bug failing the whole flush gives them up, reported once", loops=("flush",),
        held=((1, "ok"), (2, "ok")), faults={"complete_jobs": [Down(ScriptError("boom"))]},
        got=lambda w: (len(w.sends), w.inflight(), w.outcomes(), w.errors()),
        want=(1, [], [], ["ScriptError"]))),
    pytest.param(Case(
        id="flush: a bug in one call, a refusal in another: each reported once",
        loops=("flush",), held=((1, "ok"), (2, "fail")), until=0.04,
        faults={"complete_jobs": [from_script_error(NIL)], "fail_jobs": [from_script_error(OOM)]},
        got=lambda w: (sorted(w.errors()), w.outcomes()),
        want=(["RedisRefused", "ScriptError"], [("fail", 2)]))),
    Case(id="flush: result_retry_ms bounds the retries and the renewals",
         loops=("flush", "housekeeping"), held=((1, "ok"),), settings={"result_retry_ms": 1500},
         faults={"complete_jobs": [Down(unavailable())] * 20}, until=2.5,
         got=lambda w: ([(t, ids(c)) for t, c in w.sent() if c.script == "renew_leases"],
                        w.times("complete_jobs"), w.inflight(), w.outcomes()),
         want=([(1.0, [1])], [0.0, 0.05, 0.15, 0.35, 0.75, 1.55], [], [])),
    # --- lease renewal --------------------------------------------------------------------
    Case(id="renew: every lease/3 queued, running and unwritten jobs, by lease_ms",
         loops=("housekeeping",), held=((1, "queued"), (2, "running"), (3, "ok"), (4, "fail")),
         setup=lambda w: w.hold(w.register("sms", 2, 6000), ((9, "running"),)), until=2.5,
         got=lambda w: [(t, c.args[1], ids(c)) for t, c in w.sent()],
         want=[(1.0, 3000, [1, 2, 3, 4]), (1.0, 6000, [9]), (2.0, 3000, [1, 2, 3, 4]),
               (2.0, 6000, [9])]),
    Case(id="renew: lost -> running job abandoned, queued one lost, slots freed",
         loops=("housekeeping",), held=((1, "running"), (2, "queued"), (3, "running")),
         faults={"renew_leases": [[0, 0, 1]]}, until=2.5,
         got=lambda w: (w.abandoned, w.reg.free, w.inflight(), w.errors(),
                        [ids(c) for c in w.calls("renew_leases")]),
         want=([(1.0, [1])], 3, [3], ["LeaseLost", "LeaseLost"], [[1, 2, 3], [3]])),
    Case(id="renew: a job with a ttl is checked just after its ttl", loops=("housekeeping",),
         held=((1, "running"),), fields={1: {"ttl": "500"}}, until=1.2,
         got=lambda w: w.times("renew_leases"), want=[0.55, 1.1]),
    pytest.param(Case(
        id="renew: a job past its ttl is checked again every ttl", loops=("housekeeping",),
        held=((1, "running"),), fields={1: {"ttl": "500"}}, until=2.3,
        got=lambda w: w.times("renew_leases"), want=[0.55, 1.1, 1.65, 2.2])),
    # --- upkeep ---------------------------------------------------------------------------
    Case(id="upkeep: promote + recover every upkeep interval", loops=("housekeeping",),
         upkeep=True, settings={"lease_ms": 30000}, until=2.5,
         got=lambda w: (w.times("promote_delayed_jobs"), [w.norm(r)[1:] for r in w.sends[0][1]]),
         want=([0.0, 1.0, 2.0], [("promote_delayed_jobs", 2, "q:jobs:delayed", "promotion:lock",
                                  "q", 1000),
                                 ("recover_jobs", 6, "q:leases", "q:jobs:active", "q:job:types",
                                  "q:unique", "q:retained:complete", "q:retained:failed",
                                  "q", 1000, 1, 3000, "1")])),
    Case(id="upkeep: promoted >= promote_batch -> again at once, then when the next is due",
         loops=("housekeeping",), upkeep=True, settings={"promote_batch": 10}, until=1.3,
         faults={"promote_delayed_jobs": [[10, 50], [3, 200]]},
         got=lambda w: w.times("promote_delayed_jobs"), want=[0.0, 0.0, 0.2, 1.2]),
    Case(id="upkeep: a refused recovery retries after the backoff", loops=("housekeeping",),
         upkeep=True, faults={"recover_jobs": [from_script_error("LOADING Redis is loading")]},
         until=1.1, got=lambda w: (w.times("recover_jobs"), w.errors()),
         want=([0.0, 0.05, 1.05], ["RedisRefused"])),
    Case(id="upkeep: an unavailable Redis retries after the backoff", loops=("housekeeping",),
         upkeep=True, faults={"promote_delayed_jobs": [Down(unavailable())]}, until=1.1,
         got=lambda w: (w.times("recover_jobs"), w.errors()),
         want=([0.0, 0.05, 1.05], ["RedisUnavailable"])),
    # --- the data-format check -------------------------------------------------------------
    Case(id="format: checked by the first housekeeping pass, alone, before any claim",
         loops=("claim", "housekeeping"), check_format=True, upkeep=True, inactive=(1,),
         run_s=None, until=0.5,
         got=lambda w: (w.names()[0], w.norm(w.sends[0][1][0]), len(w.sends[0][1]), w.ran,
                        w.times("activate_jobs")[:1], w.times("promote_delayed_jobs")[:1]),
         want=("open_queue", ("EVALSHA", "open_queue", 1, "q:meta", "q", 1), 1, [1], [0.0],
               [0.0])),
    Case(id="format: a newer one refuses: no claim, no upkeep, claim loop ends, reported once",
         loops=("claim", "housekeeping"), check_format=True, upkeep=True, inactive=(1,),
         faults={"open_queue": [[DATA_FORMAT + 1, 0]]}, until=3.0,
         got=lambda w: (w.names(), w.ran, "claim" in w.ended, w.errors(),
                        type(w.core.fatal).__name__, w.core.resume(w.reg)),
         want=(["open_queue"], [], True, ["IncompatibleFormat"], "IncompatibleFormat", None)),
    Case(id="format: an outage or a refusal during the check is retried with backoff",
         loops=("claim", "housekeeping"), check_format=True, inactive=(1,), run_s=None,
         faults={"open_queue": [Down(unavailable()), from_script_error(OOM)]}, until=0.5,
         got=lambda w: (w.times("open_queue"), w.times("activate_jobs")[:1], w.ran, w.errors(),
                        w.core.fatal),
         want=([0.0, 0.05, 0.15], [0.15], [1], ["RedisUnavailable"], None)),
    Case(id="format: a bug in the check is reported and retried, claims still held",
         loops=("claim", "housekeeping"), check_format=True, inactive=(1,),
         faults={"open_queue": [from_script_error(NIL)] * 9}, until=0.5,
         got=lambda w: (w.times("open_queue"), w.ran, w.errors()),
         want=([0.0, 0.05, 0.15, 0.35], [], ["ScriptError"])),
    # --- shutdown -------------------------------------------------------------------------
    Case(id="stop: waits for running jobs until the timeout, then releases them",
         loops=("flush",), concurrency=2, held=((1, "running"), (2, "queued")),
         stop=(0.0, 1000, False), until=2.0,
         got=lambda w: ([t for topic, t, _ in w.waits("stop") if topic == "idle"], w.abandoned,
                        w.times("release_jobs"), w.pairs("release_jobs"), w.ended["stop"]),
         want=([0.25] * 4, [(1.0, [1])], [1.0], [(1, "claim1"), (2, "claim1")], 1.0)),
    Case(id="stop: a job finishing within the timeout is completed", concurrency=1,
         loops=("claim", "flush"), inactive=(1,), handler={1: 0.3}, stop=(0.1, 1000, False),
         got=lambda w: (w.names(), w.abandoned, w.ended["stop"]),
         want=(["activate_jobs", "complete_jobs"], [], 0.3)),
    Case(id="stop: fail_running fails the running ones with Shutdown", loops=("flush",),
         held=((1, "running"),), stop=(0.0, 500, True),
         got=lambda w: ([ids(c) for c in w.calls("fail_jobs")], w.calls("fail_jobs")[0].args[4:7],
                        w.abandoned), want=([[1]], ("Shutdown",) * 3, [(0.5, [1])])),
    pytest.param(Case(
        id="stop: fail_running still releases the jobs that never started",
        loops=("flush",), held=((1, "running"), (2, "queued")), stop=(0.0, 500, True),
        got=lambda w: ([ids(c) for c in w.calls("fail_jobs")], w.pairs("release_jobs")),
        want=([[1]], [(2, "claim1")]))),
    Case(id="stop: a late finished() after settle is discarded", concurrency=1,
         loops=("claim", "flush"), inactive=(1,), handler={1: 0.5}, stop=(0.1, 100, False),
         got=lambda w: (w.names(), w.outcomes(), w.reg.free, w.inflight(), w.abandoned),
         want=(["activate_jobs", "release_jobs"], [], 1, [], [(0.2, [1])])),
    Case(id="stop: drained waits for the flush through an outage", loops=("flush",),
         held=((1, "ok"),), stop=(0.0, 0, False),
         faults={"complete_jobs": [Down(unavailable())] * 3},
         got=lambda w: (w.ended["stop"], w.times("complete_jobs")),
         want=(0.35, [0.0, 0.05, 0.15, 0.35])),
    Case(id="stop: gives up waiting for the flush after FLUSH_WAIT_S, then the flush loop "
            "gives the outcomes up and ends", loops=("flush",),
         held=((1, "ok"),), stop=(0.0, 0, False), until=FLUSH_WAIT_S + 5,
         faults={"complete_jobs": [Down(unavailable())] * 100},
         got=lambda w: (int(w.ended["stop"]), w.ended["flush"] - w.ended["stop"], w.outcomes(),
                        w.inflight(), max(w.times("complete_jobs")) < FLUSH_WAIT_S),
         want=(int(FLUSH_WAIT_S), 0.0, [], [], True)),
    Case(id="stop: a release on its way when the worker stops, then refused: given up at "
            "once, the flush loop ends", loops=("flush",), held=((1, "running"),),
         stop=(0.0, 0, False), until=FLUSH_WAIT_S + 5,
         faults={"release_jobs": [Down(unavailable())] * 5 + [LateDown(10, unavailable())]
                 + [Down(unavailable())] * 100},
         got=lambda w: (w.ended["stop"], len(w.calls("release_jobs")), w.outcomes(),
                        w.inflight(), w.ended["flush"]),
         want=(FLUSH_WAIT_S, 6, [], [], 11.55)),
    Case(id="stop: a release on its way when the worker stops is still read if it comes",
         loops=("flush",), held=((1, "running"),), stop=(0.0, 0, False), until=FLUSH_WAIT_S + 5,
         faults={"release_jobs": [Down(unavailable())] * 5 + [Slow(10)]},
         got=lambda w: (w.ended["stop"], w.pairs("release_jobs")[-1], w.inflight(),
                        w.ended["flush"]),
         want=(FLUSH_WAIT_S, (1, "claim1"), [], 11.55)),
    # --- error classes: outage (kept, retried) or bug (reported, given up) -----------------
    *[error_class(text, refused(text.split()[0])) for text in (
        OOM, "READONLY You can't write against a read only replica.",
        "NOREPLICAS Not enough good replicas to write.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "LOADING Redis is loading the dataset in memory", "TRYAGAIN Multiple keys request",
        "CLUSTERDOWN The cluster is down", "MOVED 1 x:1", "ASK 1 x:1",
        "UNBLOCKED force unblock from blocking operation, instance state changed")],
    error_class(f"ERR Error running script (call to f_2): @user_script:4: {OOM}", refused("OOM")),
    error_class("ERR Error running script (call to f_3): @user_script:7: -READONLY You can't "
                "write against a read only replica.", refused("READONLY")),
    error_class("KUE_BAD_ARGS count must be an integer >= 1", given_up("InvalidArgument")),
    error_class("KUE_BAD_ARGS BUSY is not a state", given_up("InvalidArgument")),
    error_class("WRONGTYPE Operation against a key holding the wrong kind of value",
                given_up("ScriptError")),
    error_class(NIL, given_up("ScriptError")),
    *[error_class(exc, refused(code)) for exc, code in (
        (redis.exceptions.OutOfMemoryError("command not allowed"), "OOM"),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
         "READONLY"),
        (redis.exceptions.TryAgainError("Multiple keys request"), "TRYAGAIN"),
        (redis.exceptions.MovedError("1 127.0.0.1:7001"), "MOVED"),
        (redis.exceptions.AskError("1 127.0.0.1:7001"), "ASK"),
        (redis.exceptions.MasterDownError("Link with MASTER is down"), "MASTERDOWN"),
        (redis.exceptions.ClusterDownError("The cluster is down"), "CLUSTERDOWN"),
        (redis.exceptions.ResponseError("BUSY Redis is busy running a script"), "BUSY"),
        (redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas"), "NOREPLICAS"))],
    error_class(redis.exceptions.ResponseError(NIL), given_up("ScriptError")),
]


def params() -> list[Any]:
    out = []
    for item in CASES:
        case, marks = (item.values[0], item.marks) if not isinstance(item, Case) else (item, ())
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("case", params())
def test_core(case: Case, runtime: str) -> None:
    world = World(case, runtime).run()
    assert case.got(world) == case.want
    assert not world.under_lock, "emit/signal called while holding the core's lock"



def held_core(clock: list[float], **settings: Any) -> tuple[WorkerCore, Registration, InFlight]:
    """A core holding one running job (id 7), claimed at ``clock[0]``."""
    core = WorkerCore(Keys("q"), WorkerSettings(lease_ms=3000, **settings), lambda *a: None,
                      clock=lambda: clock[0], upkeep=False)
    reg = Registration("email", 4, lambda job: None, 3000, 2)
    core.add(reg)
    generation = core.resume(reg)
    assert generation is not None
    claim = core.next_claim(reg, generation)
    assert not isinstance(claim, bool)
    (record,) = core.claimed(claim, ["1", "7", ["type", "email", "state", "inactive"]],
                             lambda r, i, f: object())
    assert core.start(record)
    return core, reg, record


def test_no_new_claims_while_lease_renewals_are_refused() -> None:
    """Under OOM a claim (it starts with a read) can succeed where renewals are refused:
    the core stops claiming until a renewal goes through again."""
    clock = [0.0]
    core, reg, record = held_core(clock)
    generation = reg.generation
    clock[0] = 1.0
    due = core.next_housekeeping()
    assert not isinstance(due, float) and due.renew_groups == [[record]]
    core.housekept(due, [from_script_error("OOM command not allowed")])
    assert core.next_claim(reg, generation) is True  # wait: renewals are failing
    clock[0] = 1.2
    again = core.next_housekeeping()
    assert not isinstance(again, float)
    core.housekept(again, [[1]])
    assert not isinstance(core.next_claim(reg, generation), bool)


def test_a_flush_reply_that_cannot_be_read_still_settles_its_outcomes() -> None:
    """A non-iterable status list (a bug somewhere): the error reaches the loop (which
    reports it), and the outcomes are given up, not counted as on their way for ever (a
    stop would wait FLUSH_WAIT_S for them)."""
    core, _, record = held_core([0.0])
    core.finished(record, True, "", 5)
    flush = core.next_flush()
    assert flush is not None and core.flushing == 1
    with pytest.raises(TypeError):
        core.flushed(flush, [7])
    assert core.flushing == 0 and core.drained() and not core.inflight


def test_a_registration_added_later_wakes_housekeeping_for_its_shorter_lease() -> None:
    """With upkeep off the housekeeping loop sleeps until the next renewal: a registration
    with a shorter lease added meanwhile must wake it, or its leases would run out first."""
    clock, signals = [0.0], []
    core = WorkerCore(Keys("q"), WorkerSettings(lease_ms=30000), lambda *a: None,
                      clock=lambda: clock[0], signal=signals.append, upkeep=False)
    core.add(Registration("slow", 1, lambda job: None, 30000, 1))
    loop = housekeeping_loop(core)
    assert next(loop) == Wait("wake", 10.0)
    clock[0] = 1.0
    core.add(Registration("fast", 1, lambda job: None, 600, 1))
    assert "wake" in signals
    assert loop.send(None) == Wait("wake", pytest.approx(0.2))
