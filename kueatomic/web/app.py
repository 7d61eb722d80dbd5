"""``create_app``: Kue's JSON API and the dashboard as one Starlette (ASGI) app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..errors import ConfigError, KueError
from . import api, dashboard, openapi
from .auth import BasicAuthMiddleware, parse_credentials
from .body import DEFAULT_MAX_BODY_BYTES
from .gateway import Gateway
from .guard import RequestGuard, allowed_hosts_list
from .headers import SecurityHeadersMiddleware
from .responses import KueJSONResponse


class KueApp(Starlette):
    """Starlette with the security headers around its whole stack, Starlette's own error
    middleware (which answers 500s) included."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack())


async def _kue_error(request: Request, exc: Exception) -> Response:
    """The one mapping from the error hierarchy to HTTP: the class's status, Kue's body."""
    assert isinstance(exc, KueError)
    return KueJSONResponse({"error": str(exc)}, status_code=exc.http_status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer JSON too, instead of Kue's HTML page."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Cannot {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    return KueJSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: still a JSON body (the traceback goes to the server's log, not the client)."""
    return KueJSONResponse({"error": "internal server error"}, status_code=500)


async def _openapi(request: Request) -> Response:
    return KueJSONResponse(request.app.state.openapi)


async def _metrics(request: Request) -> Response:
    """Prometheus' text format: ``kueatomic_jobs`` read now (through the gateway, so a sync
    queue's reads run in the thread pool), then this process's default registry (the
    ``kueatomic.metrics`` counters, if any are used here, and the process collectors)."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        from .. import metrics
    except ImportError:
        return KueJSONResponse({"error": "metrics need prometheus_client: pip install "
                                "'kueatomic[metrics]'"}, status_code=501)
    gateway = request.app.state.kue
    counts = await gateway.type_stats()
    scraped = metrics.CollectorRegistry(auto_describe=False)
    scraped.register(metrics.StaticCollector([metrics.jobs_family(gateway.queue.prefix,
                                                                  counts)]))
    body = generate_latest(scraped) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _own_queue(url: str, options: dict[str, Any]) -> Any:
    from ..async_queue import AsyncQueue

    return AsyncQueue(redis=url, **options)


def create_app(
    queue: Any,
    title: str = "Kue",
    *,
    auth: str | tuple[str, str] | None = None,
    allowed_hosts: Iterable[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    poll_interval_ms: int = 1000,
    **queue_options: Any,
) -> Starlette:
    """Kue's JSON API and the dashboard for ``queue``.

    ``queue`` is a ``kueatomic.aio.Queue`` (its calls are awaited), a sync
    ``kueatomic.Queue`` (its calls run in a thread pool, so the event loop never blocks), or a
    Redis URL, in which case the app makes its own ``aio.Queue`` from the URL and
    ``queue_options`` (``prefix=``, ``disable_search=``...) and closes it on shutdown.
    ``auth="user:password"`` requires HTTP basic auth on every route (``GET /metrics``,
    Prometheus' text format, included; it needs the ``metrics`` extra). Writes go through the
    same Lua scripts as the Python API, so each is atomic.

    Before auth, every request passes ``kueatomic.web.guard``: its Host must be a loopback
    name or in ``allowed_hosts`` (names or addresses, any port; ``"*"`` allows all), else
    400; a state change (POST, PUT, DELETE, PATCH, ``GET /inactive/:id``) that Origin or
    Sec-Fetch-Site says another site sent is refused with 403, and its body must be JSON.
    Every response carries Content-Security-Policy, ``X-Content-Type-Options: nosniff``,
    ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and
    ``Cross-Origin-Resource-Policy: same-origin`` (``kueatomic.web.headers``).

    Mount it inside another ASGI app like any Starlette app:
    ``Starlette(routes=[Mount("/kue", app=create_app(queue))], middleware=[...])``.
    """
    owned = isinstance(queue, str)
    if owned:
        queue = _own_queue(queue, queue_options)
    elif queue_options:
        raise ConfigError(
            f"{', '.join(sorted(queue_options))}: queue options only apply when create_app is "
            "given a Redis URL; set them on the Queue you pass instead"
        )
    if max_body_bytes < 1 or poll_interval_ms < 100:
        raise ConfigError("max_body_bytes must be >= 1 and poll_interval_ms >= 100")
    credentials = parse_credentials(auth) if auth is not None else None
    if isinstance(allowed_hosts, str):
        allowed_hosts = [allowed_hosts]
    hosts = allowed_hosts_list(allowed_hosts)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if owned:
            await queue.close()

    middleware = [Middleware(RequestGuard, allowed_hosts=hosts,
                             state_changing=api.STATE_CHANGING_GETS)]
    if credentials is not None:
        middleware.append(Middleware(BasicAuthMiddleware, credentials=credentials, realm=title))
    app = KueApp(
        routes=[*api.ROUTES, Route("/openapi.json", _openapi, methods=["GET"]),
                Route("/metrics", _metrics, methods=["GET"]), *dashboard.ROUTES],
        middleware=middleware,
        exception_handlers={KueError: _kue_error, HTTPException: _http_error,
                            Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.kue = Gateway(queue)
    app.state.queue = queue
    app.state.title = title
    app.state.allowed_hosts = hosts
    app.state.max_body_bytes = max_body_bytes
    app.state.poll_interval_ms = poll_interval_ms
    app.state.page_template = dashboard.load_template()
    app.state.openapi = openapi.document(title, basic_auth=credentials is not None)
    return app
