"""Engine rule 1: only Lua writes job state. Python may read.

Two checks: a scan of the package source for redis-py write calls, and a real redis-server's
MONITOR over a full scenario, where every command the Python side sends must be a script
call or a read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import redis

import kueatomic
from kueatomic import Queue

from .monitor import sent_commands

PACKAGE = Path(kueatomic.__file__).parent

WRITE_COMMANDS = {
    "set", "setnx", "setex", "psetex", "mset", "getset", "getdel", "incr", "incrby", "decr",
    "decrby", "append", "delete", "del", "unlink", "expire", "pexpire", "persist", "rename",
    "hset", "hmset", "hsetnx", "hdel", "hincrby", "hincrbyfloat",
    "lpush", "rpush", "lpop", "rpop", "lrem", "ltrim", "lset", "linsert", "rpoplpush", "lmove",
    "blpop", "brpop",
    "sadd", "srem", "spop", "smove",
    "zadd", "zrem", "zincrby", "zpopmin", "zpopmax", "zremrangebyrank", "zremrangebyscore",
    "zinterstore", "zunionstore", "bzpopmin", "flushall", "flushdb",
}
# Commands Python may send: script calls, reads, pub/sub, connection upkeep. BLPOP on the
# wake-up list is allowed for workers: it only consumes a token, which scripts re-balance.
ALLOWED_SENT = {
    "evalsha", "eval", "script", "hgetall", "hget", "hmget", "zrange", "zcard", "zscore",
    "zrangebyscore", "lrange", "llen", "smembers", "scard", "get", "exists", "type", "keys",
    "scan", "ping", "info", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
    "client", "hello", "select", "blpop", "time", "echo", "publish", "dbsize", "memory",
}


def test_source_has_no_redis_write_calls() -> None:
    offenders = []
    # redis-py write methods called on anything that looks like a client or pipeline
    call = re.compile(r"\b(client|redis|pipe|pipeline|conn|connection|r)\.("
                      + "|".join(sorted(WRITE_COMMANDS)) + r")\(")
    raw = re.compile(r"""["'](""" + "|".join(c.upper() for c in WRITE_COMMANDS - {"blpop", "delete"})
                     + r""")["']""")
    for path in PACKAGE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if call.search(code) or raw.search(code):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_monitor_sees_only_scripts_and_reads(redis_server: Any) -> None:
    url = redis_server.url
    redis.Redis.from_url(url).flushall()  # our private server
    with sent_commands(url) as sent:
        queue = Queue(redis=url, disable_search=False)
        job = queue.create("email", {"title": "welcome"}).priority("high").search_keys(["title"]).save()
        queue.create_bulk([{"type": "email"}, {"type": "video", "options": {"delay": 5000}}])
        job.log("a %s", "line").progress(1, 2).set_priority("low")
        job.data = {"title": "again"}
        job.update()
        job.active()
        job.complete()
        queue.get_job(job.id).logs()
        queue.range(0, -1)
        queue.range_by_type("email", "complete", 0, -1)
        queue.counts("email")
        queue.search("again")
        queue.types()
        queue.work_time()
        job.remove()
        queue.close()
    assert "evalsha" in sent
    assert set(sent) <= ALLOWED_SENT, sorted(set(sent) - ALLOWED_SENT)
