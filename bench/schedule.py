"""The order of a full run: each measurement, each run, every system (order rotated per
run, so no system always goes first or last), errors recorded instead of stopping the run."""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import envs, measures
from bench.harness import Bench, StepFailed
from bench.measures import Backlog, Sizes


def sizes_for(args: argparse.Namespace) -> Sizes:
    sizes = Sizes()
    if args.quick:
        sizes = Sizes(enqueue=1_000, batch=100, drain=1_000, latency_rate=200.0,
                      latency_seconds=1.0, warm_seconds=0.5, backlogs=(1_000, 5_000),
                      claim=500, fill_producers=1, ceiling_jobs=20_000)
    if args.n:
        sizes.enqueue = sizes.drain = args.n
    if args.backlogs:
        sizes.backlogs = tuple(int(x) for x in args.backlogs.split(","))
    return sizes


def rotated(systems: list[str], run: int) -> list[str]:
    k = run % len(systems)
    return systems[k:] + systems[:k]


def machine() -> dict[str, Any]:
    def sh(cmd: str) -> str:
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
        "cores": sh("nproc"),
        "memory": sh("free -h | awk '/Mem:/{print $2}'"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": sh("redis-server --version"),
        "load_before": sh("cat /proc/loadavg"),
        "busiest_before": sh("ps -eo pcpu,comm --sort=-pcpu --no-headers | head -8"),
    }


def run_all(args: argparse.Namespace, pythons: dict[str, str], skipped: dict[str, str],
            wanted: list[str]) -> dict[str, Any]:
    systems = [s for s in envs.SYSTEMS if s in pythons]
    sizes = sizes_for(args)
    records: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    meta = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "argv": " ".join(["python3 bench/run.py", *[a for a in __import__("sys").argv[1:]
                                                          if a != "--no-install"]]),
            "note": args.note, "sizes": sizes.__dict__, "runs": args.runs}
    bench = Bench(pythons, logs=args.out / "logs")
    info = {s: envs.adapter_constants(s) for s in systems}
    versions = {}
    for s in systems:
        try:
            versions[s] = bench.step(s, "version")["version"]
        except StepFailed as exc:
            skipped[s] = f"does not import: {exc}"
    systems = [s for s in systems if s not in skipped]
    concurrency = {s: int(info[s]["CONCURRENCY"]) for s in systems}  # type: ignore[call-overload]

    def attempt(label: str, system: str, run: int, fn: Callable[..., list[dict[str, Any]]],
                *args: Any) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {label} {system} ...", end=" ", flush=True)
        try:
            got = fn(*args)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            error = "".join(traceback.format_exception_only(exc))[-1500:]
            print("FAILED\n    " + error.strip().replace("\n", "\n    "))
            errors.append({"measure": label, "system": system, "error": error})
            return
        for r in got:
            r.setdefault("run", run)
        records.extend(got)
        print(", ".join(f"{r['measure']}={r['value']:.4g}" for r in got))

    try:
        for run in range(args.runs):
            for system in rotated(systems, run):
                for name, fn in (("enqueue", measures.enqueue_single),
                                 ("bulk", measures.enqueue_bulk), ("memory", measures.memory)):
                    if name in wanted:
                        attempt(name, system, run, fn, bench, system, sizes)
        for processes in (1, 2):
            for run in range(args.runs if "drain" in wanted else 0):
                for system in rotated(systems, run):
                    attempt(f"drain{processes}", system, run, measures.drain, bench, system,
                            sizes, processes, concurrency[system])
        for name, fn in (("e2e", measures.end_to_end), ("latency", measures.latency)):
            for run in range(args.runs if name in wanted else 0):
                for system in rotated(systems, run):
                    attempt(name, system, run, fn, bench, system, sizes, concurrency[system])
        for system in systems if "claim" in wanted else []:
            for size in sizes.backlogs:  # one backlog at a time: a 1M queue is filled once
                backlog = Backlog(bench, system, size, sizes)
                for run in range(args.runs):
                    attempt(f"claim {size}", system, run, backlog.run, concurrency[system])
                records.append({"measure": f"fill_{measures.label(size)}", "system": system,
                                "value": backlog.fill_seconds, "unit": "s", "run": 0})
        if "ceiling" in wanted and "kueatomic" in systems:
            from bench import ceiling

            attempt("ceiling", "kueatomic", 0, ceiling.measure, bench, sizes, args.runs)
    finally:
        bench.close()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["load_after"] = Path("/proc/loadavg").read_text().strip()
    return {"meta": meta, "versions": versions, "skipped": skipped, "errors": errors,
            "settings": {s: {k: info[s].get(k) for k in
                             ("BULK_API", "BATCH_PATH", "CONCURRENCY", "SETTINGS")}
                         for s in systems},
            "records": records}
