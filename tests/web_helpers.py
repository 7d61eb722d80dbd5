"""Shared pieces of the web tests: a TestClient over the app on either client flavour."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kueatomic.web import create_app

with warnings.catch_warnings():
    # Starlette would like httpx2; httpx serves these tests the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@contextmanager
def client_for(app: Any, **options: Any) -> Iterator[TestClient]:
    """A TestClient inside the app's lifespan (one event loop for the whole test, which an
    app-owned asyncio Redis client needs). It sends ``Host: localhost``, which the app's
    Host allow-list accepts by default (TestClient's own "testserver" is refused)."""
    options.setdefault("base_url", "http://localhost")
    with TestClient(app, **options) as client:
        yield client


def make_app(flavor: str, queue: Any, backend: str, **options: Any) -> Any:
    """``sync``: the app over the sync Queue (thread pool); ``async``: the app builds its own
    asyncio Queue from the URL (the CLI's way)."""
    if flavor == "sync":
        return create_app(queue, **options)
    return create_app(backend, prefix=queue.prefix, disable_search=queue.disable_search, **options)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a background thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def app_with_a_bug(queue: Any) -> Any:
    """The app over ``queue`` whose every Redis call raises a plain bug (RuntimeError), for
    the 500 path."""
    from kueatomic.web import create_app

    app = create_app(queue)

    def broken(plan: Any) -> Any:
        raise RuntimeError("boom")

    queue.driver.run = broken
    return app
