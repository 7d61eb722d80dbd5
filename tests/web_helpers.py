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
    app-owned asyncio Redis client needs)."""
    with TestClient(app, **options) as client:
        yield client


def make_app(flavor: str, queue: Any, backend: str, **options: Any) -> Any:
    """``sync``: the app over the sync Queue (thread pool); ``async``: the app builds its own
    asyncio Queue from the URL (the CLI's way)."""
    if flavor == "sync":
        return create_app(queue, **options)
    return create_app(backend, prefix=queue.prefix, disable_search=queue.disable_search, **options)
