"""The single-page dashboard: static files shipped in ``kueatomic/web/static`` (no build step)
and the page that loads them, at ``/`` and at Kue's ``/active``, ``/inactive``... views."""

from __future__ import annotations

import html
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..states import STATES

STATIC_DIR = Path(__file__).with_name("static")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

def load_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


async def page(request: Request) -> Response:
    """The dashboard, opened on the state in the path (``/`` shows active jobs, like Kue)."""
    state = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    settings = request.app.state
    # A <base> at the app's mount point keeps every relative URL right when the app is
    # mounted under a prefix (Mount("/kue", app)) or served behind a proxy with --root-path.
    values = {
        "base": request.scope.get("root_path", "").rstrip("/") + "/",
        "title": settings.title,
        "state": state if state in STATES else "active",
        "search": "on" if settings.kue.search_enabled else "off",
        "poll": str(settings.poll_interval_ms),
        "version": __version__,
    }
    # One pass, so a title containing "{{state}}" stays literal text.
    text = _PLACEHOLDER.sub(lambda m: html.escape(values[m.group(1)], quote=True),
                            settings.page_template)
    # Its Content-Security-Policy and the other security headers: web/headers.py.
    return HTMLResponse(text, headers={"Cache-Control": "no-cache"})


ROUTES = [
    Route("/", page, methods=["GET"]),
    *(Route(f"/{state}", page, methods=["GET"]) for state in STATES),
    Mount("/assets", app=StaticFiles(directory=STATIC_DIR), name="assets"),
]
