"""tests/fault_proxy.py against the session's redis-server, with redis-py and raw sockets:
plain forwarding (pipelines, MULTI/EXEC, 1 MB values, pub/sub), dropped replies, replies
cut halfway, latency, the black hole and cut_all."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .fault_proxy import (
    FaultProxy,
    Incomplete,
    Map,
    Push,
    ReplyError,
    command_named,
    evalsha_of,
    parse_command,
    parse_reply,
)
from .redis_server import RedisServer

pytestmark = pytest.mark.real_redis


@pytest.fixture
def direct(real_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(real_redis_url)
    yield client
    client.close()


@pytest.fixture
def protocol() -> int:
    """The RESP version of ``connect``'s clients (redis-py 8's default; some tests
    parametrize it)."""
    return 3


@pytest.fixture
def connect(proxy: FaultProxy, protocol: int) -> Iterator[Callable[..., redis.Redis]]:
    """redis-py clients through the proxy, without retries (so faults surface)."""
    made: list[redis.Redis] = []

    def make(socket_timeout: float = 5.0, **options: Any) -> redis.Redis:
        client = redis.Redis(port=proxy.port, socket_timeout=socket_timeout,
                             socket_connect_timeout=5, retry=Retry(NoBackoff(), 0),
                             protocol=protocol, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


class Raw:
    """A plain socket to the proxy, reading whole replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, *commands: list[str]) -> None:
        out = b""
        for command in commands:
            out += b"*%d\r\n" % len(command)
            for arg in command:
                data = arg.encode()
                out += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(out)

    def reply(self, timeout: float = 5.0) -> Any:
        """The next reply; raises TimeoutError if none comes, EOFError at end of stream."""
        self.sock.settimeout(timeout)
        while True:
            try:
                value, end = parse_reply(self.buf)
            except Incomplete:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError(self.buf) from None
                self.buf += data
                continue
            self.buf = self.buf[end:]
            return value

    def read_to_end(self, timeout: float = 5.0) -> bytes:
        self.sock.settimeout(timeout)
        while data := self.sock.recv(65536):
            self.buf += data
        return self.buf

    def close(self) -> None:
        self.sock.close()


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- the parser on its own --------------------------------------------------------------------

@pytest.mark.parametrize(("wire", "value"), [
    (b"+OK\r\n", b"OK"),
    (b"_\r\n", None),
    (b"#f\r\n", False),
    (b",3.5\r\n", b"3.5"),
    (b"(12345678901234567890\r\n", b"12345678901234567890"),
    (b"!3\r\nERR\r\n", ReplyError(b"ERR")),
    (b"=7\r\ntxt:abc\r\n", b"txt:abc"),
    (b"%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n", Map([b"k", [1, 2]])),
    (b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n", Push([b"message", b"a", b"x"])),
    (b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n", b"v"),
    (b"-ERR wrong\r\n", ReplyError(b"ERR wrong")),
    (b":-42\r\n", -42),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"$0\r\n\r\n", b""),
    (b"$8\r\nab\r\ncd\r\n\r\n", b"ab\r\ncd\r\n"),
    (b"*0\r\n", []),
    (b"*3\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n+x\r\n", [[1, None], None, b"x"]),
], ids=repr)
def test_replies_parse_only_when_complete(wire: bytes, value: Any) -> None:
    for cut in range(len(wire)):
        with pytest.raises(Incomplete):
            parse_reply(wire[:cut])
    parsed, end = parse_reply(wire + b"+next\r\n")
    assert (parsed, type(parsed), end) == (value, type(value), len(wire))


def test_commands_parse_as_arrays_or_inline() -> None:
    wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\nPING\r\n"
    command, end = parse_command(wire)
    assert command == [b"SET", b"k", b"v1"]
    assert parse_command(wire, end) == ([b"PING"], len(wire))
    with pytest.raises(Incomplete):
        parse_command(wire[:10])


def test_predicates() -> None:
    match = evalsha_of("ABC123")
    assert match([b"evalsha", b"abc123", b"0"]) and match([b"EVALSHA", b"ABC123", b"1", b"k"])
    assert not match([b"EVALSHA", b"other", b"0"]) and not match([b"EVAL", b"abc123"])
    assert not match([b"EVALSHA"])
    assert command_named("get", "MGET")([b"mget", b"a"]) and not command_named("get")([b"set"])


# -- through the proxy -------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_plain_forwarding(proxy: FaultProxy, connect: Callable[..., redis.Redis],
                          direct: redis.Redis) -> None:
    client = connect()
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value, CRLFs included
    assert client.set("big", big)
    assert client.get("big") == big and direct.get("big") == big
    pipe = client.pipeline(transaction=False)
    for _ in range(500):
        pipe.incr("n")
    pipe.get("missing")
    pipe.lrange("nothing", 0, -1)
    assert pipe.execute() == [*range(1, 501), None, []]
    with client.pipeline() as multi:  # MULTI ... EXEC: +QUEUED replies, then an array
        multi.set("a", 1).incr("a").mget("a", "missing")
        assert multi.execute() == [True, 2, [b"2", None]]
    with pytest.raises(redis.ResponseError):
        client.execute_command("NO-SUCH-COMMAND")
    assert client.ping()
    assert proxy.accepted == 1 and proxy.seen[b"incrby"] == 501 and proxy.dropped == 0


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_pub_sub_messages_pass(proxy: FaultProxy, connect: Callable[..., redis.Redis],
                               direct: redis.Redis) -> None:
    pubsub = connect().pubsub()

    def next_message() -> dict[str, Any]:
        message = pubsub.get_message(timeout=5)
        assert message is not None
        return {k: message[k] for k in ("type", "channel", "data")}

    pubsub.subscribe("a", "b")  # one command, two confirmations
    assert next_message() == {"type": "subscribe", "channel": b"a", "data": 1}
    assert next_message() == {"type": "subscribe", "channel": b"b", "data": 2}
    pubsub.psubscribe("p.*")
    assert next_message()["type"] == "psubscribe"
    direct.publish("a", "one")
    direct.publish("p.x", "two")
    assert next_message() == {"type": "message", "channel": b"a", "data": b"one"}
    assert next_message() == {"type": "pmessage", "channel": b"p.x", "data": b"two"}
    # replies are still paired with their commands: only PING's is dropped
    proxy.drop_reply(command_named("PING"))
    pubsub.ping()
    wait_until(lambda: proxy.dropped == 1)
    direct.publish("b", "three")
    assert next_message() == {"type": "message", "channel": b"b", "data": b"three"}
    pubsub.unsubscribe()  # no arguments: one confirmation per channel
    assert {next_message()["channel"] for _ in range(2)} == {b"a", b"b"}
    proxy.drop_reply(command_named("PING"))
    pubsub.ping()
    pubsub.punsubscribe("p.*")
    assert next_message() == {"type": "punsubscribe", "channel": b"p.*", "data": 0}
    assert proxy.dropped == 2
    pubsub.close()


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_a_dropped_reply_times_out_and_a_new_connection_works(
        proxy: FaultProxy, connect: Callable[..., redis.Redis]) -> None:
    client = connect(socket_timeout=0.5)
    client.set("k", "v")
    sha = client.script_load("return 7")
    other = client.script_load("return 8")
    proxy.drop_reply(evalsha_of(sha))
    assert client.evalsha(other, 0) == 8  # another script's reply is not touched
    with pytest.raises(redis.TimeoutError):
        client.evalsha(sha, 0)
    assert proxy.dropped == 1
    assert client.evalsha(sha, 0) == 7 and client.get("k") == b"v"  # on a new connection
    assert proxy.accepted == 2


def test_drop_count_and_order_on_one_connection(proxy: FaultProxy, direct: redis.Redis) -> None:
    direct.set("k", "v")
    raw = Raw(proxy.port)
    proxy.drop_reply(command_named("GET"), count=2)
    raw.send(["GET", "k"], ["PING"], ["GET", "k"], ["GET", "k"])
    assert raw.reply() == b"PONG" and raw.reply() == b"v"  # the third GET's reply
    with pytest.raises(TimeoutError):
        raw.reply(timeout=0.2)
    assert proxy.dropped == 2
    raw.close()


def test_a_reply_cut_halfway(proxy: FaultProxy, connect: Callable[..., redis.Redis],
                             direct: redis.Redis) -> None:
    direct.set("big", b"x" * 100_000)
    client = connect()
    proxy.cut_mid_reply(command_named("GET"))
    with pytest.raises(redis.ConnectionError):
        client.get("big")
    assert proxy.cut == 1
    assert client.get("big") == b"x" * 100_000  # a new connection is not cut
    raw = Raw(proxy.port)
    proxy.cut_mid_reply(command_named("GET"))
    raw.send(["PING"], ["GET", "big"])
    whole = len(b"$100000\r\n") + 100_000 + 2
    assert raw.read_to_end() == b"+PONG\r\n" + (b"$100000\r\n" + b"x" * 100_000)[:whole // 2]
    assert proxy.cut == 2
    wait_until(lambda: proxy.connections == 1)  # the redis-py client's only
    raw.close()


def test_latency_delays_each_direction(proxy: FaultProxy,
                                       connect: Callable[..., redis.Redis]) -> None:
    client = connect()
    assert client.ping()
    proxy.latency(0.1)
    started = time.monotonic()
    assert client.ping()
    assert time.monotonic() - started >= 0.19  # the command's chunk, then the reply's
    proxy.latency(0)
    started = time.monotonic()
    for _ in range(5):
        assert client.ping()
    assert time.monotonic() - started < 1.0  # 5 round trips at 0.1 s each way would be 1 s


def test_black_hole_holds_everything_until_off(
        proxy: FaultProxy, connect: Callable[..., redis.Redis], direct: redis.Redis) -> None:
    client = connect(socket_timeout=0.5)
    client.set("n", 1)
    raw = Raw(proxy.port)
    proxy.black_hole(True)
    with pytest.raises(redis.TimeoutError):
        client.incr("n")
    raw.send(["PING"])
    with pytest.raises(TimeoutError):
        raw.reply(timeout=0.3)
    late = connect(socket_timeout=0.5)  # a new connection is accepted, and hangs too
    with pytest.raises(redis.TimeoutError):
        late.ping()
    assert direct.get("n") == b"1"  # nothing reached the server
    proxy.black_hole(False)
    assert raw.reply() == b"PONG"  # held, then delivered
    wait_until(lambda: direct.get("n") == b"2")  # the timed-out client's INCR arrived late
    assert client.get("n") == b"2" and late.ping()
    raw.close()


def test_cut_all_closes_every_connection(proxy: FaultProxy,
                                         connect: Callable[..., redis.Redis]) -> None:
    client = connect()
    assert client.ping()
    raws = [Raw(proxy.port) for _ in range(2)]
    for raw in raws:
        raw.send(["PING"])
        assert raw.reply() == b"PONG"
    assert proxy.cut_all() == 3 and proxy.cut == 3 and proxy.connections == 0
    for raw in raws:
        assert raw.read_to_end() == b""
        raw.close()
    assert client.ping()  # redis-py notices the dead connection and makes a new one
    assert proxy.accepted == 4


def test_close_stops_listening(redis_server: RedisServer, real_redis_url: str) -> None:
    with FaultProxy(redis_server.port) as proxy:
        raw = Raw(proxy.port)
        raw.send(["PING"])
        assert raw.reply() == b"PONG"
        port = proxy.port
    assert raw.read_to_end() == b""
    raw.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
