"""Responses shaped like Kue's (express ``res.json``): compact JSON, ``charset=utf-8``."""

from __future__ import annotations

from starlette.responses import JSONResponse


class KueJSONResponse(JSONResponse):
    """Compact JSON with ``Content-Type: application/json; charset=utf-8``, as Kue sends."""

    media_type = "application/json; charset=utf-8"
