"""Draw the ratios of a run as a PNG: python chart.py results.json out.png (needs matplotlib)."""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from report import COLUMNS, PEERS, advantage, value  # noqa: E402


def main() -> None:
    payload = json.load(open(sys.argv[1]))
    results = payload["results"]
    columns = [c for c in COLUMNS if c[0] != "steady drain/s rec"]
    peers = [p for p in PEERS if p in results and "error" not in results[p]]
    fig, ax = plt.subplots(figsize=(14, 6.5))
    width = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        xs, ys = [], []
        for j, (_, figure, field, higher, _) in enumerate(columns):
            ratio = advantage(value(results, "dothis", figure, field),
                              value(results, peer, figure, field), higher)
            if ratio is not None:
                xs.append(j + (i - len(peers) / 2 + 0.5) * width)
                ys.append(ratio)
        ax.bar(xs, ys, width=width, label=peer)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([c[0] for c in columns], rotation=20, ha="right")
    ax.set_ylabel("dothis advantage (x, log scale; >1: dothis better)")
    meta = payload["meta"]
    ax.set_title(f"dothis (Python) against each peer, {meta['mode']} run, redis {meta['redis']}, "
                 f"{meta['cpus']} CPUs, median of {meta['reps']}")
    ax.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
