"""A private Redis Sentinel setup for tests: one master, R replicas, S sentinels.

Every process gets its own temp dir (a sentinel its generated sentinel.conf, which Sentinel
rewrites) and its own redis.log; ports are free, below 55535, never 6379 or 26379. Startup
waits until the replicas are in sync and every sentinel sees the master, every replica and
every other sentinel; a timeout raises RuntimeError with the tail of every log, after stopping
whatever had been started."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import redis
import redis.sentinel

from .redis_cluster import (
    HOST,
    POLL,
    RedisProcess,
    _live,
    log_tails,
    no_retry,
    pick_port,
    spawn_all,
    stop_all,
)

Address = tuple[str, int]
APPENDONLY = {"no": ["--appendonly", "no"],
              "everysec": ["--appendonly", "yes", "--appendfsync", "everysec"],
              "always": ["--appendonly", "yes", "--appendfsync", "always"]}


class SentinelSetup:
    """A master, ``replicas`` replicas of it and ``sentinels`` sentinels watching it as
    ``service`` (quorum 2, down-after 1000 ms, failover-timeout 5000 ms).

    >>> with SentinelSetup() as setup:
    ...     setup.failover()
    """

    def __init__(self, replicas: int = 1, sentinels: int = 3, service: str = "kueatomic", *,
                 appendonly: str = "no", quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000, startup_timeout: float = 30.0) -> None:
        if appendonly not in APPENDONLY:
            raise ValueError(f"appendonly must be one of {sorted(APPENDONLY)}, not {appendonly!r}")
        if sentinels < 1 or replicas < 0:
            raise ValueError("a sentinel setup needs at least one sentinel")
        self.replicas = replicas
        self.sentinel_count = sentinels
        self.service = service
        self.appendonly = appendonly
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.startup_timeout = startup_timeout
        self.master_port = 0  # the first master's port (after a failover: see master_address)
        self._servers: list[RedisProcess] = []
        self._sentinels: list[RedisProcess] = []
        self.started = False

    # -- addresses --------------------------------------------------------------------------

    @property
    def data_ports(self) -> list[int]:
        """The master's port first (as started), then the replicas'."""
        return [server.port for server in self._servers]

    @property
    def replica_ports(self) -> list[int]:
        """The replicas' ports as started (a failover swaps roles: see master_address)."""
        return self.data_ports[1:]

    @property
    def sentinel_ports(self) -> list[int]:
        return [sentinel.port for sentinel in self._sentinels]

    @property
    def sentinels(self) -> list[Address]:
        return [(HOST, port) for port in self.sentinel_ports]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def sentinel_client(self, **options: Any) -> redis.sentinel.Sentinel:
        """redis-py's Sentinel over all sentinels (``.master_for(setup.service)``)."""
        options.setdefault("socket_timeout", 2)
        return redis.sentinel.Sentinel(self.sentinels, **options)

    def client(self, **options: Any) -> redis.Redis:
        """A client for the current master, found through the sentinels."""
        options.setdefault("decode_responses", True)
        return self.sentinel_client().master_for(self.service, **options)

    def server_client(self, port: int, **options: Any) -> redis.Redis:
        """A plain client for one data server (master or replica) or sentinel."""
        return self._process(port).client(**options)

    # -- lifecycle --------------------------------------------------------------------------

    def _server_args(self, replica_of: int | None) -> Callable[[RedisProcess], list[str]]:
        def args(server: RedisProcess) -> list[str]:
            line = ["--port", str(server.port), "--bind", HOST, "--protected-mode", "no",
                    "--dir", str(server.dir), "--logfile", str(server.log), "--save", "",
                    "--repl-diskless-sync-delay", "0", *APPENDONLY[self.appendonly]]
            if replica_of is not None:
                line += ["--replicaof", HOST, str(replica_of)]
            return line
        return args

    def _sentinel_args(self, sentinel: RedisProcess) -> list[str]:
        conf = sentinel.dir / "sentinel.conf"
        if not conf.exists():  # Sentinel rewrites it; a restart keeps what it learned
            conf.write_text("\n".join([
                f"port {sentinel.port}",
                f"bind {HOST}",
                "protected-mode no",
                f'dir "{sentinel.dir}"',
                f'logfile "{sentinel.log}"',
                "sentinel resolve-hostnames no",
                f"sentinel monitor {self.service} {HOST} {self.master_port} {self.quorum}",
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                "",
            ]))
        return [str(conf), "--sentinel"]

    def start(self) -> SentinelSetup:
        if self.started:
            return self
        deadline = time.monotonic() + self.startup_timeout
        _live.add(self)

        def another(old: RedisProcess) -> RedisProcess:
            # only reached when a port was taken between pick_port and the bind
            return RedisProcess(pick_port(), old.make_args, old.name)

        try:
            self._servers.append(RedisProcess(pick_port(), self._server_args(None),
                                              "sentinel-master"))
            spawn_all(self._servers, replace=another)
            master = self._servers[0]
            self.master_port = master.port
            for _ in range(self.replicas):
                self._servers.append(RedisProcess(pick_port(), self._server_args(master.port),
                                                  "sentinel-replica"))
            for _ in range(self.sentinel_count):
                self._sentinels.append(RedisProcess(pick_port(), self._sentinel_args, "sentinel"))
            replicas = self._servers[1:]
            try:
                spawn_all(replicas, replace=another)
            finally:
                self._servers[1:] = replicas  # what runs, for stop() on failure
            spawn_all(self._sentinels, replace=another)
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _poll(self, check: Callable[[], bool], deadline: float, what: Callable[[], str]) -> None:
        while True:
            try:
                if check():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what()}\n{log_tails(self._servers + self._sentinels)}")
            time.sleep(POLL)

    def _wait_ready(self, deadline: float) -> None:
        replicas = self._servers[1:]
        seen: dict[int, str] = {}

        def replicas_in_sync() -> bool:
            for replica in replicas:
                with replica.client(socket_timeout=1) as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return False
            return True

        def sentinels_know_everything() -> bool:
            for sentinel in self._sentinels:
                with sentinel.client(socket_timeout=1) as client:
                    state = client.sentinel_master(self.service)
                    seen[sentinel.port] = (f"num-slaves={state.get('num-slaves')} "
                                           f"num-other-sentinels={state.get('num-other-sentinels')}")
                    if (int(state["num-slaves"]) != len(replicas)
                            or int(state["num-other-sentinels"]) != len(self._sentinels) - 1
                            or _flags(state) != {"master"}):
                        return False
                    # each replica answered INFO (else SENTINEL FAILOVER says NOGOODSLAVE) and
                    # each other sentinel is connected (else no vote for an automatic failover)
                    if any(_flags(r) != {"slave"} or r.get("master-link-status") != "ok"
                           for r in client.sentinel_slaves(self.service)):
                        seen[sentinel.port] += " (a replica not ready)"
                        return False
                    if any(_flags(s) != {"sentinel"}
                           for s in client.sentinel_sentinels(self.service)):
                        seen[sentinel.port] += " (a sentinel not connected)"
                        return False
            return True

        self._poll(replicas_in_sync, deadline, lambda: "replicas never reached "
                                                       "master_link_status:up")
        self._poll(sentinels_know_everything, deadline,
                   lambda: f"sentinels never saw the master, {len(replicas)} replica(s) and "
                           f"{len(self._sentinels) - 1} other sentinel(s) (last seen: {seen})")

    def stop(self) -> None:
        """Stop every sentinel and server and remove their dirs (also after a failed start)."""
        stop_all(self._sentinels + self._servers)
        self._sentinels, self._servers = [], []
        self.started = False
        _live.discard(self)

    # -- master and failover ----------------------------------------------------------------

    def _process(self, port: int) -> RedisProcess:
        for process in self._servers + self._sentinels:
            if process.port == port:
                return process
        raise KeyError(f"no server or sentinel of this setup on port {port}")

    def _addresses(self) -> dict[int, Address | None]:
        """What each running sentinel calls the master now (None: unreachable)."""
        seen: dict[int, Address | None] = {}
        for sentinel in self._sentinels:
            if not sentinel.running:
                continue
            try:
                with sentinel.client(socket_timeout=1) as client:
                    host, port = client.sentinel_get_master_addr_by_name(self.service)
                    seen[sentinel.port] = (str(host), int(port))
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, TypeError):
                seen[sentinel.port] = None
        return seen

    def master_address(self) -> Address:
        """(host, port) of the master, by SENTINEL GET-MASTER-ADDR-BY-NAME on a sentinel."""
        for address in self._addresses().values():
            if address is not None:
                return address
        raise RuntimeError(f"no sentinel answers for {self.service}")

    def failover(self, timeout: float = 5.0) -> None:
        """SENTINEL FAILOVER <service> on one sentinel (returns at once; see
        wait_for_new_master). Retries NOGOODSLAVE for ``timeout`` s."""
        sentinel = next(s for s in self._sentinels if s.running)
        deadline = time.monotonic() + timeout
        with sentinel.client() as client:
            while True:
                try:
                    client.execute_command("SENTINEL FAILOVER", self.service)
                    return
                except redis.ResponseError as error:
                    if "NOGOODSLAVE" not in str(error) or time.monotonic() > deadline:
                        raise
                time.sleep(POLL)

    def role(self, port: int) -> str:
        """ROLE of one data server: "master" or "slave"."""
        with self._process(port).client(socket_timeout=1) as client:
            return str(client.execute_command("ROLE")[0])

    def wait_for_new_master(self, old: Address, timeout: float = 30.0) -> Address:
        """Until every running sentinel names the same master other than ``old`` and it
        answers ROLE as master; returns it."""
        deadline = time.monotonic() + timeout
        found: list[Address] = []
        seen: dict[int, Address | None] = {}

        def moved() -> bool:
            seen.clear()
            seen.update(self._addresses())
            named = set(seen.values())
            if len(named) != 1:
                return False
            (address,) = named
            if address is None or tuple(address) == tuple(old):
                return False
            with redis.Redis(host=address[0], port=address[1], decode_responses=True,
                             socket_connect_timeout=0.5, socket_timeout=1,
                             retry=no_retry()) as client:
                if client.execute_command("ROLE")[0] != "master":
                    return False
            found.append(address)
            return True

        self._poll(moved, deadline, lambda: f"no new master instead of {old} within "
                                            f"{timeout:.0f} s (sentinels say: {seen})")
        return found[-1]

    def wait_for_role(self, port: int, role: str, timeout: float = 30.0) -> None:
        """Until the data server on ``port`` answers ROLE with ``role`` ("master"/"slave");
        for "slave" also until its link to the master is up."""
        server = self._process(port)
        deadline = time.monotonic() + timeout

        def reached() -> bool:
            if self.role(port) != role:
                return False
            if role == "slave":
                with server.client(socket_timeout=1) as client:
                    return bool(client.info("replication").get("master_link_status") == "up")
            return True

        self._poll(reached, deadline, lambda: f"{port} is not {role} after {timeout:.0f} s")

    # -- faults -----------------------------------------------------------------------------

    def kill_server(self, port: int) -> None:
        """SIGKILL one data server or sentinel, as a crash would."""
        self._process(port).kill()

    def restart_server(self, port: int) -> None:
        """Start a killed data server or sentinel again on its port and dir (a sentinel keeps
        its rewritten sentinel.conf; a server its original --replicaof, which the sentinels
        correct)."""
        process = self._process(port)
        if process.running:
            process.stop()
        process.start()

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def _flags(state: dict[str, Any]) -> set[str]:
    """An instance's SENTINEL flags as a set (redis-py parses them into is_* booleans and
    keeps the text in "flags")."""
    flags = state.get("flags", "")
    if isinstance(flags, str):
        return set(filter(None, flags.split(",")))
    return {str(flag) for flag in flags}


def start_sentinel(replicas: int = 1, sentinels: int = 3, service: str = "kueatomic",
                   appendonly: str = "no") -> SentinelSetup:
    """A started setup (for a session fixture: ``yield start_sentinel()``, then ``.stop()``)."""
    return SentinelSetup(replicas=replicas, sentinels=sentinels, service=service,
                         appendonly=appendonly).start()
