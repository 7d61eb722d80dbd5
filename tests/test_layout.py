"""A job created by kueatomic is, key by key and field by field, the job real Kue 0.11.6
creates with the same options (recorded by tests/tools/record_kue_layout.js into
tests/fixtures/kue_layout.json). Timestamps differ run to run, so they are compared by their
relations (promote_at = created_at + delay, delayed score = promote_at)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kueatomic import Queue

from .keydump import dump_keys

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "kue_layout.json").read_text())
TIMESTAMPS = {"created_at", "promote_at", "updated_at"}

SCENARIOS: dict[str, tuple[bool, Callable[[Queue], Any]]] = {
    "plain": (True, lambda q: q.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"})),
    "no_data": (True, lambda q: q.create("video")),
    "all_options": (True, lambda q: q.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"})
                    .priority("high").attempts(5).backoff({"type": "exponential", "delay": 1000})
                    .delay(2000).ttl(5000).remove_on_complete(True)),
    "numeric_priority_fixed_backoff": (True, lambda q: q.create("email", {"n": 1}).priority(3)
                                       .backoff({"type": "fixed", "delay": 500})),
    "backoff_true_low": (True, lambda q: q.create("email", {"n": 2}).priority("low").backoff(True).attempts(2)),
    "search_keys": (False, lambda q: q.create("email", {"title": "welcome email for tj", "to": "tj@learnboost.com"})
                    .search_keys(["to", "title"])),
    "search_all_data": (False, lambda q: q.create("email", {"title": "Welcome emails", "body": "Hello running dogs"})),
}


def normalise(keys: dict[str, Any]) -> dict[str, Any]:
    """Replace timestamps by their meaning so two runs compare equal."""
    out = json.loads(json.dumps(keys))
    job = out["q:job:1"]["value"]
    created = int(job["created_at"])
    promote = int(job["promote_at"])
    assert promote - created == int(job.get("delay", 0))
    assert int(job["updated_at"]) - created in range(1000)
    for field in TIMESTAMPS:
        job[field] = f"<{field}>"
    for entry in out.values():
        if entry["type"] == "zset":
            # node_redis gives a flat [member, score, ...] list; redis-py gives pairs.
            flat = entry["value"]
            pairs = flat if not flat or isinstance(flat[0], list) else list(zip(flat[::2], flat[1::2]))
            entry["value"] = [
                [m, "<promote_at>" if float(s) == promote and promote > 1e12 else float(s)]
                for m, s in pairs
            ]
    return out


def capture_events(queue: Queue) -> tuple[list[dict[str, Any]], Callable[[], None]]:
    pubsub = queue.client.pubsub()
    pubsub.subscribe(queue.keys.events)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    seen: list[dict[str, Any]] = []

    def drain() -> None:
        while (message := pubsub.get_message(timeout=0.2)) is not None:
            if message["type"] == "message":
                seen.append(json.loads(message["data"]))
        pubsub.close()

    return seen, drain


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_created_job_matches_kue(name: str, make_queue: Callable[..., Queue]) -> None:
    disable_search, build = SCENARIOS[name]
    queue = make_queue(prefix="q", disable_search=disable_search)
    events, drain = capture_events(queue)
    job = build(queue).save()
    drain()
    recorded = RECORDED[name]
    assert job.id == recorded["id"]
    assert normalise(dump_keys(queue.client)) == normalise(recorded["keys"])
    assert events == recorded["events"]
