"""``kueatomic dashboard``: Kue's JSON API and the dashboard over HTTP (kue-dashboard's flags
``-p -r -q``, plus ``--host``, ``--title``, ``--auth``, ``--search`` and TLS)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ConfigError

AUTH_ENV = "KUEATOMIC_DASHBOARD_AUTH"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the dashboard and Kue's JSON API",
        description="Serve Kue's JSON API and the dashboard. "
        "Example: kueatomic dashboard -p 3050 -r redis://127.0.0.1:6379 -q q",
    )
    parser.add_argument("-p", "--port", type=int, default=3000, help="port (default 3000, as Kue)")
    parser.add_argument("-r", "--redis", default=None,
                        help="Redis URL (default REDIS_URL or redis://127.0.0.1:6379/0)")
    parser.add_argument("-q", "--prefix", default="q", help="queue prefix (default q)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--title", default="Kue", help="title shown in the dashboard")
    parser.add_argument("--auth", default=None, metavar="USER:PASSWORD",
                        help=f"require HTTP basic auth (or set {AUTH_ENV}, which keeps the "
                             "password out of the process list)")
    parser.add_argument("--search", action="store_true",
                        help="enable /job/search (jobs must be indexed: producers with "
                             "disable_search=False)")
    parser.add_argument("--certfile", default=None, help="TLS certificate (PEM); serves https")
    parser.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..aio import Queue as AsyncQueue
    from ..queue import Queue
    from ..web import create_app

    if bool(args.certfile) != bool(args.keyfile):
        raise ConfigError("TLS needs both --certfile and --keyfile")
    url = args.redis or os.environ.get("REDIS_URL")
    auth = args.auth or os.environ.get(AUTH_ENV) or None

    # Fail now, with the URL in the message, rather than on the first page load.
    probe = Queue(args.prefix, url)
    try:
        probe.ping()
        probe.check_format()  # refuse a queue a newer kueatomic wrote
    finally:
        probe.close()

    queue = AsyncQueue(args.prefix, url, disable_search=not args.search)
    app = create_app(queue, title=args.title, auth=auth)
    scheme = "https" if args.certfile else "http"
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"Running on {scheme}://{shown}:{args.port}/ (queue {args.prefix!r}"
          f"{', basic auth' if auth else ''}); Ctrl-C stops", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                ssl_certfile=args.certfile, ssl_keyfile=args.keyfile)
    return 0
