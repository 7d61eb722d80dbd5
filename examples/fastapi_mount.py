"""Kue's dashboard and JSON API inside your own web app, under /admin/kue.

    REDIS_URL=redis://127.0.0.1:6380/0 uvicorn examples.fastapi_mount:app --port 8000
    # then open http://127.0.0.1:8000/admin/kue/  (JSON: /admin/kue/stats, POST /admin/kue/job)

The README's "In your own app" recipe. It uses FastAPI when it is installed (kueatomic does not
depend on it) and Starlette, which kueatomic.web already needs, otherwise. The queue is an
aio.Queue the app closes in its own lifespan. REDIS_URL defaults to the embedded engine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import kueatomic.aio
from kueatomic.web import create_app

queue = kueatomic.aio.Queue("q", os.environ.get("REDIS_URL", "memory://"))
# allowed_hosts: the names your site answers to besides loopback (a mounted app answers only
# these), e.g. ALLOWED_HOSTS=jobs.example.com
allowed_hosts = [name for name in os.environ.get("ALLOWED_HOSTS", "").split(",") if name]
kue = create_app(queue, title="Jobs", allowed_hosts=allowed_hosts)  # a Starlette app (settings on kue.state)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    yield
    await queue.close()


async def signup(request: Any) -> JSONResponse:
    """One of the app's own routes, enqueueing a job on the same queue."""
    body = await request.json()
    job = await queue.create("email", {"title": "welcome", "to": body.get("email", "")}).save()
    return JSONResponse({"job": job.id})


try:
    from fastapi import FastAPI
except ImportError:  # Starlette: the same app without FastAPI
    from starlette.applications import Starlette

    app: Any = Starlette(routes=[Route("/signup", signup, methods=["POST"]), Mount("/admin/kue", app=kue)],
                         lifespan=lifespan)
else:
    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/signup", signup, methods=["POST"])
    app.mount("/admin/kue", kue)
# Put your authentication in front of /admin/kue (middleware=[Middleware(YourAuth)] on
# Starlette, app.add_middleware on FastAPI), or give create_app auth="user:password".
