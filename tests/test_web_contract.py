"""Contract: the API's bodies have the shapes recorded from real Kue 0.11.6 (docs/redis-layout.md §2,
§6, §7) for the same data.

Job hashes written by real Kue (tests/fixtures/kue_layout.json, plus the completed job of
docs/redis-layout.md §2) are put into Redis as a Node producer would leave them; the API must answer
what Kue's toJSON gives for them, key order and value types included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kueatomic import Queue
from kueatomic.web import create_app

from .web_helpers import TestClient, client_for

LAYOUT = json.loads((Path(__file__).parent / "fixtures" / "kue_layout.json").read_text())
JSON_TYPE = "application/json; charset=utf-8"
TOJSON_ORDER = ["id", "type", "data", "result", "priority", "progress", "progress_data", "state",
                "error", "created_at", "promote_at", "updated_at", "failed_at", "started_at",
                "duration", "delay", "workerId", "ttl", "attempts"]


def kue_to_json(job_id: Any, fields: dict[str, str]) -> dict[str, Any]:
    """Kue's Job.get + toJSON as docs/redis-layout.md §2 records it (an independent reference)."""
    made = int(fields.get("attempts") or 0)
    most = int(fields.get("max_attempts") or 0) or 1
    values: dict[str, Any] = {
        "id": job_id,
        "type": fields["type"],
        "data": json.loads(fields["data"]),
        "result": json.loads(fields["result"]) if "result" in fields else None,
        "priority": int(fields["priority"]),
        "progress": fields.get("progress", 0),
        "progress_data": json.loads(fields["progress_data"]) if "progress_data" in fields else None,
        "state": fields.get("state"),
        "error": fields.get("error"),
        **{name: fields.get(name) for name in ("created_at", "promote_at", "updated_at",
                                               "failed_at", "started_at", "duration", "delay",
                                               "workerId", "ttl")},
        "attempts": {"made": made, "remaining": most - made if made > 0 else most, "max": most},
    }
    return {key: values[key] for key in TOJSON_ORDER if values[key] is not None}


def load_keys(queue: Queue, keys: dict[str, Any]) -> None:
    """Write a recorded key dump, as a Node Kue producer on the same Redis would have."""
    raw = queue.client
    for name, entry in keys.items():
        kind, value = entry["type"], entry["value"]
        if kind == "hash":
            raw.hset(name, mapping=value)
        elif kind == "zset":
            raw.zadd(name, {m: float(s) for m, s in zip(value[::2], value[1::2])})
        elif kind == "set":
            raw.sadd(name, *value)
        elif kind == "list":
            raw.rpush(name, *value)
        else:
            raw.set(name, value)


@pytest.fixture
def client(queue: Queue) -> Iterator[TestClient]:
    with client_for(create_app(queue)) as test_client:
        yield test_client


@pytest.mark.parametrize("case", sorted(LAYOUT))
def test_job_bodies_match_kue_for_recorded_hashes(client: TestClient, queue: Queue, case: str) -> None:
    load_keys(queue, LAYOUT[case]["keys"])
    fields = LAYOUT[case]["keys"]["q:job:1"]["value"]
    single = client.get("/job/1")
    assert single.headers["content-type"] == JSON_TYPE
    assert list(single.json().items()) == list(kue_to_json("1", fields).items())
    (ranged,) = client.get("/jobs/0..0").json()
    assert list(ranged.items()) == list(kue_to_json(1, fields).items())
    state = fields["state"]
    assert client.get(f"/jobs/{state}/0..-1").json() == [ranged]
    assert client.get(f"/jobs/{fields['type']}/{state}/0..-1").json() == [ranged]
    assert client.get(f"/jobs/{fields['type']}/{state}/stats").text == '{"count":1}'


# The completed job of docs/redis-layout.md §2, and the exact body Kue's GET /job/1 gives for it.
COMPLETED = {
    "attempts": "1", "created_at": "1795828148203", "data": '{"kind":"ok","to":"a@x"}',
    "duration": "165", "max_attempts": "1", "priority": "0", "progress": "100",
    "progress_data": '{"stage":"two"}', "promote_at": "1795828148203",
    "result": '{"sent":true,"n":1}', "started_at": "1795828148327", "state": "complete",
    "type": "email", "updated_at": "1795828148493", "workerId": "kue:vm:9745:email:2",
}
COMPLETED_BODY = (
    '{"id":"1","type":"email","data":{"kind":"ok","to":"a@x"},"result":{"sent":true,"n":1},'
    '"priority":0,"progress":"100","progress_data":{"stage":"two"},"state":"complete",'
    '"created_at":"1795828148203","promote_at":"1795828148203","updated_at":"1795828148493",'
    '"started_at":"1795828148327","duration":"165","workerId":"kue:vm:9745:email:2",'
    '"attempts":{"made":1,"remaining":0,"max":1}}'
)


def test_completed_job_body_is_kues_text(client: TestClient, queue: Queue) -> None:
    load_keys(queue, {
        "q:job:1": {"type": "hash", "value": COMPLETED},
        "q:job:1:log": {"type": "list", "value": ["sending to a@x", "{ obj: 1, arr: [ 1, 2 ] }"]},
        "q:jobs": {"type": "zset", "value": ["01|1", "0"]},
        "q:jobs:complete": {"type": "zset", "value": ["01|1", "0"]},
        "q:jobs:email:complete": {"type": "zset", "value": ["01|1", "0"]},
        "q:job:types": {"type": "set", "value": ["email"]},
        "q:stats:work-time": {"type": "string", "value": "165"},
    })
    assert client.get("/job/1").text == COMPLETED_BODY
    assert client.get("/job/1/log").text == '["sending to a@x","{ obj: 1, arr: [ 1, 2 ] }"]'
    assert client.get("/stats").text == (
        '{"inactiveCount":0,"completeCount":1,"activeCount":0,"failedCount":0,'
        '"delayedCount":0,"workTime":165}')
    assert client.get("/job/types").text == '["email"]'


def test_message_and_error_texts_are_kues(client: TestClient) -> None:
    """The §7 bodies, byte for byte (compact JSON, Kue's wording)."""
    def text(response: Any, status: int) -> str:
        assert response.status_code == status
        assert response.headers["content-type"] == JSON_TYPE
        return str(response.text)

    assert text(client.post("/job", json={"type": "email", "data": {"n": 1}}), 200) == \
        '{"message":"job created","id":1}'
    assert text(client.post("/job", json=[{"type": "email"}, {"data": {"n": 2}},
                                          {"type": "video"}]), 400) == \
        '[{"message":"job created","id":2},{"error":"Must provide job type"},' \
        '{"message":"job created","id":3}]'
    assert text(client.post("/job", json={"data": {}}), 400) == '{"error":"Must provide job type"}'
    assert text(client.put("/job/1/state/failed"), 200) == '{"message":"updated state"}'
    assert text(client.put("/job/1/priority/3"), 200) == '{"message":"updated priority"}'
    assert text(client.get("/inactive/1"), 200) == '{"message":"job 1 inactive"}'
    assert text(client.delete("/job/3"), 200) == '{"message":"job 3 removed"}'
    assert text(client.get("/job/999"), 404) == '{"error":"job \\"999\\" doesnt exist"}'
    assert text(client.get("/job/abc"), 404) == '{"error":"job \\"abc\\" doesnt exist"}'
    assert text(client.get("/jobs/100..200"), 200) == "[]"
    assert text(client.get("/jobs/email/inactive/stats"), 200) == '{"count":2}'


def test_range_ids_numbers_single_id_string(client: TestClient, queue: Queue) -> None:
    """docs/redis-layout.md §7: ranges give numeric ids, GET /job/:id a string, search strings."""
    for n in range(3):
        queue.create("email", {"n": n}).save()
    assert [type(job["id"]) for job in client.get("/jobs/0..-1").json()] == [int, int, int]
    assert client.get("/job/2").json()["id"] == "2"
