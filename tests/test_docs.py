"""docs/redis-layout.md is the repo's description of the Redis layout: nothing points to the
old out-of-repo reference any more, and the page names every key kueatomic.keyspace builds."""

from __future__ import annotations

import inspect
from pathlib import Path

from kueatomic.keyspace import Keys

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "docs" / "redis-layout.md"
OLD_NAME = "kue-wire" + ".md"  # spelled apart so this file does not mention it
SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache",
                ".mypy_cache", ".hypothesis"}
NOT_YET: set[str] = set()  # files still allowed to name the old document: none

PLACEHOLDERS = {"job_id": "<id>", "state": "<state>", "job_type": "<type>", "token": "<token>",
                "code": "<CODE>", "worker_id": "<worker id>", "minute": "<minute>"}
NOT_KEYS = {"for_job", "zset", "layouts", "kue_locks", "end_keys"}  # Keys, or composed of others


def repo_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if any(part in SKIPPED_DIRS for part in relative.parts) or not path.is_file():
            continue
        found.append(path)
    return found


def test_nothing_mentions_the_old_wire_reference() -> None:
    offenders = []
    for path in repo_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in NOT_YET:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if OLD_NAME in text:
            offenders.append(relative)
    assert offenders == [], f"{offenders} mention {OLD_NAME}: point to docs/redis-layout.md"


def key_patterns() -> dict[str, str]:
    keys = Keys("q")
    patterns = {}
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name in NOT_KEYS or name in Keys.__slots__:
            continue
        if isinstance(member, property):
            patterns[name] = getattr(keys, name)
        elif callable(member):
            params = list(inspect.signature(member).parameters)[1:]
            missing = [p for p in params if p not in PLACEHOLDERS]
            assert not missing, f"Keys.{name}: add a placeholder for {missing} in this test"
            patterns[name] = getattr(keys, name)(*(PLACEHOLDERS[p] for p in params))
    return patterns


def test_layout_names_every_key() -> None:
    text = LAYOUT.read_text(encoding="utf-8")
    patterns = key_patterns()
    assert {"ids", "job", "log", "state", "type_state", "tokens", "leases", "meta", "claim",
            "events", "search_word", "search_object"} <= set(patterns)
    missing = {name: key for name, key in patterns.items() if f"`{key}`" not in text}
    assert missing == {}, f"docs/redis-layout.md does not name {missing}"
    for lock in Keys("q").kue_locks:
        assert f"`{lock}`" in text
    for piece in ("{q.0}", "`shards`", "`format`", "`lease`", "`stalls`", "<2-digit length>|<id>",
                  '"args"'):
        assert piece in text, piece
