"""``kueatomic stats``: counts per state (and per type) of a queue."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .queue_args import add_queue_options, open_queue


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("stats", help="print job counts per state and type as JSON")
    add_queue_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        out = {"counts": queue.counts(), "work_time": queue.work_time(),
               "types": {t: queue.counts(t) for t in sorted(queue.types())}}
    finally:
        queue.close()
    print(json.dumps(out, indent=2))
    return 0
