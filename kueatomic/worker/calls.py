"""The worker's script calls, sans I/O: how each is built and how its reply is read, plus the
pure rules for turning a handler's outcome into script arguments (result JSON, error text,
backoff delay). The threaded and the asyncio runtime both use these and only differ in how
they send them."""

from __future__ import annotations

import itertools
import json
import os
import socket
import traceback
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import backoff as _backoff
from ..codec import dumps, encodable, to_text
from ..errors import NotSerializable
from ..keyspace import Keys
from ..ops import Call, Read

_TOKEN_PREFIX = uuid.uuid4().hex[:12]
_claims = itertools.count(1)
_workers = itertools.count(1)


def claim_token() -> str:
    """A lease token unique to one claim call (process-random prefix + counter)."""
    return f"{_TOKEN_PREFIX}:{next(_claims)}"


def worker_id(job_type: str) -> str:
    """Kue's workerId, ``kue:<host>:<pid>:<type>:<n>``; n counts registrations per process."""
    return f"kue:{socket.gethostname()}:{os.getpid()}:{job_type}:{next(_workers)}"


# --- calls --------------------------------------------------------------------------------

def activate(keys: Keys, job_type: str, count: int, worker: str, token: str, lease_ms: int,
             rate: tuple[int, int] | None = None) -> Call:
    """``rate``: (limit, window_ms), at most ``limit`` jobs of the type started per window."""
    return Call("activate_jobs", (keys.type_state(job_type, "inactive"), keys.leases, keys.paused),
                (keys.prefix, job_type, count, worker, token, lease_ms, *(rate or ())))


# activate_jobs' replies that claimed nothing on purpose: {now, word, ms to wait}.
HOLD_WORDS = frozenset({"rate", "paused"})


def rate_wait_ms(reply: Sequence[Any]) -> int | None:
    """The ms to wait before claiming again, for activate_jobs' {now, "rate", ms} (a full
    rate window) and {now, "paused", ms} (the type is paused for every worker) replies."""
    if len(reply) == 3 and to_text(reply[1]) in HOLD_WORDS:
        return max(1, int(reply[2]))
    return None


def wait_for_token(keys: Keys, job_types: Sequence[str], timeout_ms: int) -> Read:
    """BLPOP on the types' wake-up lists: consumes one token, which the next claim re-syncs."""
    return Read(("BLPOP", *(keys.tokens(t) for t in job_types), max(timeout_ms, 1) / 1000))


def complete(keys: Keys, items: Sequence[tuple[int, str, int, str]]) -> Call:
    """items: (id, token, duration_ms, result_json or "")."""
    args: list[Any] = [keys.prefix, len(items)]
    for item in items:
        args.extend(item)
    return Call("complete_jobs", (keys.leases, keys.work_time, *keys.end_keys), tuple(args))


def fail(keys: Keys, items: Sequence[tuple[int, str, str, str, str, str]]) -> Call:
    """items: (id, token, error, summary, message, delay_ms or "")."""
    args: list[Any] = [keys.prefix, len(items)]
    for item in items:
        args.extend(item)
    return Call("fail_jobs", (keys.leases, *keys.end_keys), tuple(args))


def renew(keys: Keys, lease_ms: int, pairs: Iterable[tuple[int, str]]) -> Call:
    args: list[Any] = [keys.prefix, lease_ms]
    for job_id, token in pairs:
        args.append(job_id)
        args.append(token)
    return Call("renew_leases", (keys.leases,), tuple(args))


def promote(keys: Keys, limit: int) -> Call:
    return Call("promote_delayed_jobs", (keys.state("delayed"), *keys.kue_locks),
                (keys.prefix, limit))


def recover(keys: Keys, limit: int, max_stalls: int, grace_ms: int, rebalance: bool) -> Call:
    return Call("recover_jobs", (keys.leases, keys.state("active"), keys.types, *keys.end_keys),
                (keys.prefix, limit, max_stalls, grace_ms, "1" if rebalance else ""))


# --- replies ------------------------------------------------------------------------------

class AmbiguousClaim(ValueError):
    """A claimed job's packed fields (activate_jobs) hold a NUL byte inside a value, so they
    cannot be split back: the worker takes the claim back with reclaim_jobs, whose fields
    come as separate strings (the claim loop reclaims any claim whose reply it cannot read)."""


def unpacked(value: Any) -> Iterator[str]:
    """A job's fields and values from a claim reply, in order: activate_jobs packs them in
    one string (the count of field and value strings, then each, NUL-joined); reclaim_jobs
    gives HGETALL's flat array. Raises AmbiguousClaim when a value's own NUL bytes made the
    count disagree. (The drain reads 100 of these per claim: no per-field calls.)"""
    if isinstance(value, (str, bytes)):
        parts: list[str] = to_text(value).split("\0")
    elif value and isinstance(value[0], bytes):
        return iter([to_text(v) for v in value])
    else:
        return iter(value)
    pairs = iter(parts)
    if next(pairs) != str(len(parts) - 1):
        raise AmbiguousClaim("a claimed job's fields hold a NUL byte: reclaiming them unpacked")
    return pairs


def parse_claimed(reply: Sequence[Any], worker: str, token: str) -> list[tuple[int, dict[str, str]]]:
    """activate_jobs' (or reclaim_jobs') reply -> [(id, fields)], fields as the hash is
    after the claim."""
    if not reply or rate_wait_ms(reply) is not None:
        return []
    now = to_text(reply[0])
    claim = {"state": "active", "updated_at": now, "started_at": now, "workerId": worker,
             "lease": token}
    out = []
    for i in range(1, len(reply), 2):
        pairs = unpacked(reply[i + 1])
        fields = dict(zip(pairs, pairs))  # field, value, field, value, ...
        fields.update(claim)
        out.append((int(reply[i]), fields))
    return out


# --- outcomes -----------------------------------------------------------------------------

def encode_result(result: Any) -> str:
    """A handler's return value as stored JSON ("" for None); raises NotSerializable."""
    if result is None:
        return ""
    try:
        return dumps(result, "the handler's result")
    except NotSerializable as exc:
        raise NotSerializable(f"{exc} (got {type(result).__name__})") from None


def describe_failure(exc: BaseException) -> tuple[str, str, str]:
    """(error, summary, message) for a handler exception, shaped like Kue's Error handling:
    ``error`` starts with "Type: message" and holds the traceback (Kue stores the stack), the
    log summary is that first line, and the event message is the bare message."""
    message = str(exc) or type(exc).__name__
    head = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    summary = head.split("\n", 1)[0]
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    return encodable(f"{head}\n{stack}"), encodable(summary), encodable(message)


def plain_failure(message: str) -> tuple[str, str, str]:
    """A failure with a fixed text and no stack ("Shutdown", "TTL exceeded"), as Kue stores
    them: the text is the error, the summary line and the message."""
    return message, message, message


def backoff_delay(fields: dict[str, str]) -> tuple[str, str | None]:
    """The delay a Python backoff function gives for this failure, as script text ("" to let
    the script compute fixed/exponential/true itself), and a problem to report, if any."""
    text = fields.get("backoff")
    if not text or text == "true":
        return "", None
    attempts = int(fields.get("attempts") or 0) + 1
    if attempts >= int(fields.get("max_attempts") or 1):
        return "", None  # no retry follows: the delay does not matter
    spec = _backoff.decode(text)
    if not isinstance(spec, dict):
        return "", ("the backoff is Kue JavaScript source, which kueatomic never evaluates; "
                    "the job's own delay is used")
    if spec.get("type") != "function":
        return "", None
    name = str(spec.get("name"))
    function = _backoff.lookup(name)
    if function is None:
        return "", (f"backoff function {name!r} is not registered in this worker (import the "
                    "module that defines it); the job's own delay is used")
    delay = int(fields.get("delay") or 0)
    try:
        value = int(function(attempts, delay))
    except Exception as exc:  # noqa: BLE001 - a user function: report, use the job's delay
        return "", f"backoff function {name!r} raised {type(exc).__name__}: {exc}"
    return str(max(0, value)), None


# --- lost replies and shutdown --------------------------------------------------------------

def reclaim(keys: Keys, token: str, lease_ms: int) -> Call:
    """reclaim_jobs: the jobs a claim took whose reply was lost, by that claim's token, with
    their leases renewed. The reply has activate_jobs' shape: read it with parse_claimed."""
    return Call("reclaim_jobs", (keys.leases,), (keys.prefix, token, lease_ms))


def release(keys: Keys, items: Sequence[tuple[int, str]]) -> Call:
    """release_jobs: give claimed jobs back to inactive at shutdown, no attempt used.
    items: (id, token); the reply has one integer per item, 1 released, 0 lost."""
    args: list[Any] = [keys.prefix, len(items)]
    for item in items:
        args.extend(item)
    return Call("release_jobs", (keys.leases,), tuple(args))


def load_job(make: Any, owner: Any, job_id: int, fields: dict[str, str]) -> Any:
    """A claimed job as the handler gets it (``make`` is the job class's from_hash). Data that
    is not JSON (Node Kue's JSON.parse would throw too) raises, so the attempt fails saying
    so instead of the handler getting the raw text."""
    job = make(owner, job_id, fields)
    if isinstance(job.data, str):
        raw = fields.get("data") or ""
        try:
            json.loads(raw)
        except ValueError:
            raise NotSerializable(f"its data is not JSON: {raw[:80]!r}") from None
    return job


def load_failure(job_id: int, exc: BaseException) -> tuple[str, str, str]:
    """The failure of a job the worker could not even load (a field Node Kue or a hand edit
    wrote in a form kueatomic cannot read): its attempt fails, saying what was wrong."""
    text = f"Cannot load job {job_id}: {type(exc).__name__}: {exc}"
    return text, text, text
