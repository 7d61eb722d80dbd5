#!/usr/bin/env python3
"""One logical queue on Redis Cluster: bulk create and drain, unsharded and sharded, with the
Redis CPU each job costs, against one plain redis-server in the same run.

    python3 bench/cluster.py                  # 5 runs of everything, about 2 minutes on 2 cores
    python3 bench/cluster.py --quick          # 2,000 jobs, 1 run: a look in ~10 s
    python3 bench/cluster.py --shards 1,8 --topologies plain,cluster3 --runs 5
    python3 bench/run.py --measures cluster   # the same, from the main suite
    python3 bench/cluster.py --render bench/runs/<run>.json   # the section again, no run

Topologies, all started at once on free ports (never 6379) and kept for the whole run:
``plain`` is one redis-server without cluster mode (the baseline), ``cluster1`` a Redis
Cluster of 1 master, ``cluster3`` one of 3 masters (tests/redis_cluster.py; no replicas, no
persistence). For each shard count the queue is ``Queue("{b}")`` (1: one slot) or
``Queue("b", shards=N)`` (``{b.0}`` .. ``{b.N-1}``). Each run, on a flushed topology:

- create: ``--jobs`` jobs (type "w", data ``{"i": n}``) by ``create_bulk`` calls of
  ``--batch``, from this process; jobs/s over the calls.
- drain: a ``kueatomic.Worker`` in this process, no-op handler, ``--concurrency`` slots,
  claiming across the shards in turn; jobs/s from the first handler start until every job
  is ``complete`` in Redis (the last results written, polled every 10 ms).

Redis CPU per job: the sum over the topology's redis-server processes of ``INFO cpu``
(used_cpu_user + used_cpu_sys, i.e. getrusage: every thread, µs resolution) after the
phase minus before, over the jobs. Client CPU per job: this process's getrusage (all
threads: producer or worker) over the same span. Runs are interleaved (each run goes through
every topology, order rotated). Scripts are loaded on every node first; completed jobs are
kept, as in Kue. After each run, per topology: 20,000 PUBLISH (and on a cluster SPUBLISH)
of one Kue event to the queue's channel, nobody subscribed, for the CPU a message costs on
the master that takes it and on each other master (a cluster forwards every PUBLISH to every
node). Raw records go to bench/out/cluster-*.json; the section
"Redis Cluster and sharded queues" of bench/RESULTS.md is rewritten between its markers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))


def interpreter() -> None:
    """Re-run in bench/.venv/kueatomic (redis-py with hiredis: how bench/run.py measures)
    when it exists, else in the repo's .venv (this interpreter may have no redis-py)."""
    from bench import envs

    target = envs.python("kueatomic")
    if not target.exists():
        target = envs.ROOT / ".venv" / "bin" / "python"
    if (not target.exists() or os.environ.get("BENCH_REEXEC")
            or Path(sys.prefix).resolve() == target.parent.parent.resolve()):
        return
    os.environ["BENCH_REEXEC"] = "1"
    os.execv(str(target), [str(target), __file__, *sys.argv[1:]])


if __name__ == "__main__":
    interpreter()

import redis

from kueatomic import Queue, Worker, scripts
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

TOPOLOGIES = {"plain": 0, "cluster1": 1, "cluster3": 3}  # name -> masters (0: no cluster)
LABELS = {"plain": "redis-server (no cluster)", "cluster1": "cluster, 1 master",
          "cluster3": "cluster, 3 masters"}
JOB_TYPE = "w"
BEGIN = "<!-- bench/cluster.py: generated from here -->"
END = "<!-- bench/cluster.py: generated up to here -->"
HEADING = "### Redis Cluster and sharded queues (python3 bench/cluster.py)"
KEPT = "<!-- kept: cluster (bench/run.py carries this section over when it rewrites the file) -->"
KEPT_END = "<!-- /kept: cluster -->"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/cluster.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=40_000, help="jobs per create and drain run")
    p.add_argument("--batch", type=int, default=1_000, help="jobs per create_bulk call")
    p.add_argument("--concurrency", type=int, default=50, help="the worker's slots")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--shards", default="1,3,8", help="shard counts (1 = the prefix {b})")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES), help=", ".join(TOPOLOGIES))
    p.add_argument("--quick", action="store_true", help="2,000 jobs, 1 run")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--results", type=Path, default=BENCH / "RESULTS.md",
                   help="where the section goes ('-' for none)")
    p.add_argument("--note", default="", help="what else was running, for RESULTS.md")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="no run: rewrite the section from a run's raw records")
    args = p.parse_args(argv)
    if args.quick:
        args.jobs, args.runs = 2_000, 1
    return args


# --- topologies -----------------------------------------------------------------------------

class Topology:
    """One plain redis-server or one Redis Cluster, with a plain client per master."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.masters = TOPOLOGIES[name]
        self.server: RedisServer | None = None
        self.cluster: RedisCluster | None = None
        if self.masters == 0:
            self.server = RedisServer().start()
            self.url = self.server.url
            self.ports = [self.server.port]
        else:
            self.cluster = RedisCluster(masters=self.masters).start()
            self.url = self.cluster.url
            self.ports = self.cluster.master_ports()
        self.clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=10)
                        for p in self.ports]
        for client in self.clients:  # as a deployed queue's would be: cached already
            for script in scripts.registry().values():
                client.script_load(script.text)

    def cpu(self) -> list[float]:
        """CPU seconds each node has used (user + system, all its threads)."""
        out = []
        for client in self.clients:
            info = client.info("cpu")
            out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
        return out

    def flush(self) -> None:
        for client in self.clients:
            client.flushall()

    def node_of(self, prefix: str) -> int:
        """Index (in self.ports) of the master serving ``prefix``'s keys."""
        if self.cluster is None:
            return 0
        return self.ports.index(self.cluster.master_for_key(prefix + ":jobs"))

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.server is not None:
            self.server.cleanup()
        if self.cluster is not None:
            self.cluster.stop()


def shard_prefixes(shards: int) -> list[str]:
    return ["{b}"] if shards == 1 else [f"{{b.{i}}}" for i in range(shards)]


def make_queue(topology: Topology, shards: int) -> Queue:
    if shards == 1:
        return Queue("{b}", redis=topology.url)
    return Queue("b", redis=topology.url, shards=shards)


def placement(topology: Topology, shards: int) -> str:
    """Shards per master, e.g. "3/3/2" (8 shards on 3 masters)."""
    per = [0] * len(topology.ports)
    for prefix in shard_prefixes(shards):
        per[topology.node_of(prefix)] += 1
    return "/".join(map(str, sorted(per, reverse=True)))


# --- one run --------------------------------------------------------------------------------

def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Span:
    """Wall clock, Redis CPU per node and this process's CPU from start() to stop()."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def start(self) -> None:
        self.cpu0, self.own0, self.t0 = self.topology.cpu(), client_cpu(), time.perf_counter()

    def stop(self, jobs: int, **extra: Any) -> dict[str, Any]:
        t1, own1, cpu1 = time.perf_counter(), client_cpu(), self.topology.cpu()
        nodes = [(b - a) * 1e6 / jobs for a, b in zip(self.cpu0, cpu1)]
        return {"jobs_per_s": jobs / (t1 - self.t0), "seconds": t1 - self.t0,
                "redis_us": sum(nodes), "node_us": nodes,
                "client_us": (own1 - self.own0) * 1e6 / jobs, **extra}


def create(queue: Queue, span: Span, jobs: int, batch: int) -> dict[str, Any]:
    chunks = [[{"type": JOB_TYPE, "data": {"i": i}} for i in range(s, min(s + batch, jobs))]
              for s in range(0, jobs, batch)]
    queue.card("inactive")  # connections up, a sharded queue's format checked: not timed
    span.start()
    for chunk in chunks:
        for result in queue.create_bulk(chunk):
            if isinstance(result, Exception):
                raise result
    out = span.stop(jobs)
    queued = queue.card("inactive", JOB_TYPE)
    if queued != jobs:
        raise RuntimeError(f"{queued} jobs inactive after creating {jobs}")
    return out


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def drain(queue: Queue, span: Span, jobs: int, concurrency: int) -> dict[str, Any]:
    started, finished = threading.Event(), threading.Event()
    counter = itertools.count(1)

    def noop(job: Any) -> None:
        k = next(counter)  # one C call: atomic under the GIL
        if k == 1:
            started.set()
        elif k == jobs:
            finished.set()

    worker = Worker(queue)
    worker.process(JOB_TYPE, concurrency, noop)
    worker.start()
    try:
        # Timed from the first handler start, so starting the worker's threads and its
        # format check are not counted (the first claim's ~concurrency jobs' claim is).
        if not started.wait(60):
            raise RuntimeError(f"no job started within 60 s: {worker.error!r}")
        span.start()
        if not finished.wait(max(60.0, jobs / 200)):
            raise RuntimeError(f"only {next(counter) - 1} of {jobs} jobs started")
        wait_until(lambda: queue.card("complete", JOB_TYPE) >= jobs, 60, "the last results")
        return span.stop(jobs)
    finally:
        worker.shutdown(timeout=1000)


def one_run(topology: Topology, shards: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    topology.flush()
    queue = make_queue(topology, shards)
    span = Span(topology)
    try:
        made = create(queue, span, args.jobs, args.batch)
        drained = drain(queue, span, args.jobs, args.concurrency)
    finally:
        queue.close()
    base = {"topology": topology.name, "masters": topology.masters, "shards": shards}
    return [{**base, "phase": "create", **made}, {**base, "phase": "drain", **drained}]


EVENT = '{"id":123456,"event":"complete","args":["complete",null]}'  # one of Kue's events


def publish_cost(topology: Topology, command: str, messages: int = 20_000) -> dict[str, Any]:
    """``messages`` PUBLISH (or SPUBLISH) on the queue's event channel, nobody subscribed,
    pipelined 1,000 at a time: µs per message on the master that takes them and on each
    other master (a cluster forwards every PUBLISH to every node over its bus)."""
    channel = "{b}:events"
    owner = topology.node_of("{b}")
    client = topology.clients[owner]
    before = topology.cpu()
    for _ in range(messages // 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(1000):
            pipe.execute_command(command, channel, EVENT)
        pipe.execute()
    after = topology.cpu()
    per = [(b - a) * 1e6 / messages for a, b in zip(before, after)]
    others = [u for i, u in enumerate(per) if i != owner]
    return {"topology": topology.name, "command": command, "owner_us": per[owner],
            "other_us": statistics.mean(others) if others else None}


def idle_cpu(topology: Topology, seconds: float = 1.0) -> float:
    """Redis CPU per second of the topology with no client working (cluster bus, cron)."""
    before = sum(topology.cpu())
    time.sleep(seconds)
    return (sum(topology.cpu()) - before) / seconds


def machine() -> dict[str, str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return "?"

    model = next((line.split(":", 1)[1].strip() for line in read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), "?")
    return {"cpu": model, "cores": str(os.cpu_count()), "load": read("/proc/loadavg"),
            "redis": os.popen("redis-server --version").read().strip(),
            "python": sys.version.split()[0], "hiredis": hiredis_version(),
            "redis_py": redis.__version__}


def hiredis_version() -> str:
    try:
        import hiredis
    except ImportError:
        return ""
    return str(hiredis.__version__)


def run_all(args: argparse.Namespace, argv: list[str], command: str = "python3 bench/cluster.py"
            ) -> dict[str, Any]:
    names = [n for n in args.topologies.split(",") if n]
    unknown = set(names) - set(TOPOLOGIES)
    if unknown:
        raise SystemExit(f"unknown topologies {sorted(unknown)}; choose from {list(TOPOLOGIES)}")
    shard_counts = [int(s) for s in args.shards.split(",") if s]
    meta: dict[str, Any] = {
        "argv": " ".join([command, *argv]), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "jobs": args.jobs, "batch": args.batch, "concurrency": args.concurrency,
        "runs": args.runs, "note": args.note, "machine": machine(),
        "commit": os.popen(f"git -C {BENCH.parent} rev-parse --short HEAD").read().strip()}
    records: list[dict[str, Any]] = []
    publishes: list[dict[str, Any]] = []
    errors: list[str] = []
    topologies: list[Topology] = []
    try:
        for name in names:
            topologies.append(Topology(name))
        meta["idle_cpu"] = {t.name: idle_cpu(t) for t in topologies}
        meta["placement"] = {t.name: {s: placement(t, s) for s in shard_counts}
                             for t in topologies}
        for run in range(args.runs):
            k = run % len(topologies)
            for topology in topologies[k:] + topologies[:k]:
                for shards in shard_counts:
                    print(f"[{time.strftime('%H:%M:%S')}] run {run + 1} {topology.name} "
                          f"shards={shards} ...", end=" ", flush=True)
                    try:
                        got = one_run(topology, shards, args)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        print(f"FAILED: {exc!r}")
                        errors.append(f"run {run + 1} {topology.name} shards={shards}: {exc!r}")
                        continue
                    for r in got:
                        r["run"] = run
                    records.extend(got)
                    print(", ".join(f"{r['phase']} {r['jobs_per_s']:,.0f}/s "
                                    f"redis {r['redis_us']:.1f} µs client {r['client_us']:.1f} µs"
                                    for r in got))
            for topology in topologies:
                commands = ["PUBLISH"] + (["SPUBLISH"] if topology.cluster else [])
                for name in commands:
                    topology.flush()
                    publishes.append({**publish_cost(topology, name), "run": run})
    finally:
        for topology in topologies:
            topology.stop()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["load_after"] = Path("/proc/loadavg").read_text().strip()
    return {"meta": meta, "records": records, "publish": publishes, "errors": errors}


# --- report ---------------------------------------------------------------------------------

def medians(records: list[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """(topology, shards, phase) -> medians of rate, Redis and client µs/job, plus range."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["topology"], r["shards"], r["phase"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        rates = [r["jobs_per_s"] for r in rs]
        nodes = [max(r["node_us"]) for r in rs]
        out[key] = {"rate": statistics.median(rates), "low": min(rates), "high": max(rates),
                    "redis": statistics.median(r["redis_us"] for r in rs),
                    "busiest": statistics.median(nodes),
                    "client": statistics.median(r["client_us"] for r in rs), "n": len(rs)}
    return out


def table(data: dict[str, Any]) -> list[str]:
    m = medians(data["records"])
    meta = data["meta"]
    lines = [
        ("| topology | shards | on masters | create jobs/s | create Redis µs/job | "
         "drain jobs/s | drain Redis µs/job | Redis µs/job, create + drain (busiest master) | "
         "client µs/job, create / drain |"),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name in [n for n in TOPOLOGIES if any(k[0] == n for k in m)]:
        for shards in sorted({k[1] for k in m if k[0] == name}):
            c, d = m.get((name, shards, "create")), m.get((name, shards, "drain"))
            if not c or not d:
                continue
            where = meta.get("placement", {}).get(name, {}).get(str(shards)) or \
                meta.get("placement", {}).get(name, {}).get(shards, "")
            lines.append(
                f"| {LABELS[name]} | {shards} | {where} | {c['rate']:,.0f} "
                f"({c['low']:,.0f}–{c['high']:,.0f}) | {c['redis']:.1f} | {d['rate']:,.0f} "
                f"({d['low']:,.0f}–{d['high']:,.0f}) | {d['redis']:.1f} | "
                f"{c['redis'] + d['redis']:.1f} ({c['busiest'] + d['busiest']:.1f}) | "
                f"{c['client']:.1f} / {d['client']:.1f} |")
    return lines


def publish_table(data: dict[str, Any]) -> list[str]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in data.get("publish", []):
        groups.setdefault((r["topology"], r["command"]), []).append(r)
    if not groups:
        return []
    lines = [("| topology | command (no subscriber) | µs per message, master of {b} | "
              "µs per message, each other master |"), "|---|---|---:|---:|"]
    for (name, command), rs in groups.items():
        others = [r["other_us"] for r in rs if r["other_us"] is not None]
        lines.append(f"| {LABELS[name]} | {command} | "
                     f"{statistics.median(r['owner_us'] for r in rs):.2f} | "
                     f"{f'{statistics.median(others):.2f}' if others else '—'} |")
    return lines


def section(data: dict[str, Any]) -> str:
    meta = data["meta"]
    idle = ", ".join(f"{LABELS[k]} {v * 1e3:.1f} ms/s" for k, v in meta.get("idle_cpu", {}).items())
    lines = [
        BEGIN,
        "",
        (f"Measured {meta['started']} – {meta['finished']} (commit {meta['commit']}) with "
         f"`{meta['argv']}`: {meta['jobs']:,} jobs per run, created by create_bulk calls of "
         f"{meta['batch']:,} from one process, then drained by one threaded kueatomic.Worker "
         f"(concurrency {meta['concurrency']}, no-op handler) in the same process, timed from "
         "the first handler start until the last result is in Redis; median of "
         f"{meta['runs']} run{'s' if meta['runs'] != 1 else ''} (min–max in brackets), runs "
         "interleaved. \"on masters\": "
         "shards per master (by CRC16 slot). Redis µs/job: CPU (user + system) of all the "
         "topology's redis-server processes over the phase, per job; in brackets, the busiest "
         "master's. Client µs/job: the Python process's CPU (producer, or worker threads)."),
        "",
        *table(data),
        "",
        ("Events: every job has three (enqueue, start, complete) on `<prefix>:events`, each "
         "sent when someone can hear it, always on a Cluster (lua/README.md, \"Events nobody "
         "hears\"). PUBLISH pipelined 1,000 at a time, per message:"),
        "",
        *publish_table(data),
        "",
        (f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
         f"{meta['machine']['redis'].split(' sha')[0]}; Python {meta['machine']['python']}, "
         f"redis-py {meta['machine'].get('redis_py', '?')}"
         f"{' with hiredis' if meta['machine'].get('hiredis') else ' without hiredis'}. "
         f"Load average before {meta['machine']['load']}, after {meta['load_after']}. "
         f"Idle Redis CPU (no client): {idle}."),
    ]
    if meta.get("note"):
        lines.append(f"Also running: {meta['note']}.")
    if data.get("errors"):
        lines += ["", "Failed runs: " + "; ".join(data["errors"])]
    lines += ["", END]
    return "\n".join(lines)


def write_section(results: Path, data: dict[str, Any]) -> None:
    """Replace the generated part of the section (the text around it is kept); add the
    section before "## How it is measured" (or at the end) when the file has none."""
    text = results.read_text() if results.exists() else ""
    block = section(data)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        new = f"{KEPT}\n{HEADING}\n\n{block}\n\n{KEPT_END}\n\n"
        anchor = text.find("## How it is measured")
        text = text[:anchor] + new + text[anchor:] if anchor >= 0 else text + "\n" + new
    results.write_text(text)


def save(data: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw.write_text(json.dumps(data, indent=1))
    (out / "cluster-latest.json").write_text(json.dumps(data, indent=1))
    return raw


def main(argv: list[str] | None = None, command: str = "python3 bench/cluster.py") -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.render:
        data = json.loads(args.render.read_text())
    else:
        data = run_all(args, argv, command)
        print(f"raw records: {save(data, args.out)}")
    print("\n".join(table(data)))
    if str(args.results) != "-":
        write_section(args.results, data)
        print(f"report: {args.results}")
    return 1 if data["errors"] and not data["records"] else 0


if __name__ == "__main__":
    sys.exit(main())
