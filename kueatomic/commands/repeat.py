"""``kueatomic repeat add|list|remove``: repeatable jobs (``queue.repeat``), fired by the
workers' upkeep. ``add`` and ``list`` print JSON (what ``queue.repeats()`` answers);
``remove`` exits 1 when there was no repeat of that name."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidArgument
from ..repeats import DEFAULT_CATCH_UP_MS
from .queue_args import add_queue_options, open_queue


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("repeat", help="add, list or remove repeatable jobs",
                                   description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add or replace a repeatable job")
    add.add_argument("type", help="the job type")
    schedule = add.add_mutually_exclusive_group(required=True)
    schedule.add_argument("--every", type=int, metavar="MS", help="a job every MS ms (>= 1000)")
    schedule.add_argument("--cron", metavar="EXPR", help="a job at each tick of a cron expression")
    add.add_argument("--tz", default="UTC", help="the cron's time zone (default UTC)")
    add.add_argument("--data", default=None, metavar="JSON", help="the jobs' data")
    add.add_argument("--options", default=None, metavar="JSON",
                     help='job options, e.g. \'{"priority": "high", "attempts": 3}\'')
    add.add_argument("--name", default=None, help="default: from the type and the schedule")
    add.add_argument("--catch-up-ms", type=int, default=DEFAULT_CATCH_UP_MS, metavar="MS",
                     help="ticks missed while no worker ran still get their job when at most "
                          f"MS old (default {DEFAULT_CATCH_UP_MS})")
    actions.add_parser("list", help="print every repeatable job as JSON")
    remove = actions.add_parser("remove", help="remove a repeatable job by name")
    remove.add_argument("name")
    for sub in (add, actions.choices["list"], remove):
        add_queue_options(sub)
    parser.set_defaults(func=run)


def _json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{option} must be JSON: {exc}") from None


def run(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        if args.action == "add":
            out: Any = queue.repeat(args.type, every=args.every, cron=args.cron, tz=args.tz,
                                    data=_json(args.data, "--data"),
                                    options=_json(args.options, "--options"), name=args.name,
                                    catch_up_ms=args.catch_up_ms)
        elif args.action == "list":
            out = queue.repeats()
        else:
            removed = queue.remove_repeat(args.name)
            print(json.dumps({"removed": removed}))
            return 0 if removed else 1
    finally:
        queue.close()
    print(json.dumps(out, indent=2))
    return 0
