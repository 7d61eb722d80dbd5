"""Repeatable jobs (issue 13, item 6): queue.repeat / repeats / remove_repeat, the fire_repeat
compare-and-set, ticks (every, cron in a time zone), catch-up after a restart, workers firing
them, and several processes on a real server making exactly one job per tick."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

import kueatomic
from kueatomic import InvalidArgument, Queue, repeats
from kueatomic.cli import main as cli_main
from kueatomic.ops import Call, single

from .invariants import check_invariants
from .keydump import dump_keys
from .test_worker_sync import wait_for


def server_now(queue: Queue) -> int:
    keys = repeats.repeat_keys(queue.keys)
    return int(queue._run(single(repeats.scan_call(keys, 0)))[0])


def set_next_tick(queue: Queue, name: str, tick: int) -> None:
    """What a scheduler that was down for a while leaves: a recorded next tick in the past
    (written by hand, as only a stopped clock could)."""
    keys = repeats.repeat_keys(queue.keys)
    assert queue.client.zadd(keys.repeats_next, {name: tick}, xx=True) == 0


def repeat_jobs(queue: Queue, name: str) -> list[Any]:
    jobs = [queue.get_job(i) for i in sorted(queue.state("inactive") + queue.state("complete")
                                             + queue.state("delayed"))]
    return [j for j in jobs if j.fields.get("repeat") == name]


def ticks_of(jobs: list[Any]) -> list[int]:
    return sorted(int(j.fields["repeat_at"]) for j in jobs)


# --- the API ------------------------------------------------------------------------------

def test_repeat_lists_replaces_and_removes(queue: Queue) -> None:
    before = server_now(queue)
    every = queue.repeat("report", every=60000, data={"to": "ops"},
                         options={"priority": "high", "attempts": 3})
    assert every["name"] == "report:every:60000" and every["cron"] is None
    assert every["next_at"] % 60000 == 0 and before < every["next_at"] <= before + 60000
    assert every["last_at"] is None and before <= every["created_at"] <= before + 5000
    cron = queue.repeat("digest", cron="0 9 * * 1-5", tz="Europe/Paris", name="digest")
    assert cron["every"] is None and cron["tz"] == "Europe/Paris"
    assert queue.repeats() == [cron, every]  # by name

    # The same name and schedule again: data replaced, next tick and created_at kept.
    again = queue.repeat("report", every=60000, data={"to": "dev"})
    assert again["data"] == {"to": "dev"} and again["options"] == {}
    assert (again["next_at"], again["created_at"]) == (every["next_at"], every["created_at"])
    # Another schedule under the same name: the next tick follows the new one.
    moved = queue.repeat("digest", cron="*/2 * * * * *", name="digest")
    assert moved["next_at"] != cron["next_at"] and moved["next_at"] % 2000 == 0
    assert len(queue.repeats()) == 2

    assert queue.remove_repeat("digest") is True
    assert queue.remove_repeat("digest") is False
    assert [r["name"] for r in queue.repeats()] == ["report:every:60000"]
    assert queue.remove_repeat("report:every:60000") is True
    assert queue.repeats() == [] and queue.client.keys("q:repeats*") == []


BAD_CALLS: list[tuple[dict[str, Any], str]] = [
    ({"cron": "not a cron"}, "cron"),
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 0 30 2 *"}, "cron"),  # February 30th never comes
    ({"cron": "* * * * *", "tz": "Mars/Olympus_Mons"}, "time zone"),
    ({"cron": "* * * * *", "tz": "../../etc/passwd"}, "time zone"),
    ({"every": 0}, "every"),
    ({"every": -1000}, "every"),
    ({"every": 999}, "every"),
    ({"every": 1500.5}, "every"),
    ({"every": True}, "every"),
    ({"every": 1000, "cron": "* * * * *"}, "exactly one"),
    ({}, "exactly one"),
    ({"every": 1000, "data": {"x": object()}}, "JSON"),
    ({"every": 1000, "data": float("nan")}, "JSON"),
    ({"every": 1000, "options": {"nope": 1}}, "nope"),
    ({"every": 1000, "options": {"searchKeys": ["a"]}}, "searchKeys"),
    ({"every": 1000, "options": {"shard_key": "a"}}, "shard_key"),
    ({"every": 1000, "options": {"priority": "urgent"}}, "priority"),
    ({"every": 1000, "options": {"attempts": 0}}, "attempts"),
    ({"every": 1000, "options": "high"}, "options"),
    ({"every": 1000, "catch_up_ms": 0}, "catch_up_ms"),
    ({"every": 1000, "name": ""}, "name"),
    ({"every": 1000, "name": "x" * 1001}, "name"),
]


@pytest.mark.parametrize("kwargs, message", BAD_CALLS)
def test_bad_input_is_refused_and_writes_nothing(queue: Queue, kwargs: dict[str, Any],
                                                 message: str) -> None:
    queue.repeat("report", every=5000, name="kept")
    before = dump_keys(queue.client)
    with pytest.raises(InvalidArgument, match=message):
        queue.repeat("report", **kwargs)
    with pytest.raises(InvalidArgument, match="job type"):
        queue.repeat("a:b", every=1000)
    assert dump_keys(queue.client) == before


def test_the_asyncio_queue_has_the_same_api(make_aqueue: Any) -> None:
    async def main() -> None:
        queue = make_aqueue()
        try:
            made = await queue.repeat("report", every=2000, data={"n": 1})
            assert await queue.repeats() == [made]
            with pytest.raises(InvalidArgument):
                await queue.repeat("report", cron="nope")
            assert await queue.remove_repeat(made["name"]) is True
            assert await queue.repeats() == []
        finally:
            await queue.close()

    asyncio.run(main())


# --- ticks --------------------------------------------------------------------------------

def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def test_every_ticks_are_multiples_since_the_epoch() -> None:
    spec = repeats.build_spec("t", every=60000)
    assert repeats.next_tick(spec, 125_000) == 180_000
    assert repeats.next_tick(spec, 180_000) == 240_000


def test_cron_ticks_follow_the_time_zone_across_a_dst_change() -> None:
    spec = repeats.build_spec("t", cron="0 9 * * *", tz="Europe/Paris")
    first = repeats.next_tick(spec, ms("2026-03-28T00:00:00+00:00"))
    assert first == ms("2026-03-28T08:00:00+00:00")  # 09:00 CET
    assert repeats.next_tick(spec, first) == ms("2026-03-29T07:00:00+00:00")  # 09:00 CEST
    utc = repeats.build_spec("t", cron="*/15 * * * *")
    assert repeats.next_tick(utc, ms("2026-01-01T10:07:30.500+00:00")) == \
        ms("2026-01-01T10:15:00+00:00")
    seconds = repeats.build_spec("t", cron="*/10 * * * * *")  # cronsim's seconds field
    assert repeats.next_tick(seconds, ms("2026-01-01T10:00:00.001+00:00")) == \
        ms("2026-01-01T10:00:10+00:00")


def test_due_ticks_catch_up_within_the_window_and_skip_older_ones() -> None:
    spec = repeats.build_spec("t", every=1000, catch_up_ms=10_000)
    now = 1_000_000_500
    fired, following = repeats.due_ticks(spec, now - 30_500, now)
    assert fired == list(range(now - 9_500, now, 1000))  # the ten ticks of the last 10 s
    assert following == now + 500
    # More missed ticks than one call makes: the next tick is still due, the next call goes on.
    wide = repeats.build_spec("t", every=1000, catch_up_ms=3_600_000)
    fired, following = repeats.due_ticks(wide, now - 500_500, now)
    assert len(fired) == repeats.FIRE_LIMIT and fired[0] == now - 500_500
    assert following == fired[-1] + 1000 and following < now


# --- fire_repeat --------------------------------------------------------------------------

def fire(queue: Queue, name: str, tick: int | None = None, now: int | None = None,
         spec_text: str | None = None) -> list[int]:
    keys = repeats.repeat_keys(queue.keys)
    text = spec_text or queue.client.hget(keys.repeats, name)
    spec = json.loads(queue.client.hget(keys.repeats, name))
    recorded = int(queue.client.zscore(keys.repeats_next, name))
    call = repeats.fire_call(keys, name, text, spec, recorded if tick is None else tick,
                             server_now(queue) if now is None else now)
    return [int(v) for v in queue._run(single(call))]


def test_fire_repeat_is_a_compare_and_set_on_the_tick(queue: Queue) -> None:
    made = queue.repeat("report", every=1000, data={"a": 1}, catch_up_ms=60_000,
                        options={"priority": "high", "ttl": 5000})
    name, now = made["name"], server_now(queue)
    tick = now - now % 1000 - 3000
    set_next_tick(queue, name, tick)
    keys = repeats.repeat_keys(queue.keys)
    spec = json.loads(queue.client.hget(keys.repeats, name))
    text = queue.client.hget(keys.repeats, name)
    racing = [repeats.fire_call(keys, name, text, spec, tick, now) for _ in range(2)]
    first, second = (list(map(int, r)) for r in queue.driver.execute(racing))
    assert first[0] == 1 and len(first) - 2 == len(repeats.due_ticks(spec, tick, now)[0]) >= 3
    assert second == [0, second[1]]  # the tick moved on: nothing written
    jobs = repeat_jobs(queue, name)
    assert sorted(j.id for j in jobs) == sorted(first[2:])
    assert ticks_of(jobs) == repeats.due_ticks(spec, tick, now)[0]
    job = jobs[0]
    assert (job.type, job.data, job.priority_value, job.ttl_ms, job.state) == \
        ("report", {"a": 1}, -10, 5000, "inactive")
    assert queue.client.llen("q:report:jobs") == len(jobs)  # one wake-up token each
    check_invariants(queue.client, "q")
    listed = queue.repeats()[0]
    assert listed["last_at"] == ticks_of(jobs)[-1] and listed["next_at"] > now

    before = dump_keys(queue.client)
    future = listed["next_at"]
    assert fire(queue, name, tick=tick, now=now)[0] == 0  # an old tick
    other = text.replace('"a":1', '"a":2')
    assert fire(queue, name, now=future, spec_text=other)[0] == 0  # another spec
    assert fire(queue, name, now=future)[0] == 2  # not due yet by the server's clock
    assert dump_keys(queue.client) == before


def test_a_removed_repeat_is_not_fired(queue: Queue) -> None:
    name = queue.repeat("report", every=1000)["name"]
    keys = repeats.repeat_keys(queue.keys)
    text = queue.client.hget(keys.repeats, name)
    tick = int(queue.client.zscore(keys.repeats_next, name))
    queue.remove_repeat(name)
    call = repeats.fire_call(keys, name, text, json.loads(text), tick, tick + 10)
    assert int(queue._run(single(call))[0]) == 0
    assert queue.client.keys("q:job*") == [] and queue.client.keys("q:repeats*") == []


def test_catch_up_after_a_restart(queue: Queue) -> None:
    """The scheduler was down 30 s: the ticks of the last 10 s (the window) each get one
    job, the 20 older ones none, and the next tick is in the future."""
    name = queue.repeat("report", every=1000, catch_up_ms=10_000)["name"]
    now = server_now(queue)
    set_next_tick(queue, name, now - now % 1000 - 30_000)
    ids = queue._run(repeats.fire_due(queue.keys))
    jobs = repeat_jobs(queue, name)
    assert sorted(ids) == sorted(j.id for j in jobs)
    fired_at = int(jobs[0].fields["created_at"])  # the server's clock at the fire
    window = [t for t in range(fired_at - 10_000, fired_at + 1) if t % 1000 == 0]
    assert ticks_of(jobs) == window
    assert queue.repeats()[0]["next_at"] == window[-1] + 1000
    assert queue._run(repeats.fire_due(queue.keys)) in ([], [max(ids) + 1])  # a tick may come


def test_a_sharded_queue_keeps_repeats_and_their_jobs_in_shard_0(make_queue: Any) -> None:
    queue = make_queue(prefix="rs", shards=3)
    name = queue.repeat("report", every=1000, catch_up_ms=5000)["name"]
    shard0 = queue.keys.shards[0]
    assert queue.client.hget(shard0.repeats, name)
    now = server_now(queue)
    queue.client.zadd(shard0.repeats_next, {name: now - now % 1000 - 2000}, xx=True)
    ids = queue._run(repeats.fire_due(queue.keys))
    assert len(ids) >= 2 and all((i - 1) % 3 == 0 for i in ids)  # shard 0's ids
    assert {queue.get_job(i).fields["repeat"] for i in ids} == {name}
    assert [r["name"] for r in queue.repeats()] == [name]


# --- the scheduler (sans I/O, its clock injected) ----------------------------------------

def test_the_scheduler_fires_due_ticks_and_says_when_the_next_comes(
        queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    scheduler = repeats.Scheduler(queue.keys, lambda: clock[0])
    queue.driver.load_all()  # else a first EVALSHA's NOSCRIPT retry runs after the scan
    name = queue.repeat("report", every=1000, catch_up_ms=5000)["name"]
    now = server_now(queue)
    set_next_tick(queue, name, now - now % 1000 - 3000)

    def run_pass() -> list[str]:
        batch = scheduler.requests()
        assert scheduler.read(queue.driver.execute(list(batch))) is None
        return [call.script for call in batch]

    assert run_pass() == ["scan_repeats"]  # no server clock known yet: nothing fired
    assert scheduler.wait_s() == 0.0  # the recorded tick is due
    assert run_pass() == ["fire_repeat", "scan_repeats"]
    assert scheduler.fired == len(repeat_jobs(queue, name)) >= 3
    wait = scheduler.wait_s()
    assert wait is not None and 0 < wait <= 1.0
    assert run_pass() == ["scan_repeats"]  # the clock has not moved: the next is not due
    clock[0] += 30  # the clock runs ahead of the server: the script refuses the early tick
    assert run_pass() == ["fire_repeat", "scan_repeats"]
    assert scheduler.fired == len(repeat_jobs(queue, name))

    # A spec the script refuses is left out from then on, without failing the upkeep.
    clock[0] -= 30
    set_next_tick(queue, name, now - 1000)
    assert run_pass() == ["scan_repeats"]  # (the clock went back) sees the due tick
    original = repeats.fire_call

    def refused(*args: Any) -> Call:  # priority "x"
        call = original(*args)
        return Call(call.script, call.keys, (*call.args[:9], "x", *call.args[10:]))

    monkeypatch.setattr(repeats, "fire_call", refused)
    assert run_pass() == ["fire_repeat", "scan_repeats"]
    assert run_pass() == ["scan_repeats"] and scheduler.wait_s() is None


# --- workers ------------------------------------------------------------------------------

def test_workers_fire_one_job_per_tick(make_queue: Any) -> None:
    """Two workers on one queue (two schedulers racing every tick): each tick one job."""
    queue = make_queue()
    name = queue.repeat("tick", every=1000)["name"]
    ran: list[int] = []
    workers = [kueatomic.Worker(queue) for _ in range(2)]
    for worker in workers:
        worker.process("tick", 2, lambda job: ran.append(job.id))
        worker.start()
    try:
        wait_for(lambda: len(ran) >= 3, timeout=10, what="three ticks")
    finally:
        for worker in workers:
            worker.shutdown(timeout=2000)
    ticks = ticks_of(repeat_jobs(queue, name))
    assert len(ticks) == len(set(ticks)) >= 3
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks)), ticks
    assert queue.repeats()[0]["last_at"] == ticks[-1]


def test_a_worker_with_repeats_off_fires_nothing(make_queue: Any) -> None:
    queue = make_queue()
    queue.repeat("tick", every=1000)
    worker = kueatomic.Worker(queue, repeats=False, upkeep_interval_ms=50)
    worker.process("tick", 1, lambda job: None)
    worker.start()
    try:
        time.sleep(1.5)
    finally:
        worker.shutdown(timeout=1000)
    assert queue.counts() == dict.fromkeys(("inactive", "active", "complete", "failed",
                                            "delayed"), 0)


def test_the_asyncio_worker_fires_ticks(make_aqueue: Any) -> None:
    async def main() -> list[int]:
        queue = make_aqueue()
        ran: list[int] = []
        try:
            await queue.repeat("tick", every=1000)

            async def handler(job: Any) -> None:
                ran.append(int(job.fields["repeat_at"]))

            queue.process("tick", 1, handler)
            deadline = time.monotonic() + 10
            while len(ran) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await queue.shutdown(2000)
            await queue.close()
        return ran

    ticks = asyncio.run(main())
    assert len(ticks) >= 2 and ticks[1] - ticks[0] == 1000


SCHEDULER = textwrap.dedent("""
    import signal, sys, threading
    import kueatomic
    queue = kueatomic.Queue("rp", redis=sys.argv[1])
    worker = kueatomic.Worker(queue, upkeep_interval_ms=200)
    worker.process("tick", 4, lambda job: None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    print("ready", flush=True)
    stop.wait(30)
    worker.shutdown(timeout=2000)
""")


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_several_processes_make_exactly_one_job_per_tick(backend: str) -> None:
    queue = Queue("rp", redis=backend)
    try:
        made = queue.repeat("tick", every=1000)
        name = made["name"]
        procs = [subprocess.Popen([sys.executable, "-c", SCHEDULER, backend],
                                  stdout=subprocess.PIPE, text=True) for _ in range(3)]
        try:
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            started = server_now(queue)
            time.sleep(5.5)
            stopping = server_now(queue)
        finally:
            for proc in procs:
                proc.terminate()
            codes = [proc.wait(timeout=20) for proc in procs]
        assert codes == [0, 0, 0]
        ticks = ticks_of(repeat_jobs(queue, name))
        # Every tick since the repeat was added, each exactly once, up to the stop (a tick
        # is fired within a few ms while the workers run; 2.5 s of slack on a loaded box).
        assert len(ticks) == len(set(ticks)), ticks
        assert all(b - a == 1000 for a, b in itertools.pairwise(ticks)), ticks
        assert ticks[0] == made["next_at"] <= started + 1000  # missed during start: caught up
        assert ticks[-1] >= stopping - 2500 and len(ticks) >= 5
        assert queue.repeats()[0]["last_at"] == ticks[-1]
    finally:
        queue.close()


# --- the command --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_the_repeat_command(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["repeat", "add", "report", "--cron", "*/5 * * * *", "--tz", "UTC",
                     "--data", '{"a": 1}', "--options", '{"priority": "high"}',
                     "--name", "r", "-r", backend]) == 0
    added = json.loads(capsys.readouterr().out)
    assert (added["name"], added["cron"], added["data"]) == ("r", "*/5 * * * *", {"a": 1})
    assert cli_main(["repeat", "list", "-r", backend]) == 0
    assert json.loads(capsys.readouterr().out) == [added]
    assert cli_main(["repeat", "add", "report", "--cron", "nope", "-r", backend]) == 2
    assert "InvalidArgument" in capsys.readouterr().err
    assert cli_main(["repeat", "add", "report", "--every", "1000", "--data", "{x", "-r",
                     backend]) == 2
    capsys.readouterr()
    assert cli_main(["repeat", "remove", "r", "-r", backend]) == 0
    assert cli_main(["repeat", "remove", "r", "-r", backend]) == 1
    queue = Queue("q", redis=backend)
    try:
        assert queue.repeats() == []
    finally:
        queue.close()

