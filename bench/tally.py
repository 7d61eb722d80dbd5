"""What every no-op handler calls: counts jobs and create-to-start latencies per process and
publishes them to the control database, where the orchestrator reads them.

Workers of every queue run in processes the harness starts (some fork or spawn threads), so
the tally is per process: a daemon thread flushes it every FLUSH_S seconds with two commands
on a connection of its own (to the control db, not the one the queue under test uses), which
costs the worker next to nothing. Only the standard library and redis-py are used, since this
runs inside every peer's own virtualenv.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis

TALLY_KEY = "bench:tally"  # hash: pid -> {"count", "first", "last"}
LATENCY_KEY = "bench:latency"  # list of create-to-start seconds (jobs carrying "t")
FLUSH_S = 0.05

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None}


def _reset() -> None:
    _state.update(pid=os.getpid(), count=0, first=None, last=None, latencies=[], thread=None)


def hit(payload: Any) -> None:
    """Record one handler start; ``payload["t"]`` (time.time() at create) adds a latency."""
    now = time.time()
    with _lock:
        if _state["pid"] != os.getpid():  # first job here, or a forked child
            _reset()
            _start_flusher()
        if _state["first"] is None:
            _state["first"] = now
        _state["last"] = now
        _state["count"] += 1
        created = payload.get("t") if isinstance(payload, dict) else None
        if created:
            _state["latencies"].append(now - created)


def _start_flusher() -> None:
    url = os.environ["BENCH_CONTROL_URL"]
    thread = threading.Thread(target=_flush_forever, args=(url,), name="bench-tally", daemon=True)
    _state["thread"] = thread
    thread.start()


def _flush_forever(url: str) -> None:
    client = redis.Redis.from_url(url)
    pid = os.getpid()
    while True:
        time.sleep(FLUSH_S)
        with _lock:
            snapshot = {"count": _state["count"], "first": _state["first"], "last": _state["last"]}
            latencies, _state["latencies"] = _state["latencies"], []
        pipe = client.pipeline(transaction=False)
        pipe.hset(TALLY_KEY, str(pid), json.dumps(snapshot))
        if latencies:
            pipe.rpush(LATENCY_KEY, *latencies)
        pipe.execute()


# --- the orchestrator's side ------------------------------------------------------------

def read(client: redis.Redis[Any]) -> dict[str, float]:
    """Totals over every worker process: count, first start, last start."""
    rows = [json.loads(v) for v in client.hvals(TALLY_KEY)]
    rows = [r for r in rows if r["count"]]
    if not rows:
        return {"count": 0, "first": 0.0, "last": 0.0}
    return {
        "count": sum(r["count"] for r in rows),
        "first": min(r["first"] for r in rows),
        "last": max(r["last"] for r in rows),
    }


def latencies(client: redis.Redis[Any]) -> list[float]:
    return [float(v) for v in client.lrange(LATENCY_KEY, 0, -1)]
