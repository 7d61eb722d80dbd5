"""Where one single create's Redis instructions go: the linked create_jobs cut short.

    python3 bench/lua_cuts.py               # about 30 s; needs valgrind and redis-server
    python3 bench/lua_cuts.py --calls 10    # smaller (the smoke test's size)

bench/lua_cost.py counts a whole phase; this splits one script call into its parts. It takes
create_jobs as Redis runs it (the libraries linked in, kueatomic/scripts.py), and makes
variants that return at once (``do return {} end``) just before each top-level statement
named in CUTS, plus an empty script with the same arguments. Each variant gets its own
queue prefix, so every one starts from the same empty sets, and is called with a one-job
create under ``valgrind --tool=callgrind`` (counters dumped between variants, as in
lua_cost.py). A part's cost is the difference between the cut after it and the cut before.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lua_cost import dump, under_callgrind
from kueatomic import Queue, ops, scripts

# (part, the first line of the statement the part ends before), in script order.
CUTS = [
    ("EVALSHA with the arguments, empty script", None),
    ("lib/states.lua and lib/checks.lua top level", r"^-- lib/kue\.lua"),
    ("lib/kue.lua top level", r"^-- lib/search\.lua"),
    ("lib/search.lua top level", r"^local WAITING_PROMOTE_AT"),
    ("lib/lifecycle.lua top level", r"^local nums = "),
    ("arguments, prefix and KEYS checked", r"^local EXTRA, extras"),
    ("the job checked", r"^local now = now_ms"),
    ("ids, the hash fields and the job's tables", r"^local types, seen_type"),
    ("SADD type, ZADD all jobs, move_many (HSET, 2 ZADD)", r"^local added, type_json"),
    ("enqueue event, wake-up token", None),  # the whole script
]


def variants(text: str) -> list[str]:
    """The script texts: empty, then cut before each CUTS line, then whole."""
    lines = text.split("\n")
    out = ["return {}"]
    for _, pattern in CUTS[1:-1]:
        at = next(i for i, line in enumerate(lines) if re.match(pattern, line))
        out.append("\n".join(lines[:at] + ["do return {} end"] + lines[at:]))
    out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/lua_cuts.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="single creates per variant")
    args = parser.parse_args()
    texts = variants(scripts.get("create_jobs").text)

    def run(url: str, pid: int) -> None:
        client = redis.Redis.from_url(url)
        for n, text in enumerate(texts):
            sha, queue = client.script_load(text), Queue(f"v{n}", redis=url)
            for phase, calls in (("warm", 10), ("count", args.calls)):
                for i in range(calls):
                    # the call Queue.create().save() sends, to the cut script
                    block = queue.create_block(queue.create("s", {"i": i}))
                    (call,) = ops.create_calls(queue.keys, [block], 1)
                    client.evalsha(sha, len(call.keys), *call.keys, *call.args)
                dump(pid, f"{phase}{n}")
            queue.close()
        client.close()

    _, counts = under_callgrind(run)
    per_call = [counts[f"count{n}"] / args.calls for n in range(len(texts))]
    print("| part of one single create (create_jobs, one job) | instructions | running total |")
    print("|---|---:|---:|")
    before = 0.0
    for (part, _), total in zip(CUTS, per_call):
        print(f"| {part} | {total - before:,.0f} | {total:,.0f} |")
        before = total


if __name__ == "__main__":
    main()
