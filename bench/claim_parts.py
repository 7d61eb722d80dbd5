"""Where a claim's Redis instructions go: activate_jobs with one part taken out at a time.

    python3 bench/claim_parts.py               # about 20 s; needs valgrind and redis-server
    python3 bench/claim_parts.py --jobs 200    # smaller (the smoke test's size)

bench/lua_cost.py counts the claim phase whole; this takes activate_jobs as Redis runs it
(the libraries linked in, kueatomic/scripts.py) and makes variants that each leave out one
part (PARTS: a line of the script replaced). Each variant claims the same number of freshly
created jobs, 100 per call, under ``valgrind --tool=callgrind`` (counters dumped between
phases, as in lua_cost.py); a part's cost per job is the whole script's count minus the
variant's. The variants are measuring devices, not scripts to run: without a part, a claim
leaves the keyspace inconsistent. Each phase gets a keyspace of its own (the jobs are
deleted between phases, outside the counted part).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lua_cost import dump, under_callgrind
from kueatomic import Queue, scripts
from kueatomic.worker import calls

PER_CALL = 100
# (part, a line of activate_jobs as linked, what replaces it)
PARTS = [
    ("the `start` event", "    for _, job in ipairs(jobs) do publish(prefix, job.id, 'start', start_args) end", ""),
    ("returning the fields (packed)", "      out[#out + 1] = packed_fields(flat, texts)", "      out[#out + 1] = 1"),
    ("the claim HSET (5 fields)",
     "      redis.call('HSET', key, 'state', new_state, 'updated_at', now_text, unpack(job.set))", ""),
    ("ZADD to the active sets (global, type)",
     "  for _, k in ipairs(added) do send_many('ZADD', k, lists[k]) end", ""),
    ("ZADD to the lease deadlines", "    redis.call('ZADD', KEYS[2], unpack(leases))", ""),
    ("move_many whole (HSET, ZADDs, its Lua)",
     "    move_many(prefix, jobs, 'active', now, KEYS[1])", ""),
]


def variant(text: str, line: str, replacement: str) -> str:
    if text.count(line + "\n") != 1:
        raise SystemExit(f"activate_jobs no longer has exactly one line {line.strip()!r}: "
                         "update PARTS")
    return text.replace(line + "\n", replacement + "\n" if replacement else "")


def run(url: str, pid: int, jobs: int) -> dict[str, str]:
    """Claims of the whole script and of each variant; returns the phase label per name."""
    whole = scripts.get("activate_jobs").text
    texts = {"whole": whole, **{name: variant(whole, line, new) for name, line, new in PARTS}}
    client = redis.Redis.from_url(url)
    queue = Queue(redis=url)
    queue.driver.load_all()
    labels = {}
    for n, (name, text) in enumerate(texts.items()):
        sha = client.script_load(text)
        for start in range(0, jobs, 1000):
            queue.create_bulk([{"type": "w", "data": {"i": i}}
                               for i in range(start, min(jobs, start + 1000))])
        dump(pid, f"fill-{n}")
        for _ in range(jobs // PER_CALL):
            call = calls.activate(queue.keys, "w", PER_CALL, "bench", calls.claim_token(), 15_000)
            client.evalsha(sha, len(call.keys), *call.keys, *call.args)
        dump(pid, f"part-{n}")
        labels[name] = f"part-{n}"
        client.flushall()  # this server's own keyspace (a private server on a free port)
        client.script_flush()
        queue.driver.load_all()
        dump(pid, f"clean-{n}")
    queue.close()
    client.close()
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/claim_parts.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs claimed per variant")
    args = parser.parse_args()
    if args.jobs < PER_CALL or args.jobs % PER_CALL:
        parser.error(f"--jobs must be a multiple of {PER_CALL}")
    labels, counts = under_callgrind(lambda url, pid: run(url, pid, args.jobs))
    whole = counts[labels["whole"]] / args.jobs
    print(f"| part of a claim (activate_jobs, {PER_CALL} per call) | instructions per job |")
    print("|---|---:|")
    print(f"| the whole script | {whole:,.0f} |")
    for name, _, _ in PARTS:
        print(f"| {name} | {whole - counts[labels[name]] / args.jobs:,.0f} |")


if __name__ == "__main__":
    main()
