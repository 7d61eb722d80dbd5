"""Retry backoff specs: how they are validated and stored (docs/redis-layout.md §2, field backoff).

Fixed and exponential delays are computed inside the fail script from the stored spec. A Python
callable cannot be stored, so the job stores its name and the worker calls the function,
found in this process's registry; nothing is ever evaluated from Redis.

Node Kue's ``Job.get`` evaluates the stored text as JavaScript, whoever wrote it. So kueatomic
only ever writes ``"true"`` or a flat JSON object of string and number values, which evaluates
to plain data, and refuses JavaScript source from every producer (the builder and ``POST
/job``). A job Node Kue stored with a JavaScript backoff keeps it: re-saving a loaded job leaves
the field alone unless its backoff was changed (``JobBase.backoff_update``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from .codec import MAX_MS, dumps, loads_or_raw
from .errors import InvalidArgument

BackoffFunction = Callable[[int, int], float]

_FUNCTIONS: dict[str, BackoffFunction] = {}
# "module:qualname" as function_name() writes it: ASCII, no quotes or spaces, so the stored
# object stays plain data to Node's eval.
_NAME = re.compile(r"[A-Za-z_][\w.]*:[\w.<>]+\Z", re.ASCII)
_KINDS = ("fixed", "exponential")
_NUMBERS = ("delay", "maxDelay")
_USE = ("use True, {'type': 'fixed'|'exponential', 'delay': ms, 'maxDelay': ms} or a Python "
        "function (attempts, delay) -> ms decorated with @kueatomic.backoff_function")


def function_name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', None)}:{getattr(fn, '__qualname__', None)}"


def backoff_function(fn: BackoffFunction) -> BackoffFunction:
    """Register ``fn(attempts, delay_ms) -> delay_ms`` so workers can find it by name.

    Decorate it at module level in a module both producers and workers import."""
    _FUNCTIONS[function_name(fn)] = fn
    return fn


def lookup(name: str) -> BackoffFunction | None:
    return _FUNCTIONS.get(name)


def encode(spec: Any) -> str:
    """The text stored in the ``backoff`` field ("" = no backoff): ``"true"``,
    ``{"type":"fixed"|"exponential"[,"delay":N][,"maxDelay":M]}`` or
    ``{"type":"function","name":"<module>:<qualname>"}``. Anything else, JavaScript source
    above all, raises ``InvalidArgument``."""
    if spec is None or spec is False:
        return ""
    if spec is True:
        return "true"
    if isinstance(spec, str):
        if spec.lstrip().startswith(("function", "(", "async")) or "=>" in spec:
            raise InvalidArgument(
                "backoff as JavaScript source is refused: Node Kue evaluates the stored text "
                "(Job.get), so it would run as code in every Node Kue worker and dashboard on "
                f"this Redis; {_USE}")
        raise InvalidArgument(f"backoff must not be a string ({spec[:80]!r}); {_USE}")
    if callable(spec):
        return _function(function_name(spec), registering=spec)
    if isinstance(spec, dict):
        if spec.get("type") == "function":
            if set(spec) != {"type", "name"} or not isinstance(spec["name"], str):
                raise InvalidArgument(
                    f"a function backoff is {{'type': 'function', 'name': 'module:qualname'}}, "
                    f"not {spec!r}")
            return _function(spec["name"])
        return _delays(spec)
    raise InvalidArgument(f"backoff {spec!r} is not supported; {_USE}")


def _function(name: str, registering: BackoffFunction | None = None) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"backoff function name {name!r} must be module:qualname (a named function "
            "defined in a module, decorated with @kueatomic.backoff_function)")
    if registering is not None:
        backoff_function(registering)
    return dumps({"type": "function", "name": name})


def _delays(spec: dict[Any, Any]) -> str:
    unknown = sorted(str(key) for key in spec if key not in ("type", *_NUMBERS))
    if unknown:
        raise InvalidArgument(f"backoff has unknown field(s) {', '.join(unknown)}; {_USE}")
    kind = spec.get("type", "fixed")  # Kue needs a type; kueatomic writes the default out
    if kind not in _KINDS:
        raise InvalidArgument(f"backoff type must be 'fixed' or 'exponential', not {kind!r}")
    out: dict[str, Any] = {"type": kind}
    for field in _NUMBERS:
        value = spec.get(field)
        if value is None:
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not 0 <= value <= MAX_MS):
            raise InvalidArgument(
                f"backoff {field} must be a number of ms from 0 to {MAX_MS}, not {value!r}")
        out[field] = int(value) if float(value).is_integer() else value
    return dumps(out)


def decode(text: str | None) -> Any:
    if not text:
        return None
    if text == "true":
        return True
    return loads_or_raw(text)
