"""Encodings shared with Kue: JSON as JavaScript's JSON.stringify writes it, Node's
util.format for log lines, and text helpers for replies that may be bytes."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import NotSerializable, PayloadTooLarge

# The longest delay, ttl or backoff in ms: about 69 years, far beyond any sane one, and exact
# as a double once added to a timestamp.
MAX_MS = 2**41


def to_text(value: Any) -> Any:
    """Replies are str with decode_responses=True, bytes on a client the user passed in."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def encodable(text: str) -> str:
    """Text Redis can take as UTF-8: a lone surrogate ("\\ud800", which an exception message
    can hold) becomes a backslash escape instead of failing the call that sends it."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# One encoder for every job: json.dumps() with options builds a new JSONEncoder per call,
# a measurable share of create_bulk's Python time.
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                 allow_nan=False).encode  # raises like json.dumps


def dumps(value: Any, what: str = "value", limit: int | None = None) -> str:
    """Compact JSON like JSON.stringify; raises NotSerializable / PayloadTooLarge."""
    try:
        text = _compact_json(value)
    except (TypeError, ValueError) as exc:
        raise NotSerializable(f"{what} must be JSON-serialisable: {exc}") from None
    if text.isascii():  # the usual case: its length is its size, and it encodes
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate, as "\ud800" in Python text
            raise NotSerializable(f"{what} holds text that is not valid Unicode") from None
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"{what} is {size} bytes as JSON; the limit is {limit} bytes "
            "(Queue(max_payload_bytes=...))"
        )
    return text


# The C scanner json.loads ends in, called directly: loads() wraps it in two regex matches
# for surrounding whitespace, a third of the cost of decoding a small job's data.
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__


def loads_or_raw(text: str | None) -> Any:
    """Parse stored JSON; a value Kue (or a person) stored as plain text stays text."""
    if text is None:
        return None
    try:
        value, end = _scan_json(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError):
        pass  # leading whitespace, or not JSON: json.loads decides
    try:
        return json.loads(text)
    except ValueError:
        return text


def js_number(value: float) -> str:
    """A number as JavaScript prints it (1.0 -> "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
    return repr(value)


def inspect(value: Any, depth: int = 0) -> str:
    """Node's util.inspect for plain data: { obj: 1, arr: [ 1, 2 ] }."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return js_number(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'" if depth else value
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[ " + ", ".join(inspect(item, depth + 1) for item in value) + " ]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for key, item in value.items():
            name = str(key)
            if not (name.isidentifier()):
                name = "'" + name + "'"
            parts.append(f"{name}: {inspect(item, depth + 1)}")
        return "{ " + ", ".join(parts) + " }"
    return str(value)


def format_log(message: Any, *args: Any) -> str:
    """Node's util.format, which Kue's job.log uses: %s %d %i %f %j %o %O %% placeholders,
    leftover arguments appended with spaces; a non-string first argument is inspected."""
    if not isinstance(message, str):
        return " ".join(inspect(item) for item in (message, *args))
    out: list[str] = []
    rest = list(args)
    i = 0
    while i < len(message):
        char = message[i]
        if char == "%" and i + 1 < len(message):
            spec = message[i + 1]
            if spec == "%":
                out.append("%")
                i += 2
                continue
            if spec in "sdifjoO" and rest:
                out.append(_format_one(spec, rest.pop(0)))
                i += 2
                continue
        out.append(char)
        i += 1
    text = "".join(out)
    for item in rest:
        text += " " + (item if isinstance(item, str) else inspect(item))
    return text


def _format_one(spec: str, value: Any) -> str:
    if spec == "s":
        return value if isinstance(value, str) else inspect(value)
    if spec in "di":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "NaN"
        return js_number(int(number) if spec == "i" or number.is_integer() else number)
    if spec == "f":
        try:
            return js_number(float(value))
        except (TypeError, ValueError):
            return "NaN"
    if spec == "j":
        try:
            return dumps(value)
        except NotSerializable:
            return "[Circular]"
    return inspect(value)
