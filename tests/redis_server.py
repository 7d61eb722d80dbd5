"""A private redis-server for the test session: free port, own temp dir, never 6379.

Tests never touch a Redis they did not start (people keep real data on 6379)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

INSTALL_HINT = "install it with: apt-get install -y redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def require_redis() -> bool:
    return os.environ.get("KUEATOMIC_REQUIRE_REDIS") == "1"


class RedisServer:
    """Start/stop/restart one redis-server process on a port of its own."""

    def __init__(self, port: int | None = None, requirepass: str | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(f"redis-server not found; {INSTALL_HINT}")
        self.binary = binary
        self.port = port or free_port()
        assert self.port != 6379, "tests must never use the developer's Redis on 6379"
        self.dir = Path(tempfile.mkdtemp(prefix="kueatomic-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.requirepass = requirepass  # clients must AUTH with it (url leaves it out)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "no",
             *(["--requirepass", self.requirepass] if self.requirepass is not None else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2,
                             password=self.requirepass)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
