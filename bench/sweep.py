#!/usr/bin/env python3
"""How each system's jobs-in-flight setting (CONCURRENCY in its adapter) was chosen: drain N
no-op jobs with one worker process at several values and print the rates.

    bench/.venv/kueatomic/bin/python bench/sweep.py --systems huey,saq --values 1,4,16,64 --n 20000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import envs, measures
from bench.harness import Bench


def main() -> int:
    p = argparse.ArgumentParser(prog="bench/sweep.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(envs.SYSTEMS))
    p.add_argument("--values", default="1,4,10,50,100,500")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    systems = args.systems.split(",")
    bench = Bench({s: str(envs.python(s)) for s in systems}, logs=envs.BENCH / "out" / "logs")
    sizes = measures.Sizes(drain=args.n)
    try:
        for system in systems:
            for value in map(int, args.values.split(",")):
                rates = []
                for _ in range(args.runs):
                    try:
                        got = measures.drain(bench, system, sizes, 1, value)
                        rates += [r["value"] for r in got]
                    except Exception as exc:  # noqa: BLE001 - a value the system refuses
                        print(f"{system} {value}: {type(exc).__name__}: {str(exc)[:200]}")
                if rates:
                    print(f"{system:10s} concurrency {value:5d}: "
                          + ", ".join(f"{r:,.0f}" for r in rates) + " jobs/s", flush=True)
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
