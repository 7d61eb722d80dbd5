"""The orchestrator's toolbox: a private redis-server, child steps run in each system's venv,
worker processes, and the tally the no-op handlers publish (bench/tally.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import envs, tally

sys.path.insert(0, str(envs.ROOT))
from tests.redis_server import RedisServer

CONTROL_DB = 15  # the tally lives here; queues under test use db 0


class StepFailed(RuntimeError):
    pass


@dataclass
class Bench:
    """One redis-server for the whole run; every system is measured on it in turn."""

    pythons: dict[str, str]  # system -> interpreter of its venv
    logs: Path  # each spawned process writes its output to a file here
    server: RedisServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = RedisServer().start()
        self.url = self.server.url  # redis://127.0.0.1:<free port>/0, never 6379
        self.control_url = f"redis://127.0.0.1:{self.server.port}/{CONTROL_DB}"
        self.data = redis.Redis.from_url(self.url)
        self.control = redis.Redis.from_url(self.control_url)
        self.env = {**os.environ, "BENCH_REDIS_URL": self.url,
                    "BENCH_CONTROL_URL": self.control_url, "PYTHONPATH": str(envs.ROOT)}
        self.env.pop("PYTHONHOME", None)

    def close(self) -> None:
        self.data.close()
        self.control.close()
        self.server.cleanup()

    # --- Redis state ----------------------------------------------------------------------
    def flush(self) -> None:
        """Empty every db of our own server (scripts stay cached, as in production)."""
        self.data.flushall()

    def used_memory(self) -> int:
        return int(self.data.info("memory")["used_memory"])

    def redis_cpu(self) -> float:
        """CPU seconds the redis-server process has used (user + system)."""
        cpu = self.data.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def reset_tally(self) -> None:
        self.control.delete(tally.TALLY_KEY, tally.LATENCY_KEY)

    def tally(self) -> dict[str, float]:
        return tally.read(self.control)

    def latencies(self) -> list[float]:
        return tally.latencies(self.control)

    # --- child steps ----------------------------------------------------------------------
    def step(self, system: str, *args: Any, timeout: float = 3600) -> dict[str, Any]:
        """Run ``python -m bench.child SYSTEM ARGS`` in the system's venv; its JSON answer."""
        cmd = [self.pythons[system], "-m", "bench.child", system, *map(str, args)]
        done = subprocess.run(cmd, env=self.env, cwd=envs.ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            raise StepFailed(f"{system} {' '.join(map(str, args))} failed:\n"
                             + (done.stderr or done.stdout)[-2000:])
        return json.loads(lines[-1])

    def fill(self, system: str, n: int, producers: int = 1) -> float:
        """Queue n jobs by the system's fastest path (untimed for the figure); seconds."""
        if n <= 0:
            return 0.0
        if producers == 1 or n < 20_000:
            return float(self.step(system, "fill", n)["seconds"])
        share = n // producers
        start = time.perf_counter()
        procs = [self._spawn(system, "fill", share + (n - share * producers if i == 0 else 0))
                 for i in range(producers)]
        for proc in procs:
            if proc.wait():
                raise StepFailed(f"{system} fill failed:\n{tail(proc)}")
        return time.perf_counter() - start

    # --- workers ----------------------------------------------------------------------------
    def _spawn(self, system: str, *args: Any) -> subprocess.Popen[bytes]:
        """A child in its own session (so its whole process group can be killed), its output
        in a log file (a pipe nobody reads would block a chatty worker)."""
        cmd = [self.pythons[system], "-m", "bench.child", system, *map(str, args)]
        self.logs.mkdir(parents=True, exist_ok=True)
        self._spawned = getattr(self, "_spawned", 0) + 1
        path = self.logs / f"{system}-{args[0]}-{self._spawned}.log"
        with open(path, "wb") as out:
            proc = subprocess.Popen(cmd, env=self.env, cwd=envs.ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = path  # type: ignore[attr-defined]
        return proc

    def start_workers(self, system: str, processes: int, concurrency: int) -> list[Any]:
        return [self._spawn(system, "worker", "--concurrency", concurrency)
                for _ in range(processes)]

    @staticmethod
    def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
        """SIGKILL each worker's process group (the queue is flushed before the next run)."""
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in procs:
            proc.wait()

    def wait_count(self, target: int, procs: list[Any], timeout: float) -> dict[str, float]:
        """Poll the tally until the workers have started ``target`` jobs."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.tally()
            if seen["count"] >= target:
                return seen
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                raise StepFailed(f"a worker exited with {dead[0].returncode}:\n{tail(dead[0])}")
            if time.monotonic() > deadline:
                raise StepFailed(f"only {seen['count']} of {target} jobs started in {timeout}s")
            time.sleep(0.02)


def tail(proc: Any, chars: int = 2000) -> str:
    return str(Path(proc.log_path).read_text(errors="replace")[-chars:])
