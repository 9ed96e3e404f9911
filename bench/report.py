"""Tables (terminal, Markdown), JSON and the chart of a benchmark run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PY_PEERS = ("rq", "arq", "celery", "huey", "dramatiq", "saq", "taskiq", "rpqueue")
NODE_PEERS = ("bullmq", "bee-queue")
PEERS = PY_PEERS + NODE_PEERS

# (column title, figure, field, higher is better, format)
COLUMNS: list[tuple[str, str, str, bool, str]] = [
    ("enqueue/s", "enqueue", "rate", True, "{:,.0f}"),
    ("bulk enqueue/s", "bulk", "rate", True, "{:,.0f}"),
    ("drain/s c=1", "drain-c1", "rate", True, "{:,.0f}"),
    ("drain/s rec", "drain-rec", "rate", True, "{:,.0f}"),
    ("steady drain/s rec", "drain-rec", "steady_rate", True, "{:,.0f}"),
    ("RT p50 ms", "latency", "p50_ms", False, "{:.2f}"),
    ("RT p99 ms", "latency", "p99_ms", False, "{:.2f}"),
    ("Redis B/task", "bulk", "key_usage_per_task", False, "{:,.0f}"),
    ("Redis CPU µs/task", "drain-c1", "redis_cpu_per_task_us", False, "{:.1f}"),
    ("worker RSS MB", "soak", "worker_rss", False, "{:,.1f}"),
]


def value(results: dict[str, Any], system: str, figure: str, name: str) -> float | None:
    fig = results.get(system, {}).get(figure)
    if figure == "soak" and not isinstance(fig, dict):
        fig = results.get(system, {}).get("drain-rec")
    if not isinstance(fig, dict):
        return None
    v = fig.get(name)
    if not isinstance(v, int | float) or v != v:
        return None
    return v / 1e6 if name == "worker_rss" else float(v)


def error_of(results: dict[str, Any], system: str, figure: str | None = None) -> str | None:
    entry = results.get(system, {})
    if "error" in entry and isinstance(entry["error"], str):
        return entry["error"]
    if figure is not None and isinstance(entry.get(figure), dict) and "error" in entry[figure]:
        return entry[figure]["error"]
    return None


def raw_row(results: dict[str, Any]) -> dict[str, float | None]:
    """The raw redis-py loops mapped onto the main columns."""
    return {
        "enqueue/s": value(results, "raw", "enqueue", "rate"),
        "bulk enqueue/s": value(results, "raw", "bulk", "rate"),
        "drain/s c=1": value(results, "raw", "drain-step", "rate"),
        "drain/s rec": value(results, "raw", "drain-batch", "rate"),
        "steady drain/s rec": value(results, "raw", "drain-batch", "rate"),
        "Redis B/task": value(results, "raw", "bulk", "key_usage_per_task"),
        "Redis CPU µs/task": value(results, "raw", "drain-step", "redis_cpu_per_task_us"),
    }


def advantage(dothis: float | None, other: float | None, higher: bool) -> float | None:
    """How many times better dothis is (>1: dothis better), for any column."""
    if dothis is None or other is None or dothis <= 0 or other <= 0:
        return None
    return dothis / other if higher else other / dothis


def build_table(results: dict[str, Any], labels: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    header = ["system", *[c[0] for c in COLUMNS]]
    rows: list[list[str]] = []
    raw = raw_row(results)
    if "raw" in results:
        rows.append(["raw bound (redis-py loops)"] + [
            "—" if raw.get(title) is None else fmt.format(raw[title]) for title, _, _, _, fmt in COLUMNS
        ])
    for system in ["dothis", "dothis-tuned", "dothis-cores", "dothis-node", *PEERS]:
        if system not in results:
            continue
        label = labels.get(system, system)
        if system == "dothis-node":
            label = "dothis (Node producer, Python worker)"
        whole = error_of(results, system)
        if whole:
            rows.append([label, f"error: {whole}"] + [""] * (len(COLUMNS) - 1))
            continue
        cells = [label]
        for title, figure, name, higher, fmt in COLUMNS:
            v = value(results, system, figure, name)
            if v is None:
                err = error_of(results, system, figure)
                cells.append(f"error: {err}" if err else "—")
                continue
            text = fmt.format(v)
            if system == "dothis-node" and figure in ("latency",):
                pass
            if figure == "drain-rec" and name == "rate":
                c = results[system][figure].get("concurrency")
                text += f" (c={c})"
            if figure == "soak":
                src = results[system].get("soak") or results[system].get("drain-rec", {})
                text += f" @{src.get('n', 0):,}"
            if system.startswith("dothis"):
                bound = raw.get(title)
                if bound and higher and title != "steady drain/s rec":
                    text += f" [{v / bound:.2f} of raw]"
            else:
                ref = value(results, "dothis", figure, name)
                ratio = advantage(ref, v, higher)
                if ratio is not None:
                    text += f" ({ratio:.2f}×)"
            cells.append(text)
        rows.append(cells)
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(out)


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, figures, verdict) for each row of the issue's table of targets."""
    out: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    def best_drain(system: str) -> float | None:  # a peer at its better concurrency
        return max(filter(None, [value(results, system, "drain-rec", "rate"),
                                 value(results, system, "drain-c1", "rate")]), default=None)

    # The default worker is the one started with no flags: concurrency 1 (drain-c1); the drain at
    # the concurrency the sweep chose (a flag) is context.
    d_drain = value(results, "dothis", "drain-c1", "rate")
    d_rec = value(results, "dothis", "drain-rec", "rate")
    if d_drain and d_rec:
        out.append(("drain, --concurrency at the sweep's choice (context)",
                    f"{d_rec:,.0f}/s = {d_rec / d_drain:.2f}x the default", "n/a"))
    if d_drain:
        for peer, goal in (("huey", 3.0), ("bee-queue", 1.0)):
            other = best_drain(peer)
            if other:
                out.append((f"drain, default worker, one process >= {goal:g}x {peer}",
                            f"{d_drain:,.0f}/s vs {other:,.0f}/s = {d_drain / other:.2f}x",
                            verdict(d_drain / other >= goal)))
        batch = value(results, "raw", "drain-batch", "rate")
        if batch:
            out.append(("drain, default worker, one process >= 0.5x the batched raw bound",
                        f"{d_drain:,.0f}/s vs {batch:,.0f}/s = {d_drain / batch:.2f}x",
                        verdict(d_drain / batch >= 0.5)))
    tuned = value(results, "dothis-tuned", "drain-rec", "rate")
    if tuned and d_drain:
        out.append(("drain, --pool inline --prefetch 100 (context)",
                    f"{tuned:,.0f}/s = {tuned / d_drain:.2f}x the default", "n/a"))
    cores = results.get("dothis-cores", {}).get("drain-rec", {})
    if "rate" in cores:
        cpus = os.cpu_count() or 1
        n = cpus  # the default of --processes: one per CPU
        out.append(("drain, --processes on all cores: per process and per core",
                    f"{cores['rate']:,.0f}/s in all, {cores['rate'] / n:,.0f}/s per process ({n}), "
                    f"{cores['rate'] / cpus:,.0f}/s per core; Redis CPU "
                    f"{cores.get('redis_cpu_per_task_us', 0):.1f} µs/task", "reported"))
    p50 = value(results, "dothis", "latency", "p50_ms")
    p99 = value(results, "dothis", "latency", "p99_ms")
    if p50 and p99:
        out.append(("round trip p50 / p99 <= 0.5 / 1.5 ms, default worker",
                    f"{p50:.2f} / {p99:.2f} ms", verdict(p50 <= 0.5 and p99 <= 1.5)))
    cpu = value(results, "dothis", "drain-c1", "redis_cpu_per_task_us")
    if cpu:
        out.append(("Redis CPU per task <= 15 µs", f"{cpu:.1f} µs", verdict(cpu <= 15)))
    for name, figure, goal in (("enqueue one", "enqueue", 0.9), ("enqueue bulk", "bulk", 0.8)):
        d = value(results, "dothis", figure, "rate")
        r = value(results, "raw", figure, "rate")
        if d and r:
            out.append((f"{name} >= {goal}x the bare pipelined HSET+LPUSH loop",
                        f"{d:,.0f}/s vs {r:,.0f}/s = {d / r:.2f}x", verdict(d / r >= goal)))
    n_bulk = value(results, "dothis-node", "bulk", "rate")
    bee = value(results, "bee-queue", "bulk", "rate")
    if n_bulk and bee:
        out.append(("Node enqueueMany >= bee-queue saveAll",
                    f"{n_bulk:,.0f}/s vs {bee:,.0f}/s = {n_bulk / bee:.2f}x", verdict(n_bulk >= bee)))
    scaling = results.get("dothis-scaling", {})
    depths = sorted((int(k.split("-")[1]), v) for k, v in scaling.items()
                    if k.startswith("depth-") and isinstance(v, dict) and "steady_rate" in v)
    if len(depths) >= 2:
        rates = [v["steady_rate"] for _, v in depths]
        cpus_us = [v["redis_cpu_per_task_us"] for _, v in depths]
        spread = max(rates) / min(rates)
        text = "; ".join(f"{d:,}: drain {v['steady_rate']:,.0f}/s, Redis CPU "
                         f"{v['redis_cpu_per_task_us']:.1f} µs/task" for d, v in depths)
        out.append(("cost flat from 10^4 to 10^6 queued", text,
                    verdict(spread < 1.25 and max(cpus_us) / min(cpus_us) < 1.25)
                    + ("" if depths[-1][0] >= 1_000_000 else " (10^6 only with --full)")))
    return out


def write_report(results: dict[str, Any], meta: dict[str, Any], drivers: list[dict[str, Any]],
                 outdir: Path, peers_venv: Path) -> None:
    labels = {d["key"]: d["label"] for d in drivers}
    header, rows = build_table(results, labels)
    table = markdown(header, rows)
    goals = targets(results)
    lines = [
        f"# dothis benchmark, {meta['mode']} mode",
        "",
        f"{meta['started']}; redis-server {meta['redis']} on loopback, no persistence; "
        f"Python {meta['python']}, Node {meta.get('node')}; {meta['cpus']} CPUs; "
        f"median of {meta['reps']} repetition(s); run took {meta['seconds']:.0f} s. "
        f"dothis worker concurrency (rec): {meta.get('dothis_concurrency')}. "
        f"dothis measured: {meta.get('dothis_measured')}."
        + (f" Merged: {meta['merged']}." if meta.get("merged") else ""),
        "",
        "Ratios in parentheses: how many times better dothis (Python) is on that figure "
        "(>1: dothis better; rates dothis/peer, times and sizes peer/dothis). "
        "[x of raw]: dothis as a fraction of the raw redis-py loop. "
        "Redis CPU is measured during the c=1 drain.",
        "",
        table,
        "",
    ]
    rb = results.get("redis-benchmark", {})
    if rb:
        lines += ["## redis-benchmark (50 clients)", "", "| command | -P 1 req/s | -P 100 req/s |", "|---|---|---|"]
        for name in ("HSET", "LPUSH", "LMOVE", "RPOPLPUSH", "EVALSHA"):
            cells = []
            for p in (1, 100):
                entry = rb.get(f"{name} P{p}", {})
                cells.append(f"{entry['rate']:,.0f}" if "rate" in entry else f"error: {entry.get('error', '—')}")
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
        lines.append("")
    raw = results.get("raw", {})
    if raw:
        lines += ["## raw redis-py loops", "", "| loop | tasks/s | Redis CPU µs/task |", "|---|---|---|"]
        for figure, text in (("enqueue", "HSET+LPUSH pipelined, 1 round trip per task"),
                             ("bulk", "HSET+LPUSH, 1,000 tasks per round trip"),
                             ("drain-step", "LMOVE, HSET, LREM, PUBLISH: 1 round trip each"),
                             ("drain-batch", "the same, 100 tasks per round trip")):
            entry = raw.get(figure, {})
            rate = f"{entry['rate']:,.0f}" if "rate" in entry else f"error: {entry.get('error')}"
            cpu = entry.get("redis_cpu_per_task_us")
            lines.append(f"| {text} | {rate} | {'' if cpu is None else f'{cpu:.1f}'} |")
        lines.append("")
    sweep = results.get("dothis-sweep", {})
    if sweep:
        lines += ["## dothis worker concurrency sweep", "",
                  "| concurrency | drain/s | steady/s | worker CPU µs/task | worker RSS MB |", "|---|---|---|---|---|"]
        for key in ("c1", "c4", "c16", "c64"):
            e = sweep.get(key, {})
            if "rate" in e:
                lines.append(f"| {key[1:]} | {e['rate']:,.0f} | {e['steady_rate']:,.0f} | "
                             f"{e['worker_cpu_per_task_us']:.0f} | {e['worker_rss'] / 1e6:.1f} |")
            elif e:
                lines.append(f"| {key[1:]} | error: {e.get('error')} | | | |")
        lines += ["", f"chosen: {sweep.get('chosen')}", ""]
    scaling = results.get("dothis-scaling", {})
    if scaling:
        lines += ["## dothis scaling", "",
                  "| queued | enqueue/s (bulk fill) | steady drain/s | Redis CPU µs/task | sampled |",
                  "|---|---|---|---|---|"]
        for key, e in scaling.items():
            if not key.startswith("depth-"):
                continue
            if "steady_rate" not in e:
                lines.append(f"| {key[6:]} | error: {e.get('error')} | | | |")
                continue
            lines.append(f"| {e['queued']:,} | {e.get('prefill_rate') or 0:,.0f} | {e['steady_rate']:,.0f} | "
                         f"{e['redis_cpu_per_task_us']:.1f} | first {e['n']:,} |")
        e = scaling.get("executing-1000")
        if e:
            lines.append("")
            if "rate" in e:
                lines.append(f"1,000 tasks executing at once (concurrency 1000, {e['n']:,} sleep(0.2) tasks): "
                             f"{e['rate']:,.0f} tasks/s (ideal {e['n'] / e['ideal_seconds']:,.0f}/s), "
                             f"Redis CPU {e['redis_cpu_per_task_us']:.1f} µs/task, worker RSS "
                             f"{e['worker_rss'] / 1e6:.0f} MB.")
            else:
                lines.append(f"1,000 tasks executing at once: error: {e.get('error')}")
        lines.append("")
    prof = results.get("dothis-profile", {}).get("drain")
    if prof:
        lines += ["## dothis worker profile", ""]
        if "error" in prof:
            lines.append(f"error: {prof['error']}")
        else:
            lines.append(prof.get("markdown", ""))
        lines.append("")
    if goals:
        lines += ["## Targets", "", "| target | figures | verdict |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in goals]
        lines.append("")
    text = "\n".join(lines)
    print("\n" + text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"bench-{meta['mode']}"
    (outdir / f"{name}.md").write_text(text + "\n")
    payload = {"meta": meta, "results": results, "targets": goals, "table": {"header": header, "rows": rows}}
    (outdir / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    (outdir / f"{name}-{stamp}.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    chart_python = peers_venv / "bin" / "python"
    chart = outdir / f"{name}.png"
    if chart_python.exists():
        proc = subprocess.run([str(chart_python), str(Path(__file__).with_name("chart.py")),
                               str(outdir / f"{name}.json"), str(chart)], capture_output=True, text=True)
        if proc.returncode == 0:
            print(f"chart: {chart}", file=sys.stderr)
        else:
            print(f"chart not drawn: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    else:
        print("chart not drawn: no matplotlib (bench/.peers-venv is made by the full run)", file=sys.stderr)
    print(f"wrote {outdir / (name + '.md')} and .json", file=sys.stderr)
