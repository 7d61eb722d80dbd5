"""``kueatomic clean`` and ``kueatomic retry``: remove old jobs of a state, or put failed jobs
back to inactive, in bulk (queue.clean / queue.retry_failed; short script calls each)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .queue_args import add_queue_options, open_queue


def _queue_options(parser: argparse.ArgumentParser) -> None:
    add_queue_options(parser)
    parser.add_argument("-t", "--type", default=None, help="only jobs of this type")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")


def register(subparsers: Any) -> None:
    clean = subparsers.add_parser(
        "clean", help="remove the jobs of a state older than an age",
        description="Remove up to --limit jobs in STATE that entered it at least --older-than "
                    "ms ago (each as remove() would: its log, search entries, unique key; "
                    "its waiting dependents fail). Prints {\"removed\": n}.")
    clean.add_argument("state", choices=("complete", "failed", "inactive", "delayed"))
    clean.add_argument("--older-than", type=int, default=0, metavar="MS",
                       help="minimum age in the state, in ms (default 0: all)")
    _queue_options(clean)
    clean.set_defaults(func=run_clean)
    retry = subparsers.add_parser(
        "retry", help="put failed jobs back to inactive",
        description="Move up to --limit failed jobs back to inactive, as the dashboard's "
                    "restart does. Prints {\"retried\": n}.")
    _queue_options(retry)
    retry.set_defaults(func=run_retry)


def run_clean(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        removed = queue.clean(args.state, args.older_than, args.limit, args.type)
    finally:
        queue.close()
    print(json.dumps({"removed": removed}))
    return 0


def run_retry(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        retried = queue.retry_failed(args.type, args.limit)
    finally:
        queue.close()
    print(json.dumps({"retried": retried}))
    return 0
