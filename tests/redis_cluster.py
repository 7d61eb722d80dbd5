"""A private Redis Cluster for tests: N masters (+ replicas), each a redis-server of its own.

Every node gets its own temp dir (nodes.conf, redis.log) and a port below 55535 whose cluster
bus port (port + 10000) is free too; never 6379. Three or more masters are joined with
``redis-cli --cluster create``; fewer (which redis-cli refuses) get their slots with
``CLUSTER ADDSLOTSRANGE``. Startup waits until every node says ``cluster_state:ok`` with all
16384 slots assigned; a timeout raises RuntimeError with the tail of every node's log, after
stopping whatever had been started.

``RedisProcess`` (one redis-server with its own dir, log and port) and ``pick_port`` are shared
with tests/redis_sentinel.py."""

from __future__ import annotations

import atexit
import random
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from .redis_server import INSTALL_HINT

HOST = "127.0.0.1"
SLOTS = 16384
POLL = 0.05
BUS_OFFSET = 10000
MAX_PORT = 55535  # port + 10000 must still be a port
FORBIDDEN = {6379, 6379 + BUS_OFFSET, 26379}  # the developer's Redis and Sentinel

_reserved: set[int] = set()  # ports handed out in this process (two nodes never share one)
_live: weakref.WeakSet[Any] = weakref.WeakSet()  # started topologies, stopped at exit


@atexit.register
def _stop_leftovers() -> None:
    for topology in list(_live):
        topology.stop()


def no_retry() -> Retry:
    """redis-py retries a failed connect 3 times with backoff by default (~2 s per refused
    PING); a poll loop wants the error at once."""
    return Retry(NoBackoff(), 0)


def redis_cli_binary() -> str | None:
    return shutil.which("redis-cli")


def missing_binaries() -> str | None:
    """Why a cluster or sentinel setup cannot start here ("redis-cli is not installed"),
    or None."""
    missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed"
    return None


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def pick_port(bus: bool = False) -> int:
    """A free port below 55535, never 6379, not handed out before in this process; with
    ``bus``, port + 10000 is free as well. Ports outside the kernel's ephemeral range are
    preferred (there no outgoing connection can take them between the check and the bind)."""
    ephemeral = _ephemeral_range()

    def usable(port: int) -> bool:
        pair = [port, port + BUS_OFFSET] if bus else [port]
        return (not any(p in FORBIDDEN or p in _reserved for p in pair)
                and all(_bindable(p) for p in pair))

    calm = [p for p in range(20000, MAX_PORT)
            if p not in ephemeral and not (bus and p + BUS_OFFSET in ephemeral)]
    for candidates in (calm, range(20000, MAX_PORT)):
        for port in random.sample(candidates, min(200, len(candidates))):
            if usable(port):
                _reserved.add(port)
                if bus:
                    _reserved.add(port + BUS_OFFSET)
                return port
    raise RuntimeError("no free port pair below 55535")


def release_port(port: int) -> None:
    _reserved.discard(port)
    _reserved.discard(port + BUS_OFFSET)


class PortTaken(RuntimeError):
    """redis-server could not bind its port (someone took it after pick_port)."""


class RedisProcess:
    """One redis-server in its own temp dir, logging to <dir>/redis.log."""

    def __init__(self, port: int, args: Callable[[RedisProcess], list[str]], name: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server not found; {INSTALL_HINT}")
        assert port not in FORBIDDEN, "tests must never use the developer's Redis on 6379"
        self.binary = binary
        self.port = port
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"kueatomic-{name}-"))
        self.log = self.dir / "redis.log"
        self.make_args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **options: Any) -> redis.Redis:
        options.setdefault("socket_connect_timeout", 0.5)
        options.setdefault("socket_timeout", 2)
        options.setdefault("retry", no_retry())  # polling: a refused connect must fail at once
        return redis.Redis(host=HOST, port=self.port, decode_responses=True, **options)

    def spawn(self) -> None:
        """Start the process; does not wait (see ``wait_up``)."""
        assert not self.running, f"{self.name} on {self.port} is already running"
        # before --logfile is open (a bad option, say) redis-server writes to stderr
        with open(self.dir / "stderr.log", "ab") as output:
            self.process = subprocess.Popen(
                [self.binary, *self.make_args(self)], cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )

    def wait_up(self, timeout: float = 10.0) -> None:
        """Until PING answers; PortTaken if the port was not free, RuntimeError otherwise."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        client = self.client(socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                except redis.ResponseError as error:  # LOADING and the like: alive
                    if "LOADING" not in str(error):
                        return
                if self.process.poll() is not None:
                    tail = self.log_tail()
                    kind = PortTaken if "Address already in use" in tail else RuntimeError
                    raise kind(f"{self.name} on port {self.port} exited with "
                               f"{self.process.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} on port {self.port} did not answer PING "
                                       f"within {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(POLL)
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> None:
        self.spawn()
        self.wait_up(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would (no shutdown, no save)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        self.process = None

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_stopped(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of redis.log, and of stderr.log when anything went there."""
        tails = []
        for path in (self.dir / "stderr.log", self.log):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text or path == self.log:
                tails.append(f"    [{path.name}]")
                tails.extend(f"    {line}" for line in text)
        return "\n".join(tails) or "    (no log)"


def spawn_all(started: list[RedisProcess], timeout: float = 10.0,
              replace: Callable[[RedisProcess], RedisProcess] | None = None) -> None:
    """Start every process at once, then wait for each; a process whose port was taken in the
    meantime is swapped in the list (up to 3 times) for ``replace(old)`` on a new port, so
    the list always holds what runs (stop it on failure)."""
    for process in started:
        process.spawn()
    for index, process in enumerate(started):
        for attempt in range(4):
            try:
                process.wait_up(timeout)
                break
            except PortTaken:
                if replace is None or attempt == 3:
                    raise
                process.remove()
                process = started[index] = replace(process)
                process.spawn()


def stop_all(processes: Iterable[RedisProcess]) -> None:
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait_stopped()
        shutil.rmtree(process.dir, ignore_errors=True)
        release_port(process.port)


def log_tails(processes: Iterable[RedisProcess]) -> str:
    return "\n".join(f"  {p.name} 127.0.0.1:{p.port} ({p.log}):\n{p.log_tail()}"
                     for p in processes)


def _info(text: str | dict[str, Any]) -> dict[str, str]:
    """CLUSTER INFO as str -> str (redis-py parses it into a dict, or leaves the text)."""
    if isinstance(text, dict):
        return {str(key): str(value) for key, value in text.items()}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _node_ids(client: redis.Redis) -> set[str]:
    """The node ids in one node's CLUSTER NODES (redis-py may parse it into a dict)."""
    nodes = client.execute_command("CLUSTER NODES")
    if isinstance(nodes, dict):
        return {str(entry["node_id"]) for entry in nodes.values()}
    return {line.split()[0] for line in str(nodes).splitlines() if line.strip()}


class RedisCluster:
    """``masters`` redis-server cluster nodes, each with ``replicas`` replicas.

    >>> with RedisCluster(masters=3) as cluster:
    ...     cluster.client().set("a", 1)
    """

    def __init__(self, masters: int = 3, replicas: int = 0, *, node_timeout_ms: int = 2000,
                 startup_timeout: float = 30.0) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and no negative replicas")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        self._nodes: list[RedisProcess] = []
        self.started = False

    # -- addresses --------------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Every node's port (masters and replicas), in creation order."""
        return [node.port for node in self._nodes]

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.nodes)

    @property
    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        return [redis.cluster.ClusterNode(host, port) for host, port in self.nodes]

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        options.setdefault("decode_responses", True)
        return redis.cluster.RedisCluster(startup_nodes=self.startup_nodes, **options)

    def node_client(self, port: int, **options: Any) -> redis.Redis:
        """A plain (non-cluster) client for one node."""
        return self._node(port).client(**options)

    def master_ports(self) -> list[int]:
        """The ports of the running nodes that are masters now (failovers move them)."""
        return [node.port for node in self._nodes if node.running and self._role(node) == "master"]

    def replica_ports(self) -> list[int]:
        return [node.port for node in self._nodes if node.running and self._role(node) == "slave"]

    # -- lifecycle --------------------------------------------------------------------------

    def _node_args(self, node: RedisProcess) -> list[str]:
        return ["--port", str(node.port), "--bind", HOST, "--protected-mode", "no",
                "--dir", str(node.dir), "--logfile", str(node.log),
                "--cluster-enabled", "yes", "--cluster-config-file", str(node.dir / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--appendonly", "no", "--save", "", "--repl-diskless-sync-delay", "0"]

    def _new_node(self, _old: RedisProcess | None = None) -> RedisProcess:
        return RedisProcess(pick_port(bus=True), self._node_args, "cluster-node")

    def start(self) -> RedisCluster:
        if self.started:
            return self
        deadline = time.monotonic() + self.startup_timeout
        total = self.masters * (1 + self.replicas)
        try:
            _live.add(self)
            for _ in range(total):
                self._nodes.append(self._new_node())
            spawn_all(self._nodes, timeout=10, replace=self._new_node)
            if self.masters >= 3:
                self._create_with_redis_cli(deadline)
            else:
                self._create_by_hand(deadline)
            self.wait_for_cluster_state("ok", timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _create_with_redis_cli(self, deadline: float) -> None:
        cli = redis_cli_binary()
        if cli is None:
            raise RuntimeError(f"redis-cli not found; {INSTALL_HINT}")
        command = [cli, "--cluster", "create", *(f"{HOST}:{port}" for port in self.ports),
                   "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        try:
            done = subprocess.run(command, check=False, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{' '.join(command)} timed out\n{log_tails(self._nodes)}") from error
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}\n{log_tails(self._nodes)}")

    def _create_by_hand(self, deadline: float) -> None:
        """redis-cli refuses fewer than 3 masters: split the slots, MEET, REPLICATE ourselves."""
        masters, replicas = self._nodes[:self.masters], self._nodes[self.masters:]
        first = masters[0].client()
        try:
            for node in self._nodes[1:]:
                first.execute_command("CLUSTER MEET", HOST, node.port)
            for index, node in enumerate(masters):
                low = index * SLOTS // self.masters
                high = (index + 1) * SLOTS // self.masters - 1
                with node.client() as client:
                    client.execute_command("CLUSTER ADDSLOTSRANGE", low, high)
        finally:
            first.close()
        for index, node in enumerate(replicas):
            master = masters[index // self.replicas]
            with master.client() as client:
                master_id = client.execute_command("CLUSTER MYID")
            with node.client() as client:
                # REPLICATE needs the master in this node's table: gossip brings it shortly.
                self._poll(lambda c=client, m=master_id: m in _node_ids(c),
                           deadline, f"node {node.port} never learned master {master.port}")
                client.execute_command("CLUSTER REPLICATE", master_id)

    def _poll(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        while True:
            try:
                if check():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}\n{log_tails(self._nodes)}")
            time.sleep(POLL)

    def _state_of(self, node: RedisProcess, expected_nodes: int) -> tuple[bool, str]:
        with node.client(socket_timeout=1) as client:
            info = _info(client.execute_command("CLUSTER INFO"))
            ok = (info.get("cluster_state") == "ok"
                  and info.get("cluster_slots_assigned") == str(SLOTS)
                  and info.get("cluster_known_nodes") == str(expected_nodes))
            if ok and self._role(node) == "slave":
                ok = client.info("replication").get("master_link_status") == "up"
        return ok, info.get("cluster_state", "?")

    def wait_for_cluster_state(self, state: str = "ok", timeout: float = 20.0,
                               ports: Iterable[int] | None = None) -> None:
        """Until every running node (or those in ``ports``) reports ``cluster_state:<state>``.
        For "ok" also: all 16384 slots assigned, every node known, replicas in sync."""
        wanted = list(ports) if ports is not None else [n.port for n in self._nodes if n.running]
        deadline = time.monotonic() + timeout
        last: dict[int, str] = {}

        def reached() -> bool:
            done = True
            for port in wanted:
                try:
                    ok, seen = self._state_of(self._node(port), len(self._nodes))
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as error:
                    ok, seen = False, f"unreachable ({error})"
                last[port] = seen
                done = done and (ok if state == "ok" else seen == state)
            return done

        self._poll(reached, deadline, f"cluster_state:{state} not reached within {timeout:.0f} s "
                                      f"(last seen: {last})")

    def stop(self) -> None:
        """Stop every node and remove its dir (also after a failed start)."""
        stop_all(self._nodes)
        self._nodes = []
        self.started = False
        _live.discard(self)

    # -- faults -----------------------------------------------------------------------------

    def _node(self, port: int) -> RedisProcess:
        for node in self._nodes:
            if node.port == port:
                return node
        raise KeyError(f"no node of this cluster on port {port}")

    def _role(self, node: RedisProcess) -> str:
        with node.client(socket_timeout=1) as client:
            return str(client.execute_command("ROLE")[0])

    def kill_node(self, port: int) -> None:
        """SIGKILL one node (its data is gone: no persistence; nodes.conf stays)."""
        self._node(port).kill()

    def restart_node(self, port: int, timeout: float = 20.0) -> None:
        """Start a killed node again on its port and dir (same node id from nodes.conf), then
        wait until the whole cluster is ok again."""
        node = self._node(port)
        if node.running:
            node.stop()
        node.start()
        self.wait_for_cluster_state("ok", timeout=timeout)

    # -- data -------------------------------------------------------------------------------

    def _any_client(self) -> redis.Redis:
        for node in self._nodes:
            if node.running:
                return node.client()
        raise RuntimeError("no node of this cluster is running")

    def master_for_key(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now (CLUSTER KEYSLOT + CLUSTER SLOTS)."""
        with self._any_client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for low, high, master, *_replicas in client.execute_command("CLUSTER SLOTS"):
                if int(low) <= slot <= int(high):
                    return int(master[1])
        raise RuntimeError(f"slot {slot} of {key!r} is served by no master")

    def flushall(self, scripts: bool = False) -> None:
        """FLUSHALL on every master (replicas follow); with ``scripts``, SCRIPT FLUSH on every
        running node too."""
        for node in self._nodes:
            if not node.running:
                continue
            with node.client() as client:
                if self._role(node) == "master":
                    client.flushall()
                if scripts:
                    client.script_flush()

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def start_cluster(masters: int = 3, replicas: int = 0) -> RedisCluster:
    """A started cluster (for a session fixture: ``yield start_cluster()``, then ``.stop()``)."""
    return RedisCluster(masters=masters, replicas=replicas).start()
