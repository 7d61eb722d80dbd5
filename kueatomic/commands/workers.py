"""``kueatomic workers``: the live workers of a queue (``queue.workers()``), one line each:
id, host, pid, types, busy/slots, when it started and its last heartbeat. Each worker process
heartbeats its entry every few seconds (``heartbeat_interval_ms``); a clean stop removes it at
once, a killed worker's entry expires with its ttl. ``--json`` prints the list as JSON, and
``--activity N`` adds the last N minutes' counts (``queue.activity(N)``) below the table (or as
``{"workers": [...], "activity": [...]}`` with ``--json``)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from ..presence import MAX_MINUTES
from .queue_args import add_queue_options, open_queue

COLUMNS = ("ID", "HOST", "PID", "TYPES", "BUSY", "STARTED", "HEARTBEAT")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("workers", help="list the live workers of a queue",
                                   description=__doc__)
    add_queue_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--activity", type=int, default=0, metavar="MINUTES",
                        help=f"also the counts of the last MINUTES minutes (1..{MAX_MINUTES})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    try:
        found = queue.workers()
        series = queue.activity(args.activity) if args.activity else None
    finally:
        queue.close()
    if args.json:
        print(json.dumps(found if series is None else {"workers": found, "activity": series},
                         indent=2))
        return 0
    print(table(found, now_ms=int(time.time() * 1000)))
    if series is not None:
        print()
        print(activity_table(series))
    return 0


def ago(ms: int, now_ms: int) -> str:
    """``12s ago``, ``3m ago``, ``2h ago``, ``4d ago`` (this host's clock against Redis')."""
    seconds = max(0, now_ms - ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def aligned(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def table(found: list[dict[str, Any]], now_ms: int) -> str:
    if not found:
        return "no live workers"
    rows = [COLUMNS]
    for entry in found:
        rows.append((entry["id"], entry["host"], str(entry["pid"]),
                     ",".join(entry["types"]) or "-", f"{entry['busy']}/{entry['slots']}",
                     ago(entry["started_at"], now_ms), ago(entry["heartbeat_at"], now_ms)))
    total_busy = sum(e["busy"] for e in found)
    total_slots = sum(e["slots"] for e in found)
    return aligned(rows) + f"\n{len(found)} workers, {total_busy}/{total_slots} slots busy"


def activity_table(series: list[dict[str, Any]]) -> str:
    def avg(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    rows = [("MINUTE (UTC)", "COMPLETED", "FAILED", "WAIT MS", "RUN MS")]
    for minute in series:
        rows.append((time.strftime("%Y-%m-%d %H:%M", time.gmtime(minute["minute"] / 1000)),
                     str(minute["completed"]), str(minute["failed"]),
                     avg(minute["wait_ms_avg"]), avg(minute["run_ms_avg"])))
    return aligned(rows)
