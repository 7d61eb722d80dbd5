"""``kueatomic stats``: counts per state (and per type) of a queue."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..queue import Queue
from .credentials import add_redis_options, redis_url


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stats", help="print job counts per state and type as JSON")
    add_redis_options(parser)
    parser.add_argument("-q", "--prefix", default="q", help="queue prefix (default q)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    queue = Queue(args.prefix, redis_url(args))
    try:
        out = {"counts": queue.counts(), "work_time": queue.work_time(),
               "types": {t: queue.counts(t) for t in sorted(queue.types())}}
    finally:
        queue.close()
    print(json.dumps(out, indent=2))
    return 0
