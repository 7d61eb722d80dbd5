"""The sync driver: sends a plan's batches with redis-py and maps errors to KueError.

A batch of one request is one command; a larger batch is one pipeline (no MULTI: each
script is atomic by itself). EVALSHA is always used; on NOSCRIPT (Redis restarted or
SCRIPT FLUSH) the script is loaded and only the refused requests are sent again, which is
safe because a refused EVALSHA did nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import redis

from . import scripts
from .cluster import connection_lost, route_of
from .errors import (
    AuthenticationFailed,
    ConfigError,
    KueError,
    NotReplicated,
    RedisUnavailable,
    ScriptError,
    from_script_error,
    refused,
)
from .ops import Batch, Call, Plan, Read, Request, T, drive

CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


def command_of(request: Request) -> tuple[Any, ...]:
    if isinstance(request, Call):
        script = scripts.get(request.script)
        return ("EVALSHA", script.sha, len(request.keys), *request.keys, *request.args)
    return request.command


# redis-py strips these code words from the message and raises its own class instead.
_REFUSALS: tuple[tuple[type[BaseException], str], ...] = (
    (redis.exceptions.OutOfMemoryError, "OOM"), (redis.exceptions.ReadOnlyError, "READONLY"),
    (redis.exceptions.TryAgainError, "TRYAGAIN"), (redis.exceptions.MovedError, "MOVED"),
    (redis.exceptions.AskError, "ASK"), (redis.exceptions.MasterDownError, "MASTERDOWN"),
    (redis.exceptions.ClusterDownError, "CLUSTERDOWN"))


def map_error(exc: BaseException) -> KueError:
    if isinstance(exc, KueError):
        return exc
    for cls, code in _REFUSALS:
        if isinstance(exc, cls):
            return refused(code, str(exc))
    if isinstance(exc, redis.ResponseError):
        return from_script_error(str(exc))
    return ScriptError(str(exc))


def closed_socket(exc: BaseException) -> bool:
    """redis-py raises ValueError when another thread closed the client mid-command
    (``close()`` during a blocking read): that is a lost connection too."""
    return isinstance(exc, ValueError) and "closed file" in str(exc)


def settle(reply: Any) -> Any:
    """A pipeline reply as plans see it: errors become KueError values; a broken
    connection is raised (the whole batch is in doubt)."""
    if isinstance(reply, BaseException):
        if isinstance(reply, CONNECTION_ERRORS):
            raise reply
        return map_error(reply)
    return reply


# A refused request did nothing, so it is sent again: after SCRIPT LOAD for NOSCRIPT (Redis
# restarted or its scripts were flushed), to the new owner for MOVED (a cluster slot moved,
# or a failover). Three rounds cover MOVED then NOSCRIPT on a promoted replica; what is still
# refused after that is an error.
RESEND_ROUNDS = 3


def to_resend(batch: Sequence[Request], replies: Sequence[Any],
              client: Any) -> tuple[list[int], list[str]]:
    """Indexes of the requests to send again, and the scripts to load before; a MOVED reply
    re-points the client's slot route (a client of one Redis sends nothing again for it)."""
    again: list[int] = []
    load: dict[str, None] = {}
    route = route_of(client)
    for index, (request, reply) in enumerate(zip(batch, replies)):
        if isinstance(reply, redis.exceptions.NoScriptError) and isinstance(request, Call):
            again.append(index)
            load[request.script] = None
        elif type(reply) is redis.exceptions.MovedError and route is not None:
            route.moved(reply.host, reply.port)
            again.append(index)
    return again, list(load)


def merge_resent(replies: Sequence[Any], refused: list[int], again: Sequence[Any]) -> list[Any]:
    out = list(replies)
    for index, reply in zip(refused, again):
        out[index] = reply
    return out


# Reads whose reply redis-py's response callbacks would reshape, losing what Kue shows:
# SMEMBERS becomes a Python set, in hash order, where Kue lists Redis's order.
_RAW_REPLIES = frozenset({"SMEMBERS"})


def raw_reply(request: Request) -> bool:
    return not isinstance(request, Call) and str(request.command[0]).upper() in _RAW_REPLIES


def direct(batch: Sequence[Request]) -> bool:
    """Script calls go straight to a pooled connection: redis-py's execute_command and
    pipelines add ~15 us of wrapping per command (retries, response callbacks, metrics;
    redis.asyncio's pipeline also packs every argument in Python) that a script reply does
    not need, and their retry could run a non-idempotent script twice. So does a lone read
    in ``_RAW_REPLIES``, whose reply stays as Redis sent it (a client without a connection
    pool, such as a cluster, still applies the callbacks)."""
    if len(batch) == 1:
        return isinstance(batch[0], Call) or raw_reply(batch[0])
    return all(isinstance(request, Call) for request in batch)


_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the [hiredis] extra is optional
    _hiredis_pack = None


def packed(conn: Any, command: Sequence[Any]) -> Any:
    """``command``'s bytes for ``conn.send_packed_command``: hiredis's C packer when it is
    installed, as redis-py's sync connections use it; redis.asyncio always packs in Python,
    ~1 us per argument, 40% of a coalesced asyncio producer's time. Anything hiredis does
    not take (a bool, text that is not Unicode) goes through the connection's own packer,
    which raises or encodes it as before."""
    if _hiredis_pack is not None:
        try:
            return _hiredis_pack(tuple(command))
        except (TypeError, UnicodeEncodeError):
            pass
    return conn.pack_command(*command)


class Replication(NamedTuple):
    """``Queue(wait_replicas=..., wait_timeout_ms=...)``: how many replicas must have a
    write before it counts as done."""

    replicas: int
    timeout_ms: int

    def request(self) -> Read:
        return Read(("WAIT", self.replicas, self.timeout_ms))


# Scripts whose effect nobody is told about, so no WAIT follows them: claims and upkeep
# (a claim lost in a failover runs again; upkeep is redone) and the read-only ones.
UNWAITED_SCRIPTS = frozenset({"activate_jobs", "renew_leases", "reclaim_jobs",
                              "promote_delayed_jobs", "recover_jobs", "search_jobs",
                              "open_queue"})


def needs_wait(batch: Batch) -> bool:
    """A lazy batch is a bulk create; a list needs WAIT if it holds a write someone is
    told about."""
    if not isinstance(batch, Sequence):
        return True
    return any(isinstance(r, Call) and r.script not in UNWAITED_SCRIPTS for r in batch)


def not_replicated(acks: Sequence[Any], replication: Replication,
                   where: str) -> NotReplicated | None:
    """The error when some WAIT of the batch saw fewer replicas than asked for."""
    counts = [a if isinstance(a, int) else 0 for a in acks]
    fewest = min(counts) if counts else 0
    if fewest >= replication.replicas:
        return None
    return NotReplicated(
        f"the write ran on the master at {where}, but {fewest} of the {replication.replicas} "
        f"replicas asked for (wait_replicas) acknowledged it within {replication.timeout_ms} "
        "ms, so a failover could lose it; it is not reported as done")


def read_ack(read: Any) -> Any:
    """A WAIT reply (the number of replicas), or the error Redis answered instead."""
    try:
        return read()
    except redis.ResponseError as exc:
        return exc


def drop_idle_connections(client: Any) -> None:
    """After NotReplicated: close the pool's idle connections, so the next one connects
    again (behind Sentinel: asks the sentinels where the master is now). Connections other
    threads are using are left alone: closing one under a thread that reads from it fails
    that thread's call with whatever redis-py meets (an AttributeError as often as a
    ConnectionError). A Sentinel pool drops them when they come back, once a new connection
    found the master moved; elsewhere their next waited write tells them again."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.disconnect(inuse_connections=False)


def unavailable(client: Any, where: str, exc: BaseException) -> RedisUnavailable:
    """The error for a lost connection; a cluster client's route moves to the next node."""
    connection_lost(client, exc)
    return RedisUnavailable(
        f"Redis at {where} is unreachable ({exc}); is redis-server running and the URL right?"
    )


def database_count(client: Any) -> int | None:
    """How many databases the server of ``client`` has (``CONFIG GET databases``, asked once
    on a new connection to database 0), or None when that cannot be learnt (CONFIG renamed
    away, a Sentinel or cluster client, the server gone). Only called on the way to raising a
    ConfigError, so the short blocking call is fine in the asyncio driver too."""
    pool = getattr(client, "connection_pool", None)
    kwargs = dict(getattr(pool, "connection_kwargs", None) or {})
    options: dict[str, Any] = {k: kwargs[k] for k in ("host", "port", "username", "password")
                               if kwargs.get(k) is not None}
    if kwargs.get("path"):
        options["unix_socket_path"] = kwargs["path"]
    if "SSL" in getattr(getattr(pool, "connection_class", None), "__name__", ""):
        options.update({k: v for k, v in kwargs.items() if k.startswith("ssl_")}, ssl=True)
    if "host" not in options and "unix_socket_path" not in options:
        return None
    probe = redis.Redis(**options, db=0, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        reply: Any = probe.config_get("databases")
        return int(reply["databases"])
    except (redis.RedisError, OSError, KeyError, TypeError, ValueError):
        return None
    finally:
        probe.close()


def refused_connection(client: Any, where: str, exc: BaseException) -> ConfigError | None:
    """The typed error for a connection Redis refused while setting it up, which no retry
    fixes: redis-py's ``AuthenticationError`` (a subclass of its ``ConnectionError``, so this
    is asked before a lost connection is assumed) and the ``ResponseError`` "DB index is out
    of range" of the SELECT it sends on connect. None for any other error."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    if isinstance(exc, redis.AuthenticationError):
        url = "the URL (redis://user:password@host:port/db) or password="
        if kwargs.get("password") is None and kwargs.get("credential_provider") is None:
            return AuthenticationFailed(f"authentication failed: Redis at {where} requires a "
                                        f"password and none was given; put it in {url}")
        return AuthenticationFailed(f"authentication failed: Redis at {where} refused the "
                                    f"password or user ({exc}); check {url}")
    if isinstance(exc, redis.ResponseError) and "DB index is out of range" in str(exc):
        count = database_count(client)
        has = f" (it has {count}, 0 to {count - 1})" if count else ""
        return ConfigError(f"database {kwargs.get('db', '?')} does not exist on this server"
                           f"{has}: Redis at {where}; choose one after the '/' of the URL")
    return None


def connection_failed(client: Any, where: str, exc: BaseException) -> KueError:
    """The error for a connection error of a batch: ``refused_connection``'s when Redis refused
    the connection's setup, else ``unavailable``."""
    return refused_connection(client, where, exc) or unavailable(client, where, exc)


def reraise_refused(client: Any, where: str, exc: redis.ResponseError) -> None:
    """Raise ``refused_connection``'s error for an error reply met while connecting (SELECT of
    a missing database); return for any other error reply, which the caller handles."""
    error = refused_connection(client, where, exc)
    if error is not None:
        raise error from exc


class SyncDriver:
    """Runs plans on one ``redis.Redis`` client (thread-safe: it uses the client's pool)."""

    def __init__(self, client: Any, where: str, replication: Replication | None = None) -> None:
        self.client = client
        self.where = where
        self.replication = replication

    def run(self, plan: Plan[T]) -> T:
        return drive(plan, self.execute)

    def execute(self, batch: Batch) -> list[Any]:
        try:
            if self.replication is not None and needs_wait(batch):
                return self._stream(iter(batch), waited=True)
            if not isinstance(batch, Sequence) or direct(batch):
                return self._stream(iter(batch))
            if len(batch) == 1:
                return [self._one(batch[0])]
            return self._many(batch)
        except CONNECTION_ERRORS as exc:
            raise connection_failed(self.client, self.where, exc) from exc
        except redis.ResponseError as exc:  # raised by connecting: SELECT of a missing database
            reraise_refused(self.client, self.where, exc)
            raise
        except ValueError as exc:
            if not closed_socket(exc):
                raise
            raise unavailable(self.client, self.where, exc) from exc

    def _one(self, request: Request) -> Any:
        """A lone read (idempotent, so redis-py's own retry may resend it)."""
        try:
            return self._settle([request], [self.client.execute_command(*command_of(request))])[0]
        except redis.ResponseError as exc:
            reraise_refused(self.client, self.where, exc)
            return self._settle([request], [exc])[0]

    def _many(self, batch: Sequence[Request]) -> list[Any]:
        if not batch:
            return []
        return self._settle(batch, self._pipelined(batch))

    def _pipelined(self, batch: Sequence[Request]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for request in batch:
            pipe.execute_command(*command_of(request))
        return list(pipe.execute(raise_on_error=False))

    def _stream(self, requests: Iterator[Request], waited: bool = False) -> list[Any]:
        """Send each request as soon as the iterator builds it and read the replies at the
        end: building request k+1 overlaps Redis running request k. ``waited``: a WAIT
        follows on the same connection (it counts that connection's writes), and the batch
        fails with NotReplicated when too few replicas have them."""
        acks: list[Any] | None = [] if waited else None
        sent, replies = self._send(requests, acks)
        settled = self._settle(sent, replies, acks)
        if acks is not None and self.replication is not None:
            error = not_replicated(acks, self.replication, self.where)
            if error is not None:
                drop_idle_connections(self.client)
                raise error
        return settled

    def _send(self, requests: Iterator[Request],
              acks: list[Any] | None = None) -> tuple[list[Request], list[Any]]:
        """The requests and their raw replies, on one pooled connection and never resent:
        a script call is not idempotent, so no retry of redis-py's may run it twice. With
        ``acks`` a WAIT follows them, and its reply is appended there."""
        pool = getattr(self.client, "connection_pool", None)
        if pool is None:  # a client without one connection to stream on (e.g. a cluster)
            batch = list(requests)
            return batch, self._pipelined(batch)
        conn = pool.get_connection()
        sent: list[Request] = []
        replies: list[Any] = []
        try:
            for request in requests:
                conn.send_command(*command_of(request))
                sent.append(request)
            if acks is not None and self.replication is not None:
                conn.send_command(*self.replication.request().command)
            for _ in sent:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            if acks is not None and self.replication is not None:
                acks.append(read_ack(conn.read_response))
        except BaseException:
            conn.disconnect()  # replies left unread would reach the connection's next user
            raise
        finally:
            pool.release(conn)
        return sent, replies

    def _settle(self, batch: Sequence[Request], replies: list[Any],
                acks: list[Any] | None = None) -> list[Any]:
        """Replies as values or KueErrors, after sending refused requests again, streamed
        (``to_resend``; followed by WAIT too when ``acks`` collects its replies)."""
        for _ in range(RESEND_ROUNDS):
            again_at, load = to_resend(batch, replies, self.client)
            if not again_at:
                break
            for name in load:
                self.client.script_load(scripts.get(name).text)
            _, again = self._send(iter([batch[i] for i in again_at]), acks)
            replies = merge_resent(replies, again_at, again)
        return [settle(reply) for reply in replies]

    def load(self, request: Request) -> None:
        if isinstance(request, Call):
            self.client.script_load(scripts.get(request.script).text)

    def load_all(self) -> None:
        """SCRIPT LOAD every script (workers do this once at start)."""
        try:
            for script in scripts.registry().values():
                self.client.script_load(script.text)
        except CONNECTION_ERRORS as exc:
            raise connection_failed(self.client, self.where, exc) from exc
        except redis.ResponseError as exc:
            reraise_refused(self.client, self.where, exc)
            raise
