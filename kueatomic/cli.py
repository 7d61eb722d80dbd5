"""The ``kueatomic`` command. Each subcommand lives in ``kueatomic/commands/<name>.py`` with
``register(subparsers)`` that adds its parser and sets ``func`` (taking the parsed args and
returning an exit code).

Logging: the library only calls ``logging.getLogger("kueatomic...")`` and adds no handlers;
this command (and nothing else) puts one stderr handler with timestamps on the ``kueatomic``
logger, at ``--log-level`` (default INFO), for as long as :func:`main` runs. Subcommands that
draw their own screen (``demo``) keep printing to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from typing import TextIO

from .errors import KueError

SUBCOMMANDS = ("demo", "worker", "dashboard", "scripts", "stats", "repeat", "clean", "workers")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def version_text() -> str:
    """``kueatomic <version> (data format <n>)``: the installed distribution's version (from
    its metadata, so it is the one pip installed) and the Redis data format it reads and
    writes (``<prefix>:meta`` field ``format``)."""
    from . import __version__
    from .states import DATA_FORMAT

    return f"kueatomic {__version__} (data format {DATA_FORMAT})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kueatomic", description="Kue's Redis job queue, every transition one Lua script."
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO",
                        help="messages of the kueatomic logger shown on stderr (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"kueatomic.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kueatomic.commands.{name}":
                raise
            continue
        module.register(subparsers)
    plain_help(parser)
    return parser


_RST_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`]+)`")  # :func:`x`, :class:`~a.B`
_RST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def plain_text(text: str) -> str:
    """The reStructuredText of a docstring as plain text for ``--help``: ``x`` and :func:`x`
    become x (:class:`~a.B` becomes B, as Sphinx shows it), a paragraph's closing ``::``
    becomes ``:``. The subcommands' descriptions are their modules' docstrings, written for
    the source; this is the one place they are made fit for a terminal."""
    text = _RST_ROLE.sub(lambda m: m[2].rsplit(".", 1)[-1] if m[1] else m[2], text)
    text = _RST_LITERAL.sub(r"\1", text)
    return re.sub(r"::$", ":", text, flags=re.MULTILINE)


def plain_help(parser: argparse.ArgumentParser) -> None:
    """Apply :func:`plain_text` to the description, epilog and every argument's help of
    ``parser`` and, through its subcommands, of every parser below it."""
    if parser.description:
        parser.description = plain_text(parser.description)
    if parser.epilog:
        parser.epilog = plain_text(parser.epilog)
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            action.help = plain_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.help:
                    choice.help = plain_text(choice.help)
            for sub in action.choices.values():
                plain_help(sub)


class _CliHandler(logging.StreamHandler[TextIO]):
    """The one handler the CLI adds (a class of its own, so it is found and removed again)."""


def configure_logging(level: str) -> logging.Handler:
    """Give the ``kueatomic`` logger one timestamped stderr handler at ``level``, replacing
    one an earlier call added; returns it for :func:`unconfigure_logging`. Records do not
    also propagate to the root logger, so each is printed once."""
    logger = logging.getLogger("kueatomic")
    for old in [h for h in logger.handlers if isinstance(h, _CliHandler)]:
        logger.removeHandler(old)
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def unconfigure_logging(handler: logging.Handler) -> None:
    """Undo :func:`configure_logging` (``main`` called in-process leaves no trace)."""
    logger = logging.getLogger("kueatomic")
    logger.removeHandler(handler)
    handler.close()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


SIGPIPE_EXIT = 128 + 13


def stdout_closed() -> int:
    """The reader of stdout went away (``kueatomic scripts | head -1``). Instead of Python's
    traceback (and a second "Exception ignored" one from the flush at exit), stdout is pointed
    at /dev/null so whatever is still buffered goes nowhere, and the exit code is 141
    (128 + SIGPIPE): what a Unix tool killed by SIGPIPE reports, like ``cat`` in the same pipe,
    so the shell is quiet and ``set -o pipefail`` still sees that not all output was read."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (main called in-process)
        pass
    return SIGPIPE_EXIT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = configure_logging(str(args.log_level).upper())  # dashboard: uvicorn's lower case
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        return stdout_closed()
    except KueError as exc:
        print(f"kueatomic {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        handler.flush()
        unconfigure_logging(handler)


if __name__ == "__main__":
    sys.exit(main())
