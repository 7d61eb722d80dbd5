"""``kueatomic dashboard``: Kue's JSON API and the dashboard over HTTP (kue-dashboard's flags
``-p -r -q``, plus ``--host``, ``--allow-host``, ``--title``, ``--auth``/``--auth-file``,
``--search`` and TLS). Listening beyond loopback without auth, or with auth but without TLS,
prints a warning on stderr."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from .. import extras
from ..errors import ConfigError
from .credentials import add_redis_options, redis_url, secret

AUTH_ENV = "KUEATOMIC_DASHBOARD_AUTH"
WILDCARDS = ("0.0.0.0", "::", "")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the dashboard and Kue's JSON API",
        description="Serve Kue's JSON API and the dashboard. "
        "Example: kueatomic dashboard -p 3050 -r redis://127.0.0.1:6379 -q q",
    )
    parser.add_argument("-p", "--port", type=int, default=3000, help="port (default 3000, as Kue)")
    add_redis_options(parser)
    parser.add_argument("-q", "--prefix", default="q", help="queue prefix (default q)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host is NAME (any port; repeatable; "
                             "'*' for any). Loopback names and --host are always allowed; "
                             "other Hosts get 400, against DNS rebinding")
    parser.add_argument("--title", default="Kue", help="title shown in the dashboard")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                        help=f"require HTTP basic auth; shows in ps: prefer --auth-file or "
                             f"{AUTH_ENV}")
    parser.add_argument("--auth-file", default=None, metavar="PATH",
                        help="require HTTP basic auth, user:password read from this file")
    parser.add_argument("--search", action="store_true",
                        help="enable /job/search (jobs must be indexed: producers with "
                             "disable_search=False)")
    parser.add_argument("--certfile", default=None, help="TLS certificate (PEM); serves https")
    parser.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    extras.require("web", "kueatomic dashboard")
    import uvicorn

    from ..aio import Queue as AsyncQueue
    from ..queue import Queue
    from ..web import create_app

    if bool(args.certfile) != bool(args.keyfile):
        raise ConfigError("TLS needs both --certfile and --keyfile")
    url = redis_url(args)
    auth = secret(args.auth, args.auth_file, option="--auth", file_option="--auth-file",
                  env_name=AUTH_ENV)

    # Fail now, with the URL in the message, rather than on the first page load.
    probe = Queue(args.prefix, url)
    try:
        probe.ping()
        probe.check_format()  # refuse a queue a newer kueatomic wrote
    finally:
        probe.close()

    queue = AsyncQueue(args.prefix, url, disable_search=not args.search)
    hosts = allowed_hosts(args.host, args.allow_host)
    app = create_app(queue, title=args.title, auth=auth, allowed_hosts=hosts)
    for warning in exposure_warnings(args.host, args.port, bool(auth), bool(args.certfile),
                                     app.state.allowed_hosts):
        print(warning, file=sys.stderr, flush=True)
    scheme = "https" if args.certfile else "http"
    shown = "127.0.0.1" if args.host in WILDCARDS else args.host
    print(f"Running on {scheme}://{shown}:{args.port}/ (queue {args.prefix!r}"
          f"{', basic auth' if auth else ''}); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """The Host names to answer besides loopback's: the listening address unless it is a
    wildcard, and every --allow-host."""
    return ([] if host in WILDCARDS else [host]) + list(extra)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, or a wildcard: reachable from elsewhere


def exposure_warnings(host: str, port: int, auth: bool, tls: bool,
                      answered: tuple[str, ...]) -> list[str]:
    """What to shout on stderr before serving on ``host``: nothing on loopback."""
    if is_loopback(host):
        return []
    where = f"{host or '*'}:{port}" + (" (every interface)" if host in WILDCARDS else "")
    out = []
    if not auth:
        out.append(
            f"kueatomic dashboard: WARNING: listening on {where} WITHOUT authentication: "
            "anyone who can reach this port can read every job's data and retry, reprioritise "
            f"or remove jobs. Require a password with --auth-file PATH or {AUTH_ENV} "
            "(user:password), serve TLS (--certfile/--keyfile), or listen on 127.0.0.1.")
    elif not tls:
        out.append(
            f"kueatomic dashboard: WARNING: basic auth over plain HTTP on {where}: the "
            "password crosses the network readable by anyone on the path. Serve TLS with "
            "--certfile and --keyfile, or put a TLS proxy in front and listen on 127.0.0.1.")
    if "*" not in answered:
        out.append(f"kueatomic dashboard: answering only requests whose Host is one of "
                   f"{', '.join(answered)} (any port); add the name clients use with "
                   "--allow-host NAME.")
    return out
