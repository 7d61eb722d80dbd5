"""``kueatomic scripts``: every Lua script with its version and SHA1 (what EVALSHA calls)."""

from __future__ import annotations

import argparse
from typing import Any

from .. import scripts


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("scripts", help="list the Lua scripts: name, version, SHA1")
    parser.add_argument("--show", metavar="NAME", help="print one script's full text as sent to Redis")
    parser.add_argument("--write-lock", action="store_true",
                        help="rewrite lua/scripts.lock (refused when a script changed without "
                             "a version bump)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = scripts.registry()
    if args.write_lock:
        refused = scripts.write_lock()
        for problem in refused:
            print(problem)
        return 1 if refused else 0
    if args.show:
        print(scripts.get(args.show).text)
        return 0
    width = max(len(name) for name in registry)
    print(f"{'name':<{width}}  version  sha1")
    for name, script in registry.items():
        print(f"{name:<{width}}  {script.version:>7}  {script.sha}")
    return 0
