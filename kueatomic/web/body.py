"""Reading a JSON request body with a size limit, failing with typed errors (400/413/415)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ..errors import InvalidArgument, PayloadTooLarge
from .errors import UnsupportedMediaType

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


_EMPTY = object()


async def read_json(request: Request, limit: int) -> Any:
    """The parsed body, or ``_EMPTY`` for a zero-length body. Refuses a body over ``limit``
    bytes before reading it all, a content type other than JSON, and malformed JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return _EMPTY
    check_json_media_type(request.headers.get("content-type"))
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"malformed JSON body: {exc}") from None


def check_json_media_type(content_type: str | None) -> None:
    """Raise ``UnsupportedMediaType`` (415) unless ``content_type`` declares JSON."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json (got {media_type or 'none'!r})"
        )


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (Python's parser would accept them)."""
    raise ValueError(f"{name} is not valid JSON")


def is_empty(value: Any) -> bool:
    """Kue answers 204 for an empty body, ``{}`` and ``[]`` (lodash.isEmpty)."""
    return value is _EMPTY or value == {} or value == []


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes")
