#!/usr/bin/env python3
"""Before/after comparison of a server change, interleaved so both see the same machine load.

    mkdir /tmp/before && git archive HEAD chatkit | tar -x -C /tmp/before
    python benchmarks/ab.py /tmp/before --rounds 3

BEFORE is a directory holding a `chatkit` package (the old code); the working tree is "after".
Each round runs every cell against a fresh server of each version, alternating, and the report
gives medians of deliveries/s, p99 latency and the server's CPU microseconds per delivery (the
figure that does not depend on the load generator, which on a 2-core machine is often the
bottleneck). Loopback only; every run is bounded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py: servers, cells, /proc readings)

CELLS: list[dict[str, Any]] = [
    {"clients": 10, "senders": 10, "rate": None},  # a small room: the server is the limit
    {"clients": 100, "senders": 10, "rate": None},
    {"clients": 100, "senders": 10, "rate": run.HUMAN_RATE},
    {"clients": 1000, "senders": 10, "rate": None},  # a big room: fan-out dominates
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="Directory with the old `chatkit` package.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--processes", default="auto", type=run._processes_arg,
                        help="Generator processes per cell, or auto [default: auto].")
    parser.add_argument("--cells", default=None, metavar="N,N",
                        help="Only the cells with these client counts, e.g. 100,1000.")
    args = parser.parse_args(argv)
    cells = CELLS if args.cells is None else [
        c for c in CELLS if str(c["clients"]) in args.cells.split(",")]
    if not (args.before / "chatkit" / "__init__.py").exists():
        parser.error(f"{args.before} holds no chatkit package")
    versions = {"before": args.before.resolve(), "after": HERE.parent}
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="chatkit-ab-"))
    for round_no in range(args.rounds):
        for index, cell in enumerate(cells):
            for name, root in versions.items():
                run.CHATKIT_ROOT = root  # which package `python -m chatkit` imports
                home = workdir / f"{round_no}-{index}-{name}"
                home.mkdir()
                record = run.run_cell("chatkit", home, list(run.SERVE_ARGS),
                                      label=f"{name} {cell}", duration=args.duration,
                                      processes=args.processes, **cell)
                print(run._describe(record), file=sys.stderr, flush=True)
                results.setdefault((name, index), []).append(record)
    print("| cell | version | deliveries/s | p99 ms | server µs per delivery |")
    print("| --- | --- | ---: | ---: | ---: |")
    for index, cell in enumerate(cells):
        mode = "max" if cell["rate"] is None else f"{cell['rate']:g}/s"
        for name in versions:
            records = results[(name, index)]
            print(f"| {cell['clients']}c x {cell['senders']}s {mode} | {name} | "
                  f"{statistics.median(r['deliveries_per_s'] for r in records):,.0f} | "
                  f"{statistics.median(run._p99(r) for r in records):.2f} | "
                  f"{statistics.median(r['server_us_per_delivery'] for r in records):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
