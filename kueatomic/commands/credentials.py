"""Where the commands get secrets: the environment or a file, never needed on the command line
(every user of the machine can read a process's arguments with ``ps``).

Every command that talks to Redis takes its URL from ``-r/--redis``, ``--redis-file PATH`` (a
file holding the URL, e.g. a Docker or systemd secret) or ``REDIS_URL``, through
:func:`add_redis_options` and :func:`redis_url`; a password given in ``-r`` works but earns a
warning on stderr. ``kueatomic dashboard`` reads basic auth the same way (:func:`secret`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ConfigError

REDIS_ENV = "REDIS_URL"


def add_redis_options(parser: Any, default: str = "REDIS_URL or redis://127.0.0.1:6379/0") -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-r", "--redis", default=None, metavar="URL",
                       help=f"Redis URL (default {default}); a password in it shows in ps: "
                            "use --redis-file or REDIS_URL for one")
    group.add_argument("--redis-file", default=None, metavar="PATH",
                       help="read the Redis URL from this file (first line)")


def read_secret_file(path: str, option: str) -> str:
    """The first line of ``path``, stripped; a ConfigError naming ``option`` if it cannot be
    read or is empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc})") from None
    lines = text.strip().splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise ConfigError(f"{option} {path} is empty")
    return value


def warn_secret_in_argv(option: str, instead: str) -> None:
    print(f"kueatomic: WARNING: {option} on the command line shows its password to every user "
          f"of this machine (ps, /proc/<pid>/cmdline); use {instead} instead", file=sys.stderr,
          flush=True)


def url_password(url: str) -> str | None:
    """The password a Redis URL carries (in its user info or a ``password=`` query), if any."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return password
    given = parse_qs(parts.query).get("password")
    return given[0] if given and given[0] else None


def shown_url(url: str) -> str:
    """``url`` with its password masked, for printing."""
    if url_password(url) is None:
        return url
    masked = re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*:)[^/]*@", r"\1***@", url,
                    flags=re.IGNORECASE)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", masked)


def redis_url(args: argparse.Namespace, *, env: bool = True) -> str | None:
    """The Redis URL from ``--redis-file``, ``-r`` (warning when it holds a password) or, with
    ``env``, ``REDIS_URL``; None when none is given (the library's default applies)."""
    import os

    if getattr(args, "redis_file", None):
        return read_secret_file(args.redis_file, "--redis-file")
    if args.redis:
        if url_password(args.redis) is not None:
            warn_secret_in_argv("-r/--redis with a password", f"--redis-file PATH or {REDIS_ENV}")
        return str(args.redis)
    return (os.environ.get(REDIS_ENV) or None) if env else None


def secret(value: str | None, file: str | None, *, option: str, file_option: str,
           env_name: str) -> str | None:
    """A secret from ``option`` (warned about), ``file_option``'s file or ``env_name``."""
    import os

    if value and file:
        raise ConfigError(f"give {option} or {file_option}, not both")
    if file:
        return read_secret_file(file, file_option)
    if value:
        warn_secret_in_argv(option, f"{file_option} PATH or {env_name}")
        return value
    return os.environ.get(env_name) or None
