"""The options that name a queue (-r/--redis-file, -q/--prefix, --shards), for every command
that opens one, and the queue they name."""

from __future__ import annotations

import argparse
from typing import Any

from ..queue import Queue
from .credentials import add_redis_options, redis_url


def add_queue_options(parser: Any) -> None:
    add_redis_options(parser)
    parser.add_argument("-q", "--prefix", default="q", help="queue prefix (default q)")
    parser.add_argument("--shards", type=int, default=None,
                        help="the queue's number of shards, if it is sharded")


def open_queue(args: argparse.Namespace) -> Queue:
    return Queue(args.prefix, redis_url(args), shards=args.shards)
