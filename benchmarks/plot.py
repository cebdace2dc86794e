"""Draw benchmarks/results/*.json as a PNG: deliveries/s and p99 latency against clients.

Needs matplotlib, which is not a chatkit dependency: run it with an interpreter that has it
(`python benchmarks/run.py --plot-python /path/to/venv/bin/python`).
Usage: plot.py RESULTS.json OUT.png
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402


def main(json_path: str, png_path: str) -> None:
    with open(json_path) as handle:
        data = json.load(handle)
    # (target, senders, mode) -> clients -> [values]
    dps: dict[tuple[str, int, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    p99: dict[tuple[str, int, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in data["records"]:
        label = record.get("label", "")
        if "failed" in record or not label[:1].isdigit() or label.count(" ") != 3:
            continue  # only the matrix cells: "100c x 10s max"
        clients, _, senders, mode = label.split(" ")
        key = (record["target"], int(senders.rstrip("s")), mode)
        dps[key][int(clients.rstrip("c"))].append(record["deliveries_per_s"])
        if record.get("latency_ms"):
            p99[key][int(clients.rstrip("c"))].append(record["latency_ms"]["p99"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"chatkit": "-o", "redis": "--s"}
    for (target, senders, mode), series in sorted(dps.items()):
        if mode != "max":
            continue
        xs = sorted(series)
        left.plot(xs, [statistics.median(series[x]) for x in xs], styles.get(target, "-"),
                  label=f"{target}, {senders} senders, max")
    for (target, senders, mode), series in sorted(p99.items()):
        xs = sorted(series)
        right.plot(xs, [statistics.median(series[x]) for x in xs], styles.get(target, "-"),
                   label=f"{target}, {senders} senders, {mode}")
    left.set(xscale="log", xlabel="clients in the room", ylabel="deliveries per second",
             title="Fan-out throughput (max speed)")
    right.set(xscale="log", yscale="log", xlabel="clients in the room",
              ylabel="p99 latency, ms", title="End-to-end latency p99")
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    machine = data.get("machine", {})
    fig.suptitle(f"chatkit vs Redis pub/sub, same generator — {machine.get('date', '')}, "
                 f"{machine.get('cores', '?')} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
