#!/usr/bin/env python3
"""Side-by-side benchmark: kueatomic and the Python job queues on Redis, in one run.

    python3 bench/run.py                 # everything, 3 runs each (about an hour on 2 cores)
    python3 bench/run.py --quick         # small sizes, for a look in a minute or two
    python3 bench/run.py --systems kueatomic,huey --measures enqueue,drain --runs 1
    python3 bench/run.py --measures cluster   # only bench/cluster.py (Redis Cluster, shards)

Creates bench/.venv/<system> from PyPI (first time only), starts its own redis-server on a
free port, runs issue 5's measurements for every system (runs interleaved, order rotated),
writes the raw records to bench/out/, then bench/RESULTS.md and bench/results.png.
The "cluster" measure is bench/cluster.py (kueatomic alone on a plain redis-server and on
local Redis Clusters of 1 and 3 masters, unsharded and sharded), run last; its section of
RESULTS.md, and every other section marked "<!-- kept: name -->", is carried over when the
report is rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench import envs

MEASURES = ["enqueue", "bulk", "memory", "drain", "e2e", "latency", "claim", "ceiling", "cluster"]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(envs.SYSTEMS))
    p.add_argument("--measures", default=",".join(MEASURES),
                   help=", ".join(MEASURES))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--n", type=int, help="jobs per enqueue/drain run")
    p.add_argument("--backlogs", help="claim-scaling backlogs, e.g. 1000,100000,1000000")
    p.add_argument("--no-install", action="store_true",
                   help="use existing venvs only; kueatomic falls back to this interpreter")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--results", type=Path, default=BENCH / "RESULTS.md",
                   help="where the report goes ('-' for none)")
    p.add_argument("--note", default="", help="what else was running, for RESULTS.md")
    return p.parse_args(argv)


def prepare_pythons(args: argparse.Namespace, systems: list[str]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """Interpreter per system, and why a system is skipped."""
    pythons: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for system in systems:
        path = envs.python(system)
        if not args.no_install:
            try:
                envs.ensure(system)
            except Exception as exc:  # noqa: BLE001 - reported in RESULTS.md
                skipped[system] = f"not installable here: {exc}"
                continue
        if path.exists():
            pythons[system] = str(path)
        elif system == "kueatomic":
            pythons[system] = sys.executable
        else:
            skipped[system] = f"no venv at {path.parent.parent} (run without --no-install)"
    return pythons, skipped


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(envs.SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; choose from {envs.SYSTEMS}")
    measures = [m for m in args.measures.split(",") if m]
    if measures == ["cluster"]:
        systems = ["kueatomic"]  # bench/cluster.py alone: no peer venvs needed
    pythons, skipped = prepare_pythons(args, systems)
    for system, why in skipped.items():
        print(f"[skip] {system}: {why}", flush=True)
    if "kueatomic" in pythons and Path(sys.prefix) != envs.VENVS / "kueatomic" \
            and pythons["kueatomic"] != sys.executable and not os.environ.get("BENCH_REEXEC"):
        # The orchestrator itself runs in kueatomic's venv (redis-py, matplotlib, scripts).
        os.environ["BENCH_REEXEC"] = "1"
        os.execv(pythons["kueatomic"], [pythons["kueatomic"], __file__, *sys.argv[1:],
                                        "--no-install"])
    peers = [m for m in measures if m != "cluster"]
    if peers:
        run_peers(args, pythons, skipped, peers)
    if "cluster" in measures:
        from bench import cluster  # after the re-exec: needs redis-py

        cluster_argv = ["--runs", str(args.runs)]
        if args.out != BENCH / "out":
            cluster_argv += ["--out", str(args.out)]
        if args.results != BENCH / "RESULTS.md":
            cluster_argv += ["--results", str(args.results)]
        cluster_argv += ["--quick"] if args.quick else []
        cluster_argv += ["--jobs", str(args.n)] if args.n else []
        cluster_argv += ["--note", args.note] if args.note else []
        cluster.main(cluster_argv, command="python3 bench/cluster.py")
    return 0


def run_peers(args: argparse.Namespace, pythons: dict[str, str], skipped: dict[str, str],
              measures: list[str]) -> None:
    from bench.schedule import run_all  # after the re-exec: needs redis-py

    record = run_all(args, pythons, skipped, measures)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = args.out / f"results-{stamp}.json"
    raw.write_text(json.dumps(record, indent=1))
    (args.out / "latest.json").write_text(json.dumps(record, indent=1))
    print(f"raw records: {raw}")
    if str(args.results) != "-":
        from bench import report

        report.write(record, args.results)
        print(f"report: {args.results}")


if __name__ == "__main__":
    sys.exit(main())
