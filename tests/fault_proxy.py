"""A threaded TCP proxy between Redis clients and a redis-server on 127.0.0.1 that injects
faults on demand, for tests of how workers and clients survive a bad network.

    with FaultProxy(redis_port) as proxy:              # listens on 127.0.0.1:proxy.port
        client = redis.Redis(port=proxy.port, socket_timeout=0.5)
        proxy.drop_reply(evalsha_of(sha))              # the next EVALSHA <sha> reply is lost
        proxy.cut_mid_reply(command_named("GET"), 2)   # the next 2 GET replies break halfway
        proxy.latency(0.05)                            # every chunk held 50 ms (0 = off)
        proxy.black_hole(True)                         # nothing flows either way ... until
        proxy.black_hole(False)                        # ... the held bytes are delivered
        proxy.cut_all()                                # close every current connection

What it understands. RESP in both directions, just enough to know boundaries: from the
client, commands (arrays of bulk strings, or inline commands); from the server, RESP2
replies (``+`` simple, ``-`` error, ``:`` integer, ``$`` bulk incl. ``$-1``, ``*`` arrays,
nested, incl. ``*-1``) and RESP3's too (``_ # , ( ! = % ~ > |``; redis-py 8 speaks RESP3
unless given ``protocol=2``; streamed ``$?``/``*?`` aggregates are not understood). Per
connection it keeps the queue of commands sent, so it knows which command each reply
answers. Pub/sub works: (P|S)SUBSCRIBE/UNSUBSCRIBE expect one reply per channel
(UNSUBSCRIBE without arguments one per channel then subscribed, at least one); messages
(RESP2 ``message``/``pmessage``/``smessage`` arrays in subscribed mode, RESP3 pushes other
than (un)subscribe confirmations) answer no command. Replies that arrive when no command
waits (MONITOR output, say) are forwarded and match no rule either.

API.

``FaultProxy(upstream_port, upstream_host="127.0.0.1")``; ``.start()`` returns the proxy
(listening on 127.0.0.1, a free port: ``.port``, ``.url`` = ``redis://127.0.0.1:<port>/0``);
``.close()`` closes the listener and every connection; ``with FaultProxy(...) as proxy``
starts and closes it. Each accepted client connection gets its own upstream connection.

Faults (rules are checked in the order they were added; a rule fires on a reply whose
command matches ``match(command: list[bytes]) -> bool``, e.g. ``[b"GET", b"k"]``, with the
name as the client spelt it, and is used up after ``count`` replies):

- ``drop_reply(match, count=1)``: those replies are swallowed; the connection stays open.
  The client is out of step from then on (its next reply is one it did not expect), which
  is the point: a client times out on the missing reply and reconnects.
- ``cut_mid_reply(match, count=1)``: the first half of the reply's bytes (at least one byte)
  is forwarded, then the client connection and its upstream connection are closed.
- ``latency(seconds)``: every chunk forwarded, either way, waits that long first, so a
  round trip gains about ``2 * seconds``; ``latency(0)`` stops it.
- ``black_hole(True)``: nothing is forwarded in either direction; connections stay open,
  new ones are still accepted, and what is sent meanwhile is *held* (by the kernel, as a
  partitioned TCP stream would be). ``black_hole(False)`` delivers the held bytes in order,
  like a healed partition: a command a timed-out client sent still reaches the server.
- ``cut_all()``: close every current connection (returns how many); the listener stays.
- ``clear()``: forget unfired rules, latency 0, black hole off.

Counters: ``.dropped`` (replies swallowed), ``.cut`` (connections closed by cut_mid_reply or
cut_all), ``.accepted`` (client connections accepted), ``.connections`` (open now),
``.seen`` (a Counter of lower-cased command names sent by clients), ``.errors`` (unexpected
exceptions in the proxy's threads, e.g. a predicate that raised; such a connection is
closed). Predicates: :func:`evalsha_of`, :func:`command_named`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self

Command = list[bytes]
Match = Callable[[Command], bool]
Action = Literal["forward", "drop", "cut"]

CHUNK = 256 * 1024
SUBSCRIBES = {b"subscribe", b"psubscribe", b"ssubscribe"}
UNSUBSCRIBES = {b"unsubscribe": "channels", b"punsubscribe": "patterns",
                b"sunsubscribe": "shard"}
CONFIRMATIONS = {b"subscribe": ("channels", True), b"unsubscribe": ("channels", False),
                 b"psubscribe": ("patterns", True), b"punsubscribe": ("patterns", False),
                 b"ssubscribe": ("shard", True), b"sunsubscribe": ("shard", False)}
PUSHES = {b"message", b"pmessage", b"smessage", b"invalidate"}


# -- predicates ----------------------------------------------------------------------------

def evalsha_of(sha: str | bytes) -> Match:
    """Matches ``EVALSHA <sha> ...`` (command name and SHA case-insensitive)."""
    wanted = (sha.encode() if isinstance(sha, str) else sha).lower()
    return lambda command: (len(command) >= 2 and command[0].lower() == b"evalsha"
                            and command[1].lower() == wanted)


def command_named(*names: str) -> Match:
    """Matches commands with one of these names (case-insensitive), e.g. ``"GET"``."""
    wanted = {name.lower().encode() for name in names}
    return lambda command: bool(command) and command[0].lower() in wanted


# -- RESP parsing ---------------------------------------------------------------------------

class Incomplete(Exception):
    """More bytes are needed."""


class ProtocolError(Exception):
    """The bytes are not RESP."""


class ReplyError(bytes):
    """A ``-ERR ...`` (or RESP3 ``!``) reply's text."""


class Push(list[Any]):
    """A RESP3 ``>`` push: pub/sub messages and confirmations, invalidations."""


class Map(list[Any]):
    """A RESP3 ``%`` map, as a flat key, value, key, value ... list."""


SIMPLE = {0x2B, 0x28, 0x2C}  # + ( ,
BLOBS = {0x24, 0x21, 0x3D}  # $ ! =
AGGREGATES = {0x2A, 0x7E, 0x3E, 0x25, 0x7C}  # * ~ > % |


def _line(buf: bytes | bytearray, pos: int) -> tuple[bytes, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    return bytes(buf[pos:end]), end + 2


def parse_reply(buf: bytes | bytearray, pos: int = 0) -> tuple[Any, int]:
    """Parse one RESP2/RESP3 value at ``pos``: ``(value, end)``; raises :class:`Incomplete`.
    Values: bytes (simple, bulk and verbatim strings, doubles and big numbers as their text),
    ReplyError (``-`` and ``!``), int, bool, None (``$-1``, ``*-1``, ``_``), lists (arrays
    and sets), Map (a flat key, value, ... list), Push; an attribute (``|``) is skipped and
    the value it annotates returned."""
    if pos >= len(buf):
        raise Incomplete
    kind = buf[pos]
    line, pos = _line(buf, pos + 1)
    try:
        if kind in SIMPLE:  # + ( ,
            return line, pos
        if kind == 0x2D:  # -
            return ReplyError(line), pos
        if kind == 0x3A:  # :
            return int(line), pos
        if kind == 0x5F:  # _
            return None, pos
        if kind == 0x23:  # #
            return line == b"t", pos
        if kind in BLOBS:  # $ ! =
            size = int(line)
            if size < 0:
                return None, pos
            if len(buf) < pos + size + 2:
                raise Incomplete
            if buf[pos + size:pos + size + 2] != b"\r\n":
                raise ProtocolError("a blob not followed by CRLF")
            blob = bytes(buf[pos:pos + size])
            return (ReplyError(blob) if kind == 0x21 else blob), pos + size + 2
        if kind in AGGREGATES:  # * ~ > % |
            count = int(line)
            if count < 0:
                return None, pos
            items = []
            for _ in range(count * 2 if kind in (0x25, 0x7C) else count):
                item, pos = parse_reply(buf, pos)
                items.append(item)
            if kind == 0x7C:  # attribute: metadata about the value that follows
                return parse_reply(buf, pos)
            return (Push(items) if kind == 0x3E else Map(items) if kind == 0x25 else items), pos
    except ValueError as exc:
        raise ProtocolError(f"bad length or number {line!r}") from exc
    raise ProtocolError(f"not a RESP type byte: {bytes([kind])!r}")


def parse_command(buf: bytes | bytearray, pos: int = 0) -> tuple[Command, int]:
    """Parse one client command at ``pos``: ``(args, end)``; an empty list for what Redis
    ignores (an empty inline line, ``*0``). Raises :class:`Incomplete`."""
    if pos >= len(buf):
        raise Incomplete
    if buf[pos] == 0x2A:
        value, end = parse_reply(buf, pos)
        if value is None:
            return [], end
        if not all(isinstance(arg, bytes) for arg in value):
            raise ProtocolError("a command must be an array of bulk strings")
        return [bytes(arg) for arg in value], end
    line, end = _line(buf, pos)
    return line.split(), end


# -- the proxy ------------------------------------------------------------------------------

class _Rule:
    __slots__ = ("kind", "match", "remaining")

    def __init__(self, kind: Action, match: Match, count: int) -> None:
        self.kind, self.match, self.remaining = kind, match, count


class _Waiting:
    """A command that still expects ``remaining`` replies (None: decided at its first)."""

    __slots__ = ("command", "remaining")

    def __init__(self, command: Command, remaining: int | None) -> None:
        self.command, self.remaining = command, remaining


class _Link:
    """One client connection and its upstream connection, with a pump thread each way."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket,
                 number: int) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.waiting: deque[_Waiting] = deque()
        self.subscriptions: dict[str, set[bytes]] = {"channels": set(), "patterns": set(),
                                                     "shard": set()}
        self.lock = threading.Lock()
        self.closed = False
        self.resp3 = False  # seen a push
        self.threads = [
            threading.Thread(target=self._pump, args=(self._from_client,), daemon=True,
                             name=f"fault-proxy-{number}-up"),
            threading.Thread(target=self._pump, args=(self._from_upstream,), daemon=True,
                             name=f"fault-proxy-{number}-down"),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> bool:
        """Close both sockets (waking the pumps); False if it was closed already."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.proxy._forget(self)
        return True

    def _pump(self, body: Callable[[], None]) -> None:
        try:
            body()
        except OSError:
            pass  # a socket closed under us: the link is going away
        except Exception as exc:  # noqa: BLE001 - recorded for the test to see
            if not self.closed:
                self.proxy.errors.append(exc)
        finally:
            self.close()

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        """Forward ``data`` after the black hole and the latency; False once closed."""
        proxy = self.proxy
        while not proxy._flowing.wait(0.05):
            if self.closed:
                return False
        delay = proxy._latency
        if delay > 0:
            time.sleep(delay)
        if self.closed:
            return False
        sock.sendall(data)
        return True

    def _from_client(self) -> None:
        buf = bytearray()
        while True:
            data = self.client.recv(CHUNK)
            if not data:
                return
            buf += data
            pos, waiting = 0, []
            while True:
                try:
                    command, pos = parse_command(buf, pos)
                except Incomplete:
                    break
                if command:
                    waiting.append(_Waiting(command, self._expected(command)))
                    self.proxy._saw(command[0].lower())
            del buf[:pos]
            with self.lock:
                self.waiting.extend(waiting)  # before the server can see them
            if not self._send(self.upstream, data):
                return

    def _from_upstream(self) -> None:
        buf = bytearray()
        while True:
            data = self.upstream.recv(CHUNK)
            if not data:
                return
            buf += data
            out, pos = bytearray(), 0
            while True:
                try:
                    value, end = parse_reply(buf, pos)
                except Incomplete:
                    break
                raw, pos = buf[pos:end], end
                action = self.proxy._action(self._answers(value))
                if action == "drop":
                    continue
                if action == "cut":
                    out += raw[:max(1, len(raw) // 2)]
                    self._send(self.client, bytes(out))
                    if not self.closed:  # counted before the client can see the close
                        self.proxy._count_cut()
                    self.close()
                    return
                out += raw
            del buf[:pos]
            if out and not self._send(self.client, bytes(out)):
                return

    def _expected(self, command: Command) -> int | None:
        name = command[0].lower()
        if name in SUBSCRIBES:
            return max(1, len(command) - 1)
        if name in UNSUBSCRIBES:
            return len(command) - 1 if len(command) > 1 else None
        return 1

    def _answers(self, value: Any) -> Command | None:
        """The command ``value`` replies to (None for a push), consuming it from the queue."""
        kind = value[0].lower() if (isinstance(value, list) and value
                                    and isinstance(value[0], bytes)) else None
        if isinstance(value, Push):  # RESP3: pub/sub frames and invalidations
            self.resp3 = True
            if kind not in CONFIRMATIONS:
                return None
        elif kind in PUSHES and not self.resp3 and any(self.subscriptions.values()):
            return None  # RESP2: a message is a plain array, told apart in subscribed mode
        with self.lock:
            if not self.waiting:
                return None
            head = self.waiting[0]
            name = head.command[0].lower()
            if isinstance(value, Push) and name not in SUBSCRIBES and name not in UNSUBSCRIBES:
                return None  # a confirmation the server sent on its own
            if head.remaining is None:  # UNSUBSCRIBE without arguments: one per subscription
                head.remaining = max(1, len(self.subscriptions[UNSUBSCRIBES[name]]))
            head.remaining -= 1
            if head.remaining <= 0 or isinstance(value, ReplyError):
                self.waiting.popleft()
        if kind in CONFIRMATIONS and len(value) == 3 and isinstance(value[1], bytes):
            group, added = CONFIRMATIONS[kind]
            (self.subscriptions[group].add if added else
             self.subscriptions[group].discard)(value[1])
        elif kind in CONFIRMATIONS and len(value) == 3 and value[1] is None:
            self.subscriptions[CONFIRMATIONS[kind][0]].clear()  # unsubscribed from nothing
        if name == b"reset":
            for names in self.subscriptions.values():
                names.clear()
        return head.command


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.dropped = 0
        self.cut = 0
        self.accepted = 0
        self.seen: Counter[bytes] = Counter()
        self.errors: list[BaseException] = []
        self._rules: list[_Rule] = []
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._latency = 0.0
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closed = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, daemon=True,
                                          name="fault-proxy-accept")
        self._acceptor.start()
        return self

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("FaultProxy.start() first")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._links)

    def close(self) -> None:
        """Stop accepting and close every connection (not counted as cuts)."""
        self._closed = True
        if self._acceptor is not None:
            self._acceptor.join(5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()
        for link in links:
            for thread in link.threads:
                if thread is not threading.current_thread():
                    thread.join(5)

    def __enter__(self) -> Self:
        return self if self._listener is not None else self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- faults -----------------------------------------------------------------------------

    def drop_reply(self, match: Match, count: int = 1) -> None:
        """Swallow the next ``count`` replies to commands ``match`` accepts."""
        self._add(_Rule("drop", match, count))

    def cut_mid_reply(self, match: Match, count: int = 1) -> None:
        """For the next ``count`` matching replies: forward the first half of the reply,
        then close that client connection and its upstream connection."""
        self._add(_Rule("cut", match, count))

    def latency(self, seconds: float) -> None:
        """Hold every forwarded chunk (both directions) ``seconds`` first; 0 stops it."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency = float(seconds)

    def black_hole(self, on: bool) -> None:
        """While on, nothing is forwarded either way (held, delivered in order when off)."""
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    def cut_all(self) -> int:
        """Close every current connection; returns how many."""
        with self._lock:
            links = list(self._links)
        closed = sum(1 for link in links if link.close())
        with self._lock:
            self.cut += closed
        return closed

    def clear(self) -> None:
        """Forget unfired rules; no latency; black hole off."""
        with self._lock:
            self._rules.clear()
        self._latency = 0.0
        self._flowing.set()

    # -- internals --------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be >= 1")
        with self._lock:
            self._rules.append(rule)

    def _action(self, command: Command | None) -> Action:
        if command is None:
            return "forward"
        with self._lock:
            for rule in self._rules:
                if rule.match(command):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    if rule.kind == "drop":
                        self.dropped += 1
                    return rule.kind
        return "forward"

    def _saw(self, name: bytes) -> None:
        with self._lock:
            self.seen[name] += 1

    def _count_cut(self) -> None:
        with self._lock:
            self.cut += 1

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _accept(self) -> None:
        assert self._listener is not None
        number = 0
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            number += 1
            with self._lock:
                self.accepted += 1
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()  # the server is down: so is the proxied connection
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, upstream, number)
            with self._lock:
                closing = self._closed
                if not closing:
                    self._links.add(link)
            if closing:
                link.close()
                return
            link.start()
