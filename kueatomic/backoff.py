"""Retry backoff specs: how they are validated and stored (kue-wire.md §2, field backoff).

Fixed and exponential delays are computed inside the fail script from the stored spec. A Python
callable cannot be stored, so the job stores its name and the worker calls the function,
found in this process's registry; nothing is ever evaluated from Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .codec import dumps, loads_or_raw
from .errors import InvalidArgument

BackoffFunction = Callable[[int, int], float]

_FUNCTIONS: dict[str, BackoffFunction] = {}


def function_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def backoff_function(fn: BackoffFunction) -> BackoffFunction:
    """Register ``fn(attempts, delay_ms) -> delay_ms`` so workers can find it by name.

    Decorate it at module level in a module both producers and workers import."""
    _FUNCTIONS[function_name(fn)] = fn
    return fn


def lookup(name: str) -> BackoffFunction | None:
    return _FUNCTIONS.get(name)


def encode(spec: Any) -> str:
    """The text Kue stores in the ``backoff`` field ("" = no backoff)."""
    if spec is None or spec is False:
        return ""
    if spec is True:
        return "true"
    if callable(spec):
        backoff_function(spec)
        return dumps({"type": "function", "name": function_name(spec)})
    if isinstance(spec, str) and spec.lstrip().startswith("function"):
        return spec  # a JavaScript backoff stored by Node Kue, kept as it is on re-save
    if isinstance(spec, dict) and spec.get("type") == "function" and isinstance(spec.get("name"), str):
        return dumps(spec)  # a Python function's stored name, as decode() gives it back
    if isinstance(spec, dict):
        kind = spec.get("type", "fixed")
        if kind not in ("fixed", "exponential"):
            raise InvalidArgument(
                f"backoff type must be 'fixed' or 'exponential', not {kind!r}"
            )
        for field in ("delay", "maxDelay"):
            value = spec.get(field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise InvalidArgument(f"backoff {field} must be a number of ms >= 0, not {value!r}")
        return dumps(spec)
    raise InvalidArgument(
        "backoff must be True, {'type': 'fixed'|'exponential', 'delay': ms}, or a function "
        f"(attempts, delay) -> ms; got {spec!r}"
    )


def decode(text: str | None) -> Any:
    if not text:
        return None
    if text == "true":
        return True
    return loads_or_raw(text)
