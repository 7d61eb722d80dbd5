"""One hierarchy for every error kueatomic raises.

Each class carries the HTTP status the JSON API answers with, and the Lua scripts' error code
words (``KUE_NOT_FOUND ...``) map onto these classes, so an error means the same thing whether
it was found in Python or inside Redis.
"""

from __future__ import annotations


class KueError(Exception):
    """Base class of every kueatomic error."""

    http_status = 500
    code = "KUE_ERROR"


class InvalidArgument(KueError):
    """A value passed to the API is wrong; the message says what to pass instead."""

    http_status = 400
    code = "KUE_BAD_ARGS"


class InvalidPriority(InvalidArgument):
    code = "KUE_BAD_PRIORITY"


class InvalidState(InvalidArgument):
    code = "KUE_BAD_STATE"


class InvalidDelay(InvalidArgument):
    pass


class InvalidAttempts(InvalidArgument):
    pass


class NotSerializable(InvalidArgument):
    """Job data, a result or progress data that cannot be encoded as JSON."""


class PayloadTooLarge(InvalidArgument):
    http_status = 413
    code = "KUE_TOO_LARGE"


class InvalidRange(InvalidArgument):
    pass


class JobNotFound(KueError):
    http_status = 404
    code = "KUE_NOT_FOUND"


class LeaseLost(KueError):
    """The worker's lease on a job expired or was taken; its result was not recorded."""

    http_status = 409
    code = "KUE_LEASE_LOST"


class ConfigError(KueError):
    """Bad queue configuration, such as a Redis URL with a typo."""

    http_status = 500
    code = "KUE_CONFIG"


class RedisUnavailable(KueError):
    """Redis could not be reached or the connection broke; nothing was half-written."""

    http_status = 503
    code = "KUE_UNAVAILABLE"


class ScriptError(KueError):
    """A script failed with an error that has no code word (a bug, or Redis out of memory)."""


_BY_CODE: dict[str, type[KueError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        InvalidPriority,
        InvalidState,
        PayloadTooLarge,
        JobNotFound,
        LeaseLost,
    )
}

# The code words scripts may raise; tests check every header's Errors: line against this.
SCRIPT_ERROR_CODES = frozenset(_BY_CODE)


def from_script_error(message: str) -> KueError:
    """Turn a Redis error reply from a script into the matching typed error."""
    text = message.strip()
    code, _, rest = text.partition(" ")
    cls = _BY_CODE.get(code)
    if cls is None:
        # Redis prefixes script errors with context ("...: KUE_NOT_FOUND ..."); look inside.
        for known, known_cls in _BY_CODE.items():
            index = text.find(known + " ")
            if index >= 0:
                return known_cls(text[index + len(known) + 1 :].split(" script:")[0].strip())
        return ScriptError(text)
    return cls(rest)
