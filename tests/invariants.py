"""Keyspace invariants of a queue, checked after every step of the property tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kueatomic.keyspace import Keys, id_from_zid, zid
from kueatomic.states import STATES


def check_invariants(client: Any, prefix: str = "q") -> None:
    keys = Keys(prefix)
    job_ids = sorted(
        int(k.split(":")[-1]) for k in client.keys(f"{prefix}:job:*")
        if k.split(":")[-1].isdigit() and k.count(":") == 2
    )
    jobs = {i: client.hgetall(keys.job(i)) for i in job_ids}
    members: dict[str, dict[str, float]] = {}
    for key in client.keys(f"{prefix}:jobs*"):
        if client.type(key) == "zset":
            members[key] = dict(client.zrange(key, 0, -1, withscores=True))

    all_jobs = members.get(keys.all_jobs, {})
    assert sorted(id_from_zid(m) for m in all_jobs) == job_ids, "q:jobs holds exactly the jobs"
    per_type_inactive: dict[str, int] = defaultdict(int)
    for job_id, fields in jobs.items():
        z, state, jtype = zid(job_id), fields["state"], fields["type"]
        priority = float(fields["priority"])
        assert state in STATES, f"job {job_id} in unknown state {state}"
        for other in STATES:
            in_global = z in members.get(keys.state(other), {})
            in_type = z in members.get(keys.type_state(jtype, other), {})
            assert in_global == (other == state), f"job {job_id} global {other} set"
            assert in_type == (other == state), f"job {job_id} {jtype}:{other} set"
        assert all_jobs[z] == priority
        assert members[keys.type_state(jtype, state)][z] == priority
        global_score = members[keys.state(state)][z]
        if state == "delayed":
            assert global_score == float(fields["promote_at"])
        elif state == "active":
            ttl = int(fields.get("ttl", 0))
            assert global_score > 1e12 if ttl else global_score == -abs(priority)
        else:
            assert global_score == priority
        if state == "inactive":
            per_type_inactive[jtype] += 1
        if state != "active":
            assert "lease" not in fields
    for key, entries in members.items():
        for member in entries:
            assert id_from_zid(member) in jobs, f"orphan {member} in {key}"
    for jtype in client.smembers(keys.types):
        assert client.llen(keys.tokens(jtype)) == per_type_inactive[jtype], "one token per inactive job"
    for key in client.keys(f"{prefix}:job:*:log"):
        assert int(key.split(":")[-2]) in jobs, f"orphan log {key}"
    for key in client.keys(f"{prefix}:search:object:*"):
        job_id = key.rsplit(":", 1)[1]
        assert int(job_id) in jobs, f"orphan search object {key}"
        for code in client.zrange(key, 0, -1):
            assert client.zscore(keys.search_word(code), job_id) is not None
    for key in client.keys(f"{prefix}:search:word:*"):
        for job_id in client.zrange(key, 0, -1):
            assert int(job_id) in jobs, f"orphan search entry {job_id} in {key}"
    leased = members.get(keys.leases, {})
    for member in client.zrange(keys.leases, 0, -1):
        assert jobs[id_from_zid(member)]["state"] == "active"
    del leased
