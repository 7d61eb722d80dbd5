"""Dump a Redis keyspace as plain data, for comparing layouts (tests only: reads)."""

from __future__ import annotations

from typing import Any


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def dump_keys(client: Any, pattern: str = "*") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for raw_key in sorted(client.keys(pattern), key=_text):
        key = _text(raw_key)
        kind = _text(client.type(key))
        value: Any
        if kind == "string":
            value = _text(client.get(key))
        elif kind == "hash":
            value = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
        elif kind == "list":
            value = [_text(v) for v in client.lrange(key, 0, -1)]
        elif kind == "set":
            value = sorted(_text(v) for v in client.smembers(key))
        elif kind == "zset":
            value = [[_text(m), s] for m, s in client.zrange(key, 0, -1, withscores=True)]
        else:
            value = None
        out[key] = {"type": kind, "value": value}
    return out
