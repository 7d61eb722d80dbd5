"""The ``kueatomic`` command. Each subcommand lives in ``kueatomic/commands/<name>.py`` with
``register(subparsers)`` that adds its parser and sets ``func`` (taking the parsed args and
returning an exit code)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import KueError

SUBCOMMANDS = ("demo", "worker", "dashboard", "scripts", "stats")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kueatomic", description="Kue's Redis job queue, every transition one Lua script."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"kueatomic.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kueatomic.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KueError as exc:
        print(f"kueatomic {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
