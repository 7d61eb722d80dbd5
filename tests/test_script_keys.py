"""Every key a script touches is one it was given in KEYS or one its header lists under
"Derived keys", built from the declared prefix (lua/README.md, "Keys"): watched on a real
server with MONITOR through a whole queue life, with no exemption. On a cluster that is
what keeps each call inside the queue's slot."""

from __future__ import annotations

import ast
import re
import threading
import time
import uuid
from typing import Any, Self

import pytest
import redis

import kueatomic
from kueatomic import ops, repeats
from kueatomic.scripts import registry
from kueatomic.worker import calls

PLACEHOLDERS = {
    "<id>": r"[1-9]\d*",
    "<state>": r"(?:inactive|active|complete|failed|delayed)",
    "<type>": r"[^:]+",
    "<token>": r"[A-Za-z0-9]+:\d+",
    "<code>": r"[^:]+",
    "<minute>": r"\d+",
}
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def derived_patterns(script: str, prefix: str) -> list[re.Pattern[str]]:
    """The header's "Derived keys" as regular expressions for ``prefix``."""
    text = registry()[script].header.derived_keys
    patterns = []
    for name in re.findall(r"<prefix>[^\s,;()]*", text):
        source = re.escape(name)
        source = source.replace(re.escape("<prefix>"), re.escape(prefix))
        for placeholder, rule in PLACEHOLDERS.items():
            source = source.replace(re.escape(placeholder), rule)
        patterns.append(re.compile(source + "$"))
    return patterns


class ScriptWatch:
    """MONITOR on the test server: each EVALSHA with the commands its script ran."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls: list[tuple[list[str], list[list[str]]]] = []
        self.marker = f"kueatomic-keys-end-{uuid.uuid4().hex}"
        self.ready, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        admin = redis.Redis.from_url(self.url)
        with admin.monitor() as monitor:
            self.ready.set()
            while True:
                raw = monitor.connection.read_response()
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if self.marker in text:
                    self.done.set()
                    return
                head, _, rest = text.partition("] ")
                args = [ast.literal_eval('"' + a + '"') for a in _ARG.findall(rest)]
                if not args:
                    continue
                if " lua" in head:
                    if self.calls:
                        self.calls[-1][1].append(args)
                elif args[0].upper() == "EVALSHA":
                    self.calls.append((args, []))

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        redis.Redis.from_url(self.url).echo(self.marker)
        assert self.done.wait(10), "MONITOR did not see the end marker"


def queue_life(queue: kueatomic.Queue) -> None:
    """Every script, as the client and the workers call them."""
    queue.create_bulk([{"type": "email", "data": {"to": f"u{i}"}} for i in range(5)])
    job = queue.create("video", {"title": "cats"}).priority("high").attempts(3) \
        .backoff({"type": "fixed", "delay": 10}).search_keys(["title"]).save()
    queue.create("video", {"n": 1}).delay(20).save()
    job.log("hello %s", "world").progress(1, 2, {"step": 1})
    job.set_priority("low")
    job.data = {"title": "dogs"}
    job.update()
    queue.search("dogs")
    queue.get_job(1).set_state("complete")
    queue.get_job(2).set_state("active")  # a manual lease, which recovery returns
    queue.get_job(3).remove()
    ran: list[int] = []

    def handler(job: Any) -> Any:
        ran.append(job.id)
        if job.type == "video" and job.attempts_made == 0:
            raise ValueError("first attempt fails")
        if job.data.get("slow"):
            time.sleep(1.0)  # renewed meanwhile; released (or ttl-failed) at shutdown
        return {"ok": job.id}

    # kueatomic's additions: retention, unique keys, dependencies (lua/lib/lifecycle.lua)
    kept = [queue.create("email", {"n": n}).remove_on_complete({"count": 1}).unique(f"u{n}")
            .save() for n in range(2)]
    queue.create("email", {}).depends_on([kept[0].id]).save()
    queue.create("email", {}).remove_on_fail({"age": 0}).ttl(1).save()
    worker = kueatomic.Worker(queue, upkeep_interval_ms=50, lease_ms=600)
    worker.process("email", 2, handler)
    worker.process("video", 2, handler)
    worker.start()
    deadline = time.monotonic() + 10
    while sum(queue.counts()[s] for s in ("complete", "failed")) < 5 \
            and time.monotonic() < deadline:  # 4 complete, the delayed video failed
        time.sleep(0.05)
    slow = queue.create("email", {"slow": True}).ttl(100).save()
    queue.create("email", {"slow": True}).save()
    time.sleep(0.6)  # leases renewed, ttl checked, recovery run
    worker.shutdown(timeout=50)  # the slow job without ttl is released
    token = calls.claim_token()
    queue._run(ops.single(calls.reclaim(queue.keys, token, 1000)))
    assert slow.id and ran
    name = queue.repeat("email", every=1000, catch_up_ms=5000)["name"]
    queue.client.zadd(queue.keys.repeats_next, {name: 1000}, xx=True)  # missed: catch up
    assert queue._run(repeats.fire_due(queue.keys))
    assert queue.remove_repeat(name)
    parent = queue.create("video", {}).save()
    queue.create("video", {}).depends_on(parent).save()
    parent.cancel()  # its dependent fails too
    queue.retry_failed("video", limit=1)
    queue.clean("failed", limit=2)
    queue.pause_type("video")
    queue.resume_type("video")


@pytest.mark.parametrize("backend", ["real"], indirect=True)
def test_every_key_a_script_touches_is_declared(backend: str) -> None:
    queue = kueatomic.Queue("keys", redis=backend, disable_search=False)
    by_sha = {script.sha: name for name, script in registry().items()}
    admin = redis.Redis.from_url(backend, decode_responses=True)
    try:
        with ScriptWatch(backend) as watch:
            queue_life(queue)
        seen: set[str] = set()
        undeclared: list[str] = []
        for call, commands in watch.calls:
            name = by_sha.get(call[1], call[1])
            assert call[2].isdigit(), call[:8]
            count = int(call[2])
            declared = set(call[3:3 + count])
            prefix = call[3 + count] if name != "add_job_log" else call[3].split(":", 1)[0]
            patterns = derived_patterns(name, prefix)
            seen.add(name)
            for command in commands:
                if command[0].upper() in ("PUBLISH", "TIME"):
                    continue
                for key in admin.command_getkeys(*command):
                    if key not in declared and not any(p.match(key) for p in patterns):
                        undeclared.append(f"{name}: {command[0]} {key}")
        assert not undeclared, "\n".join(sorted(set(undeclared)))
        assert not set(registry()) - seen, f"not exercised: {sorted(set(registry()) - seen)}"
    finally:
        admin.close()
        queue.close()
