"""bench/RESULTS.md and bench/results.png from a run's raw records (bench/out/latest.json).

    python bench/report.py [bench/out/latest.json]   # re-render without re-running

Every figure is the median of the runs, with min and max; "vs best peer" divides by the best
peer's median (for latency and memory, where lower is better, the best peer's by ours, so
above 1 always means kueatomic is ahead). bench/ANALYSIS.md, written by hand after reading
the profiles, is included as it is.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
LOWER_IS_BETTER = {"latency_p50", "latency_p99", "memory"}
TITLES = {
    "enqueue": "1. Enqueue, one job per call, one producer (jobs/s)",
    "bulk": "2. Bulk enqueue, batches of {batch} (jobs/s)",
    "drain1": "3a. Drain {drain:,} queued no-op jobs, one worker process (jobs/s)",
    "drain2": "3b. Drain {drain:,} queued no-op jobs, two worker processes (jobs/s)",
    "e2e": "3c. End to end: one producer (bulk path) and one worker process at once (jobs/s)",
    "memory": ("6. Redis memory per queued job (bytes, INFO used_memory before/after "
               "queueing {drain:,})"),
}


class Table:
    """Aggregates records: (measure, system) -> values over runs."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.values: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.busy: dict[tuple[str, str], list[float]] = defaultdict(list)
        for r in records:
            self.values[(r["measure"], r["system"])].append(float(r["value"]))
            if "redis_busy" in r:
                self.busy[(r["measure"], r["system"])].append(float(r["redis_busy"]))

    def systems(self, measure: str) -> list[str]:
        return [s for (m, s) in self.values if m == measure]

    def median(self, measure: str, system: str) -> float | None:
        values = self.values.get((measure, system))
        return statistics.median(values) if values else None

    def best_peer(self, measure: str, among: list[str] | None = None) -> tuple[str, float] | None:
        peers = [(s, self.median(measure, s)) for s in self.systems(measure)
                 if s != "kueatomic" and (among is None or s in among)]
        peers = [(s, v) for s, v in peers if v is not None]
        if not peers:
            return None
        pick = min if measure in LOWER_IS_BETTER else max
        return pick(peers, key=lambda p: p[1])

    def ratio(self, measure: str, system: str) -> float | None:
        best, mine = self.best_peer(measure), self.median(measure, system)
        if not best or mine is None or not best[1] or not mine:
            return None
        return best[1] / mine if measure in LOWER_IS_BETTER else mine / best[1]


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    if digits == 0 and abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.{max(digits, 1) if abs(value) < 100 else digits}f}"


def measure_table(t: Table, measure: str, title: str, extra: dict[str, str] | None = None,
                  digits: int = 0) -> list[str]:
    systems = t.systems(measure)
    if not systems:
        return []
    reverse = measure not in LOWER_IS_BETTER
    systems.sort(key=lambda s: t.median(measure, s) or 0, reverse=reverse)
    head = "| system | median | min | max | vs best peer |"
    rule = "|---|---:|---:|---:|---:|"
    busy = any((measure, s) in t.busy for s in systems)
    if busy:
        head += " redis-server CPU |"
        rule += "---:|"
    if extra:
        head += " path |"
        rule += "---|"
    lines = [f"### {title}", "", head, rule]
    for s in systems:
        values = t.values[(measure, s)]
        ratio = t.ratio(measure, s)
        name = f"**{s}**" if s == "kueatomic" else s
        row = (f"| {name} | {fmt(statistics.median(values), digits)} | {fmt(min(values), digits)}"
               f" | {fmt(max(values), digits)} | {'—' if ratio is None else f'{ratio:.2f}x'} |")
        if busy:
            b = t.busy.get((measure, s))
            row += f" {statistics.median(b):.0%} |" if b else " — |"
        if extra:
            row += f" {extra.get(s, '')} |"
        lines.append(row)
    return lines + [""]


def targets(t: Table, data: dict[str, Any]) -> list[str]:
    def line(name: str, ok: bool | None, detail: str) -> str:
        mark = "—" if ok is None else ("met" if ok else "**missed**")
        return f"| {name} | {detail} | {mark} |"

    rows = ["| target | measured (medians) | |", "|---|---|---|"]
    k = lambda m: t.median(m, "kueatomic")
    best = t.best_peer("drain1")
    if k("drain1") and best:
        rows.append(line("drain, one process >= 10x fastest peer", k("drain1") >= 10 * best[1],
                         f"{fmt(k('drain1'))} vs {best[0]} {fmt(best[1])} = "
                         f"{k('drain1') / best[1]:.1f}x"))
    bulk_peers = [s for s, c in data["settings"].items() if c.get("BULK_API") and s != "kueatomic"]
    best = t.best_peer("bulk", bulk_peers)
    if k("bulk") and best:
        any_best = t.best_peer("bulk")
        rows.append(line("bulk enqueue >= 5x fastest peer bulk API", k("bulk") >= 5 * best[1],
                         f"{fmt(k('bulk'))} vs {best[0]} {fmt(best[1])} = "
                         f"{k('bulk') / best[1]:.1f}x (vs any batch path: {any_best[0]} "
                         f"{k('bulk') / any_best[1]:.1f}x)" if any_best else ""))
    best = t.best_peer("enqueue")
    if k("enqueue") and best:
        rows.append(line("single enqueue >= fastest peer", k("enqueue") >= best[1],
                         f"{fmt(k('enqueue'))} vs {best[0]} {fmt(best[1])} = "
                         f"{k('enqueue') / best[1]:.2f}x"))
    if k("latency_p99") is not None:
        rate = data["meta"]["sizes"]["latency_rate"]
        rows.append(line(f"create-to-start p99 < 5 ms at {rate:,.0f} jobs/s",
                         k("latency_p99") < 5.0,
                         f"p99 {k('latency_p99'):.2f} ms (p50 {k('latency_p50'):.2f} ms)"))
    claims = sorted((m for m in {m for m, _ in t.values} if m.startswith("claim_")),
                    key=lambda m: backlog_size(m))
    if len(claims) >= 2 and k(claims[0]) and k(claims[-1]):
        share = k(claims[-1]) / k(claims[0])
        rows.append(line(f"claim with {claims[-1][6:]} queued >= 80% of {claims[0][6:]}",
                         share >= 0.8, f"{fmt(k(claims[-1]))} vs {fmt(k(claims[0]))} = "
                                       f"{share:.0%}"))
    if k("ceiling_cycle") and k("e2e"):
        rows.append(line("end to end >= half the ceiling", k("e2e") >= 0.5 * k("ceiling_cycle"),
                         f"{fmt(k('e2e'))} vs cycle ceiling {fmt(k('ceiling_cycle'))} = "
                         f"{k('e2e') / k('ceiling_cycle'):.0%}"))
    if k("ceiling_claim100") and k("ceiling_complete100") and k("drain1"):
        worker_ceiling = 1 / (1 / k("ceiling_claim100") + 1 / k("ceiling_complete100"))
        rows.append(line("(drain vs the claim+complete ceiling, for reference)", None,
                         f"{fmt(k('drain1'))} vs {fmt(worker_ceiling)} = "
                         f"{k('drain1') / worker_ceiling:.0%}"))
    return rows + [""]


def backlog_size(measure: str) -> int:
    text = measure.split("_", 1)[1]
    scale = {"k": 1000, "M": 1_000_000}.get(text[-1], 1)
    return int(text.rstrip("kM")) * scale


def claim_table(t: Table) -> list[str]:
    claims = sorted((m for m in {m for m, _ in t.values} if m.startswith("claim_")),
                    key=backlog_size)
    if not claims:
        return []
    systems = sorted({s for m in claims for s in t.systems(m)},
                     key=lambda s: -(t.median(claims[-1], s) or 0))
    head = "| system | " + " | ".join(f"{m[6:]} queued" for m in claims)
    head += f" | {claims[-1][6:]} / {claims[0][6:]} | fill time of {claims[-1][6:]} |"
    lines = [("### 5. Claim throughput with jobs already queued, one worker process (jobs/s; "
             "median, min–max)"), "", head, "|---|" + "---:|" * (len(claims) + 2)]
    for s in systems:
        cells = []
        for m in claims:
            v = t.values.get((m, s))
            cells.append(f"{fmt(statistics.median(v))} ({fmt(min(v))}–{fmt(max(v))})" if v else "—")
        first, last = t.median(claims[0], s), t.median(claims[-1], s)
        share = f"{last / first:.0%}" if first and last else "—"
        fill = t.median("fill_" + claims[-1][6:], s)
        name = f"**{s}**" if s == "kueatomic" else s
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {share} | "
                     f"{'—' if fill is None else f'{fill:,.0f} s'} |")
    return lines + [""]


def latency_table(t: Table, data: dict[str, Any]) -> list[str]:
    systems = t.systems("latency_p99")
    if not systems:
        return []
    systems.sort(key=lambda s: t.median("latency_p99", s) or 0)
    rate = data["meta"]["sizes"]["latency_rate"]
    producer = {r["system"]: r.get("producer_rate") for r in data["records"]
                if r["measure"] == "latency_p99"}
    lines = [(f"### 4. Create-to-start latency at {rate:,.0f} jobs/s, one producer, one worker "
             "process (ms; median of runs, min–max)"), "",
             "| system | p50 | p99 | p99 vs best peer | producer kept up (jobs/s) |",
             "|---|---:|---:|---:|---:|"]
    for s in systems:
        cells = []
        for m in ("latency_p50", "latency_p99"):
            v = t.values[(m, s)]
            cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})")
        ratio = t.ratio("latency_p99", s)
        name = f"**{s}**" if s == "kueatomic" else s
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | "
                     f"{'—' if ratio is None else f'{ratio:.2f}x'} | {fmt(producer.get(s))} |")
    return lines + [""]


def ceiling_table(t: Table) -> list[str]:
    names = {"ceiling_create1": "create, 1 job per call (redis-benchmark)",
             "ceiling_create100": "create, 100 jobs per call (redis-benchmark)",
             "ceiling_claim100": "claim, 100 jobs per call (redis-benchmark)",
             "ceiling_complete100": "complete, 100 jobs per call (redis-cli --pipe)",
             "ceiling_cycle": ("whole cycle: create 100 + claim 100 + complete 100 "
                               "(redis-cli --pipe)")}
    present = [m for m in names if t.values.get((m, "kueatomic"))]
    if not present:
        return []
    lines = [("### 7. The ceiling: kueatomic's scripts driven by C clients, deep pipelines "
             "(jobs/s)"), "", "| script | median | min | max | server µs per job |",
             "|---|---:|---:|---:|---:|"]
    for m in present:
        v = t.values[(m, "kueatomic")]
        med = statistics.median(v)
        lines.append(f"| {names[m]} | {fmt(med)} | {fmt(min(v))} | {fmt(max(v))} | "
                     f"{1e6 / med:.1f} |")
    return lines + [""]


def chart(t: Table, data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("enqueue", "1. enqueue, 1 per call", "jobs/s"),
              ("bulk", "2. bulk enqueue", "jobs/s"),
              ("drain1", "3. drain, 1 worker process", "jobs/s"),
              ("drain2", "3. drain, 2 worker processes", "jobs/s"),
              ("latency_p99", "4. create-to-start p99 (lower is better)", "ms"),
              ("memory", "6. Redis bytes per queued job (lower is better)", "bytes")]
    panels = [p for p in panels if t.systems(p[0])]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(15, 4.2 * rows), squeeze=False)
    for ax, (measure, title, unit) in zip(axes.flat, panels):
        systems = sorted(t.systems(measure), key=lambda s: t.median(measure, s) or 0,
                         reverse=measure not in LOWER_IS_BETTER)
        meds = [t.median(measure, s) or 0 for s in systems]
        lows = [m - min(t.values[(measure, s)]) for m, s in zip(meds, systems)]
        highs = [max(t.values[(measure, s)]) - m for m, s in zip(meds, systems)]
        colors = ["#d6336c" if s == "kueatomic" else "#868e96" for s in systems]
        ax.barh(systems, meds, xerr=[lows, highs], color=colors, capsize=3)
        ax.invert_yaxis()
        if measure.startswith("latency") and max(meds) > 50 * min(m for m in meds if m > 0):
            ax.set_xscale("log")  # one slow system would flatten all the others
            title += ", log scale"
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(unit + " (median, min–max)")
        for y, (m, high) in enumerate(zip(meds, highs)):
            ax.text(m + high, y, f"  {m:,.0f}" if m >= 10 else f"  {m:.2f}", va="center",
                    fontsize=8)
        if ax.get_xscale() == "linear":
            ax.margins(x=0.22)
        else:
            ax.set_xlim(right=max(m + h for m, h in zip(meds, highs)) * 8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"kueatomic vs Python job queues on Redis — {data['meta']['started']}, "
                 f"{data['meta']['machine']['cores']} cores, median of {data['meta']['runs']} "
                 "runs", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(data: dict[str, Any], results: Path, chart_path: Path | None = None) -> None:
    """Rewrite ``results`` from the raw records; its kept sections stay (carry_kept)."""
    old = results.read_text() if results.exists() else ""
    t = Table(data["records"])
    sizes, meta = data["meta"]["sizes"], data["meta"]
    chart_path = chart_path or results.with_name("results.png")
    try:
        chart(t, data, chart_path)
        chart_line = f"![kueatomic vs peers]({chart_path.name})"
    except ImportError:
        chart_line = "(matplotlib is not installed here: no chart)"
    paths = {s: c.get("BULK_API") or c.get("BATCH_PATH") or "" for s, c in data["settings"].items()}
    out = [
        "# kueatomic benchmarks",
        "",
        (f"Measured {meta['started']} – {meta['finished']} with `{meta['argv']}`; every figure "
        f"is the median of {meta['runs']} runs (min and max beside it). \"vs best peer\" is "
        "kueatomic's figure over the best other system's, or for latency and memory the best "
        "other's over kueatomic's: above 1.00x kueatomic is ahead. How it is measured: "
        "[How](#how-it-is-measured) below; the code is in this folder."),
        "",
        chart_line,
        "",
        "## Targets (issue 5)",
        "",
        *targets(t, data),
        "## Results",
        "",
    ]
    for measure in ("enqueue", "bulk", "drain1", "drain2", "e2e"):
        out += measure_table(t, measure, TITLES[measure].format(**sizes),
                             extra=paths if measure == "bulk" else None)
    out += latency_table(t, data)
    out += claim_table(t)
    out += measure_table(t, "memory", TITLES["memory"].format(**sizes))
    out += ceiling_table(t)
    analysis = BENCH / "ANALYSIS.md"
    if analysis.exists():
        out += [analysis.read_text().strip(), ""]
    m = meta["machine"]
    out += [
        "## How it is measured",
        "",
        ("- One private `redis-server` (no persistence) on a free port, started by the harness; "
        "every system runs on it in turn, the database flushed between runs. Runs are "
        "interleaved (each run goes through every system, in a rotated order)."),
        ("- Each system runs from its own virtualenv (`bench/.venv/<name>`, from PyPI), with "
        "hiredis, in separate processes started by the harness (`python -m bench.child`)."),
        ("- Jobs are no-op handlers taking a small dict; the handler's first act is "
        "`bench.tally.hit()`, which counts in process and publishes the count every 50 ms to "
        "db 15. Rates run from the first handler start to the last one, so process start-up "
        "is not counted. Latency is `time.time()` at handler start minus the time stored in "
        "the payload just before the create call."),
        (f"- Sizes: {sizes['enqueue']:,} jobs per enqueue run, bulk batches of {sizes['batch']:,}, "
        f"{sizes['drain']:,} jobs per drain, latency {sizes['warm_seconds']} s warm-up then "
        f"{sizes['latency_seconds']} s measured, claim scaling times {sizes['claim']:,} jobs "
        f"per run at each backlog ({', '.join(f'{b:,}' for b in sizes['backlogs'])}; a backlog "
        "is filled once and topped up between runs)."),
        "",
        "### Settings per system",
        "",
        "| system | version | jobs in flight per process | bulk / batch path | settings |",
        "|---|---|---:|---|---|",
    ]
    for s, c in data["settings"].items():
        out.append(f"| {s} | {data['versions'].get(s, '?')} | {c.get('CONCURRENCY')} | "
                   f"{paths.get(s) or '—'} | {c.get('SETTINGS')} |")
    out += ["", "### Machine", "",
            f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory']} RAM, Linux {m['kernel']}",
            f"- Python {m['python']}; {m['redis']}",
            f"- Load average before: {m['load_before']}; after: {meta.get('load_after', '?')}",
            (f"- Busiest processes at the start (%CPU, name): "
            f"{'; '.join(' '.join(l.split()) for l in m['busiest_before'].splitlines())}")]
    if meta.get("note"):
        out.append(f"- Also running: {meta['note']}")
    if data.get("skipped"):
        out += ["", "### Not measured", ""]
        out += [f"- {s}: {why}" for s, why in data["skipped"].items()]
    if data.get("errors"):
        out += ["", "### Failed steps", ""]
        out += [f"- {e['measure']} / {e['system']}: `{e['error'].strip().splitlines()[-1][:300]}`"
                for e in data["errors"]]
    out += ["", "### Reproduce", "", "```sh", meta["argv"], ("python3 bench/report.py  "
            "# re-render this file and the chart from bench/out/latest.json"), "```", ""]
    results.write_text("\n".join(out))
    carry_kept(old, results)


KEPT = re.compile(r"<!-- kept: (\S+).*?-->.*?<!-- /kept: \1 -->\n?", re.DOTALL)


def carry_kept(old: str, results: Path) -> None:
    """Put the sections marked <!-- kept: name --> ... <!-- /kept: name --> of the old file
    (bench/cluster.py's, hand-written ones report.py does not make) back into the new one,
    before "## How it is measured"."""
    blocks = [m.group(0).rstrip("\n") + "\n\n" for m in KEPT.finditer(old)]
    if not blocks:
        return
    text = results.read_text()
    anchor = text.find("## How it is measured")
    anchor = anchor if anchor >= 0 else len(text)
    results.write_text(text[:anchor] + "".join(blocks) + text[anchor:])


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "out" / "latest.json"
    write(json.loads(source.read_text()), BENCH / "RESULTS.md")
    print(f"wrote {BENCH / 'RESULTS.md'} and {BENCH / 'results.png'}")
