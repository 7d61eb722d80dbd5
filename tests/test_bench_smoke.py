"""The benchmark harness still runs end to end (tiny sizes, one run): bench/run.py for
kueatomic, and for one cheap peer when its bench venv exists. No timing is asserted: speed
is measured by bench/, not by tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .redis_server import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
PEER = "huey"  # cheap to install and to run
TINY = ["--quick", "--runs", "1", "--n", "300", "--backlogs", "300,600", "--no-install"]


def run_bench(tmp_path: Path, systems: str, measures: str) -> dict:
    out = tmp_path / "out"
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--systems", systems,
         "--measures", measures, "--out", str(out), "--results", str(results), *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    assert not data["errors"], data["errors"]
    text = results.read_text()
    assert "## Targets (issue 5)" in text and "### Reproduce" in text
    return data


def values(data: dict, system: str) -> dict[str, float]:
    return {r["measure"]: r["value"] for r in data["records"] if r["system"] == system}


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")


def test_kueatomic_every_measure(tmp_path: Path) -> None:
    measures = "enqueue,bulk,memory,drain,e2e,latency,claim"
    if shutil.which("redis-benchmark") and shutil.which("redis-cli"):
        measures += ",ceiling"
    data = run_bench(tmp_path, "kueatomic", measures)
    got = values(data, "kueatomic")
    expected = {"enqueue", "bulk", "memory", "drain1", "drain2", "e2e", "latency_p50",
                "latency_p99", "claim_300", "claim_600"}
    if "ceiling" in measures:
        expected |= {"ceiling_create1", "ceiling_create100", "ceiling_claim100",
                     "ceiling_complete100", "ceiling_cycle"}
    assert expected <= set(got), sorted(got)
    assert all(value > 0 for value in got.values()), got


def test_a_peer_side_by_side(tmp_path: Path) -> None:
    if not (ROOT / "bench" / ".venv" / PEER / "bin" / "python").exists():
        pytest.skip(f"bench/.venv/{PEER} not created (python3 bench/run.py creates it)")
    data = run_bench(tmp_path, f"kueatomic,{PEER}", "enqueue,bulk,drain")
    for system in ("kueatomic", PEER):
        got = values(data, system)
        assert {"enqueue", "bulk", "drain1", "drain2"} <= set(got), (system, sorted(got))
    assert data["versions"][PEER]


def table_of(tool: str, *args: str) -> tuple[list[list[str]], str]:
    """Run ``bench/<tool>`` (a valgrind tool: skipped without it) and return the rows of the
    table it prints (cells stripped, header dropped) and its whole output."""
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        pytest.skip("valgrind is not installed")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / tool), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    return rows, done.stdout


def number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_lua_cost_counts_instructions_per_phase() -> None:
    rows, out = table_of("lua_cost.py", "--jobs", "200", "--singles", "20")
    counts = {row[0]: number(row[1]) for row in rows}
    assert set(counts) == {"create_bulk", "claim", "complete", "single_create"}, out
    assert all(count > 1000 for count in counts.values()), counts


def test_lua_cuts_splits_one_single_create() -> None:
    """Every cut point is found in the linked create_jobs (a cut that no longer matched
    would raise) and the whole script costs more than the empty one. At the smoke size the
    parts themselves are noisy: Redis runs a Lua GC step every 50 calls."""
    rows, out = table_of("lua_cuts.py", "--calls", "10")
    totals = [number(row[2]) for row in rows]
    assert len(totals) == 10 and totals[-1] > totals[0] > 1000, out


def test_claim_parts_finds_every_part_of_activate_jobs() -> None:
    """Every PARTS line is still in the linked activate_jobs (a line that no longer matched
    would stop the tool). At the smoke size the parts themselves are noisy."""
    rows, out = table_of("claim_parts.py", "--jobs", "200")
    assert rows[0][0] == "the whole script" and len(rows) == 7, out
    assert number(rows[0][1]) > 10_000 and number(rows[-1][1]) > 1000, out


def test_batch_cost_splits_a_call_into_fixed_and_per_job_parts() -> None:
    rows, out = table_of("batch_cost.py", "--jobs", "200")
    assert {row[0] for row in rows} == {"activate_jobs", "complete_jobs"}, out
    for row in rows:  # the fixed part is noisy at this size
        assert number(row[2]) > 1000 and number(row[3]) > 1000, out


def test_py_cost_counts_the_clients_instructions_per_job() -> None:
    rows, out = table_of("py_cost.py", "--small")
    counts = {row[0]: number(row[1]) for row in rows}
    assert set(counts) == {"encode", "worker"}, out
    assert all(count > 1000 for count in counts.values()), counts


def test_producers_bench_runs() -> None:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "producers.py"), "--jobs", "400",
                           "--repeat", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "200 asyncio tasks, save() each, coalesced" in done.stdout
    assert "| create_bulk, calls of 1,000 |" in done.stdout
