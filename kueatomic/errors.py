"""One hierarchy for every error kueatomic raises.

Each class carries the HTTP status the JSON API answers with, and the Lua scripts' error code
words (``KUE_NOT_FOUND ...``) map onto these classes, so an error means the same thing whether
it was found in Python or inside Redis.
"""

from __future__ import annotations

import re


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


class JobFailed(KueError):
    """``job.wait()``: the job failed for good (no attempt left). ``error`` is the stored
    error (the handler's exception type, message and traceback), ``message`` its message."""

    def __init__(self, job_id: int, message: str, error: str | None = None) -> None:
        super().__init__(f"job {job_id} failed: {message}")
        self.job_id = job_id
        self.message = message
        self.error = error


class LeaseLost(KueError):
    """The worker's lease on a job expired or was taken; its result was not recorded."""

    http_status = 409
    code = "KUE_LEASE_LOST"


class InvalidTransition(KueError):
    """A move the state table (``kueatomic/states.py``) does not allow, such as a manual move
    of an active job to active, which would take it from the worker that holds it. Nothing
    was written."""

    http_status = 409
    code = "KUE_BAD_MOVE"


class ConfigError(KueError):
    """Bad queue configuration, such as a Redis URL with a typo."""

    http_status = 500
    code = "KUE_CONFIG"


class AuthenticationFailed(ConfigError):
    """Redis refused the connection's credentials: a wrong password or user, or none given to
    a server that requires one. Retrying cannot help, so it is not a ``RedisUnavailable``."""

    code = "KUE_AUTH_FAILED"


class IncompatibleFormat(ConfigError):
    """The queue's data was written by a newer kueatomic (``<prefix>:meta`` field ``format``
    is higher than this version reads): upgrade before running workers or the dashboard."""


class RedisUnavailable(KueError):
    """Redis could not be reached or the connection broke; nothing was half-written."""

    http_status = 503
    code = "KUE_UNAVAILABLE"


class RedisRefused(RedisUnavailable):
    """Redis answered, but refused the call for a reason that passes: out of memory (OOM), a
    read-only replica after a failover (READONLY), too few replicas (NOREPLICAS), a replica
    cut off from its master (MASTERDOWN), a long script running (BUSY), a dataset still
    loading (LOADING), a cluster resharding or down (TRYAGAIN, CLUSTERDOWN, MOVED, ASK), or a
    blocking read ended by a role change (UNBLOCKED). The call did nothing; retry later."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class NotReplicated(RedisUnavailable):
    """With ``Queue(wait_replicas=n)``: the write ran on the master, but fewer than n
    replicas acknowledged it within ``wait_timeout_ms``, so a failover could lose it. It is
    not reported as done: a worker sends its results again (they are idempotent), and a
    create raises this (a retried create may then exist twice, if the first one survives)."""

    code = "KUE_NOT_REPLICATED"


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
        InvalidTransition,
    )
}

# The code words scripts may raise; tests check every header's Errors: line against this.
SCRIPT_ERROR_CODES = frozenset(_BY_CODE)


# Error code words that mean an outage, not a bug: the server refused the call for now.
OUTAGE_CODES = frozenset({"OOM", "READONLY", "NOREPLICAS", "MASTERDOWN", "BUSY", "LOADING",
                          "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK", "UNBLOCKED"})
_OUTAGE_WORD = re.compile(r"(?:^|[\s:(-])(" + "|".join(sorted(OUTAGE_CODES)) + r")(?![A-Z_a-z])")


def refused(reason: str, text: str) -> RedisRefused:
    return RedisRefused(f"Redis refused the call for now ({reason}: {text}); it did nothing and "
                        "will be retried", reason)


def from_script_error(message: str) -> KueError:
    """Turn a Redis error reply from a script into the matching typed error: a KUE_* code
    word to its class, an outage word (``OUTAGE_CODES``) to ``RedisRefused``, anything else
    (WRONGTYPE, a Lua runtime error: a bug) to ``ScriptError``."""
    text = message.strip()
    first = text.split(" ", 1)[0]
    if first in OUTAGE_CODES:
        return refused(first, text)
    if not first.startswith("KUE_"):
        found = _OUTAGE_WORD.search(text)
        if found and not any(code in text for code in _BY_CODE):
            return refused(found.group(1), text)
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


def is_outage(exc: BaseException) -> bool:
    """Whether an error means Redis is away or refusing for now (retry with backoff and keep
    every result), as opposed to a bug (log it loudly)."""
    return isinstance(exc, RedisUnavailable)
