"""The cluster cells of the benchmark suite (issue 18): several `chatkit serve --cluster` nodes
sharing one room through one Redis, beside one node and Redis pub/sub, in the same run.

    python benchmarks/run.py --cluster-only          # these cells only (a few minutes)
    python benchmarks/run.py --cluster-only --smoke  # seconds

Every cell starts its own servers on 127.0.0.1 and stops them by their PIDs:
- `node`:     one `chatkit serve` (the single-node reference);
- `cluster`:  one `redis-server` and N `chatkit serve --cluster redis://127.0.0.1:P/0`; the
              clients are spread over the nodes in turn (`chatkit bench` with N addresses), so
              the senders are too, and the generator reports the latency from a sender on one
              node to a receiver on another apart (cross-node);
- `redis`:    Redis pub/sub driven by the same generator (the reference of the whole suite).
A cell may pin its nodes with `taskset`, node k to core k (one core each). The servers' CPU
(every node, and the cluster's Redis, read from /proc/PID/stat) counts from the moment every
client is connected to the last delivery.

run.py owns the servers' start/stop, the matrix of one node and the README; this module only
adds its cells and its section (between the `cluster` markers of benchmarks/README.md).
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpucap import CpuCap
from cpucap import available as capping_available
from run import (
    HUMAN_RATE,
    RunningServer,
    _cpu_seconds,
    _describe,
    _status_kib,
    generator_processes,
    start_chatkit,
    start_redis,
)

from chatkit.bench import BenchConfig, run_bench

#: What a cell runs: `node` (one chatkit server), `cluster` (nodes sharing one Redis) or
#: `redis` (pub/sub, the reference).
KINDS = ("node", "cluster", "redis")


@dataclass
class ClusterPlan:
    clients: list[int]
    senders: int
    duration: float
    messages: int | None
    #: runs of the 200 msg/s cells (the latency target), interleaved, to show the noise
    repeat: int
    nodes: int


FULL = ClusterPlan(clients=[100, 1000], senders=10, duration=3.0, messages=None, repeat=3,
                   nodes=2)
SMOKE = ClusterPlan(clients=[6], senders=2, duration=1.0, messages=20, repeat=1, nodes=2)
#: the CPU each server gets in the capped cells, by clients: little enough that the servers,
#: not the generator (which needs most of a core at full speed, more for a big room), are
#: what runs out
CAPPED_SHARE = {100: 0.25, 1000: 0.10}


_CAPS = itertools.count()  # a cgroup name of its own for every capped node of a run


def capped_share(clients: int) -> float:
    return CAPPED_SHARE.get(clients, 0.25)


@dataclass
class Setup:
    """The servers of one cell."""

    kind: str
    nodes: int = 1
    #: pin node k to core k (`taskset -c k`); Redis and the generator are not pinned
    pinned: bool = False
    #: give each node this share of one core (a cgroup's quota, cpucap.py); Redis is not capped
    share: float | None = None

    @property
    def name(self) -> str:
        what = {"node": "1 node", "redis": "Redis pub/sub"}.get(
            self.kind, f"{self.nodes} node{'s' if self.nodes > 1 else ''} + Redis")
        each = " each" if self.nodes > 1 else ""
        return what + (", pinned" if self.pinned else "") + (
            f", {self.share:.0%} of a core{each}" if self.share else "")


@contextmanager
def servers(setup: Setup, workdir: Path, serve_args: list[str]
            ) -> Iterator[tuple[list[RunningServer], RunningServer | None]]:
    """(the chatkit nodes, the Redis: the cluster's or the pub/sub reference); stopped at the
    end by their PIDs, nodes first (a node stopped gracefully leaves the cluster at once)."""
    with ExitStack() as stack:
        redis = None
        if setup.kind in ("cluster", "redis"):
            redis = start_redis(workdir)
            stack.callback(redis.stop)
        nodes: list[RunningServer] = []
        if setup.kind != "redis":
            cluster = ["--cluster", f"redis://127.0.0.1:{redis.port}/0"] if redis else []
            for k in range(setup.nodes):
                home = workdir / f"node{k}"
                home.mkdir()
                cap = None
                if setup.share:
                    cap = CpuCap(f"chatkit-bench-{os.getpid()}-{next(_CAPS)}", setup.share)
                    stack.callback(cap.remove)  # once the node has stopped
                node = start_chatkit(home, [*serve_args, *cluster],
                                     prefix=("taskset", "-c", str(k)) if setup.pinned else ())
                stack.callback(node.stop)
                nodes.append(node)
                if cap is not None:
                    cap.add(node.pid)
        yield nodes, redis


def run_cluster_cell(setup: Setup, workdir: Path, serve_args: list[str], *, label: str,
                     processes: int | str = "auto", **bench: Any) -> dict[str, Any]:
    """Fresh servers, one benchmark over every node, the CPU of each server; the record."""
    bench["processes"] = generator_processes(processes, bench["clients"], bench.get("rate"))
    with servers(setup, workdir, serve_args) as (nodes, redis):
        watched = [*nodes, *([redis] if redis else [])]
        marks: dict[str, list[float]] = {}

        def cpu() -> list[float]:
            return [_cpu_seconds(server.pid) for server in watched]

        def on_connected() -> None:
            marks["connected"] = cpu()

        def on_finished() -> None:
            marks["finished"] = cpu()

        if setup.kind == "redis":
            assert redis is not None
            where: dict[str, Any] = {"port": redis.port, "target": "redis"}
        else:
            where = {"port": nodes[0].port, "target": "chatkit",
                     "addresses": [("127.0.0.1", n.port) for n in nodes]
                     if len(nodes) > 1 else []}
        result = run_bench(BenchConfig(host="127.0.0.1", **where, **bench),
                           on_connected=on_connected, on_finished=on_finished)
        end = marks.get("finished") or cpu()
        used = [b - a for a, b in zip(marks.get("connected", end), end, strict=True)]
        node_cpu = used[:len(nodes)]
        redis_cpu = used[len(nodes)] if redis else 0.0
        record = {
            "label": label, "target": setup.kind, "setup": setup.name, "nodes": len(nodes),
            "pinned": setup.pinned, "serve_args": serve_args if nodes else [],
            **result.to_dict(),
            "node_cpu_s": node_cpu, "redis_cpu_s": redis_cpu,
            "server_send_cpu_s": sum(used),
            "node_peak_rss_kib": [_status_kib(n.pid, "VmHWM") for n in nodes],
        }
    deliveries = record["deliveries"]

    def per_delivery(seconds: float) -> float | None:
        return seconds / deliveries * 1e6 if deliveries else None

    record["server_us_per_delivery"] = per_delivery(record["server_send_cpu_s"])
    record["nodes_us_per_delivery"] = per_delivery(sum(node_cpu)) if nodes else None
    record["redis_us_per_delivery"] = per_delivery(redis_cpu) if redis else None
    return record


def describe(record: dict[str, Any]) -> str:
    """One line per cell on stderr while the suite runs."""
    cross = record.get("cross_latency_ms") or {}
    extra = f"  cross p99 {cross['p99']:.2f} max {cross['max']:.1f} ms" if cross else ""
    return _describe({**record, "label": f"{record['label']} {record['setup']}"}) + extra


def run_cluster_suite(plan: ClusterPlan, serve_args: list[str], log: Callable[[str], None],
                      processes: int | str = "auto", redis: bool = True,
                      pinning: bool = True) -> dict[str, Any]:
    """The cells, each setup on the same cell before the next (so all see the same load)."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    records: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="chatkit-cluster-bench-"))
    n = plan.nodes
    # one core per node, or no pinning (taskset would fail on a core that is not there)
    pinning = pinning and shutil.which("taskset") is not None and \
        len(os.sched_getaffinity(0)) >= n
    no_capping = capping_available()  # why the capped cells cannot run here, if they cannot
    if no_capping:
        log(f"capped cells skipped: {no_capping}")

    def cell(setup: Setup, label: str, **bench: Any) -> None:
        home = workdir / str(len(records))
        home.mkdir()
        try:
            record = run_cluster_cell(setup, home, serve_args, label=label,
                                      processes=processes, **bench)
        except Exception as exc:  # one failed cell must not lose the others
            record = {"label": label, "target": setup.kind, "setup": setup.name,
                      "failed": f"{type(exc).__name__}: {exc}", **bench}
            log(f"{label:<20} {setup.name:<24} FAILED {record['failed']}")
        else:
            log(describe(record))
        records.append(record)

    limits = {"senders": plan.senders, "duration": plan.duration, "messages": plan.messages}
    matrix = [Setup("node"), Setup("cluster", n)] + ([Setup("redis")] if redis else [])
    try:
        for clients in plan.clients:
            for rate in (None, HUMAN_RATE):
                label = f"{clients}c x {plan.senders}s {_mode(rate)}"
                setups = [*matrix, Setup("cluster", 1)]
                if pinning and rate is None:  # does a second node (core) add throughput?
                    setups += [Setup("node", pinned=True), Setup("cluster", n, pinned=True)]
                for setup in setups:
                    cell(setup, label, clients=clients, rate=rate, **limits)
        for run in range(plan.repeat):
            if run:  # the latency target's cells again, interleaved
                for clients in plan.clients:
                    for setup in (Setup("node"), Setup("cluster", n)):
                        cell(setup, f"{clients}c x {plan.senders}s {_mode(HUMAN_RATE)}",
                             clients=clients, rate=HUMAN_RATE, **limits)
            if not no_capping:  # does a second node add throughput? (each run interleaved)
                for clients in plan.clients:
                    share = capped_share(clients)
                    for setup in (Setup("node", share=share), Setup("cluster", n, share=share)):
                        cell(setup, f"{clients}c x {plan.senders}s max", clients=clients,
                             rate=None, **limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"plan": plan.__dict__, "serve_args": serve_args, "processes": processes,
            "pinning": pinning,
            "capped": None if no_capping else {str(c): capped_share(c) for c in plan.clients},
            "no_capping": no_capping, "elapsed_s": time.monotonic() - started, "records": records,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def _mode(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:g}/s"


# --------------------------------------------------------------------------- report


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "failed" not in r]


def _cells(records: list[dict[str, Any]], label: str, setup: str) -> list[dict[str, Any]]:
    return [r for r in _ok(records) if r["label"] == label and r["setup"] == setup]


def _median(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], float | None]
            ) -> float | None:
    values = [v for v in map(key, records) if v is not None]
    return statistics.median(values) if values else None


def _lat(which: str, figure: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: (r.get(which) or {}).get(figure)


def _dps(r: dict[str, Any]) -> float:
    return float(r["deliveries_per_s"])


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def _spread(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], float | None]
            ) -> str:
    values = [v for v in map(key, records) if v is not None]
    mid = statistics.median(values) if values else 0
    if len(values) < 2 or not mid:
        return ""
    return f" (n={len(values)}, {min(values) / mid - 1:+.0%}..{max(values) / mid - 1:+.0%})"


def _triple(records: list[dict[str, Any]], which: str) -> str:
    p50, p99 = _median(records, _lat(which, "p50")), _median(records, _lat(which, "p99"))
    worst = max((r[which]["max"] for r in records if r.get(which)), default=None)
    if p99 is None:
        return "–"
    return f"{_fmt(p50, '.2f')} / {_fmt(p99, '.2f')}{_spread(records, _lat(which, 'p99'))} " \
        f"/ {_fmt(worst, '.1f')}"


def _cpu(records: list[dict[str, Any]]) -> str:
    total = _median(records, lambda r: r["server_us_per_delivery"])
    nodes = _median(records, lambda r: r["nodes_us_per_delivery"])
    redis = _median(records, lambda r: r["redis_us_per_delivery"])
    if records[0]["target"] == "cluster":
        return f"{_fmt(total, '.2f')} ({_fmt(nodes, '.2f')} + {_fmt(redis, '.2f')})"
    return _fmt(total, ".2f")


def _generator(records: list[dict[str, Any]]) -> str:
    busiest = _median(records, lambda r: r["generator_cpu_util_max"]) or 0.0
    cores = _median(records, lambda r: r["generator_cpu_util"]) or 0.0
    procs = _median(records, lambda r: r["generator_processes"]) or 1
    return f"{procs:g}×{busiest:.0%} ({cores:.2f} cores)"


def _ceiling(record: dict[str, Any]) -> float | None:
    """Deliveries/s if every server (each node, Redis) had a core of its own and nothing else
    limited: the busiest one's CPU per delivery sets it. A projection: a node's threads share
    one GIL, so about one core is what a node can use anyway."""
    busiest = max([*record["node_cpu_s"], record["redis_cpu_s"]], default=0.0)
    return record["deliveries"] / busiest if busiest > 0 else None


def report(data: dict[str, Any], command: str, machine: dict[str, Any]) -> str:
    """The Markdown the README gets between its cluster markers."""
    records = data["records"]
    plan = data["plan"]
    lines = [
        f"Measured {machine['date']} on {machine['cpu'] or 'unknown CPU'}, "
        f"{machine['cores']} cores, Linux {machine['kernel']}, Python {machine['python']}, "
        f"Redis {machine['redis']}; load average (1 min) before the cluster cells "
        f"{_fmt(data.get('load_before', machine['load_before']), '.2f')}, after "
        f"{_fmt(data.get('load_after'), '.2f')}. The cluster cells took "
        f"{data['elapsed_s']:.0f} s.",
        "",
        f"Command: `{command}`. Every cell has fresh servers on 127.0.0.1 (chatkit flags "
        f"`{' '.join(data['serve_args'])}`, plain connections, message log on); a cluster "
        "node adds `--cluster redis://127.0.0.1:P/0` on a `redis-server` of the cell's own "
        "(its messages stored there; no archive of its own, the default without --db). "
        f"{plan['senders']} senders; in a cluster the clients (senders included) are spread "
        "over the nodes in turn. *cross-node*: deliveries from a sender on one node to a "
        "receiver on another. *server CPU*: every node's and the cluster Redis's CPU time "
        "from the moment all clients were connected to the last delivery, per delivery "
        "(nodes + Redis in brackets). *pinned*: node k runs on core k (`taskset -c k`), "
        "Redis and the generator are not pinned. *of a core*: each chatkit node may use that "
        "share of one core (a cgroup CPU quota, benchmarks/cpucap.py; Redis and the generator "
        "are not capped), so that the servers run out before the generator does: the direct "
        "test of whether a second node adds throughput when each node has a CPU of its own, "
        "which a 2-core machine running the generator cannot give. *ceiling with a core per "
        "server*: 1 s ÷ "
        "the busiest server's CPU µs per delivery, what the cell would reach if every "
        "server (each node, Redis) had a core of its own and the generator ran elsewhere (a "
        "projection). Medians where a cell ran more than once, the spread of p99 in "
        "brackets.",
        "",
    ]
    failed = [r for r in records if "failed" in r]
    if failed:
        lines += ["Failed cells: " + "; ".join(f"{r['setup']} {r['label']}: {r['failed']}"
                                              for r in failed) + ".", ""]
    lines += [
        "| cell | servers | deliveries/s | p50 / p99 / max ms | cross-node p50 / p99 / max ms "
        "| server CPU µs per delivery | generator CPU | lost·dup·reordered | connect s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    seen: list[tuple[str, str]] = []
    for record in _ok(records):
        if (record["label"], record["setup"]) not in seen:
            seen.append((record["label"], record["setup"]))
    for label, setup in seen:
        cells = _cells(records, label, setup)
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] + r["errors"] for r in cells)
        lines.append(
            f"| {label} | {setup} | {_fmt(_median(cells, _dps))}{_spread(cells, _dps)} | "
            f"{_triple(cells, 'latency_ms')} | {_triple(cells, 'cross_latency_ms')} | "
            f"{_cpu(cells)} | {_generator(cells)} | {bad} | "
            f"{_fmt(_median(cells, lambda r: r['connect_s']), '.2f')} |")
    lines += ["", *targets(data)]
    return "\n".join(lines)


def targets(data: dict[str, Any]) -> list[str]:
    """Issue 18's targets (and the figures beside them), each with what this run measured."""
    records = data["records"]
    plan = data["plan"]
    n = plan["nodes"]
    two, pinned = Setup("cluster", n).name, Setup("cluster", n, pinned=True).name
    rows = ["| target | measured | met? |", "| --- | --- | --- |"]

    def row(name: str, value: str, met: bool | None) -> None:
        rows.append(f"| {name} | {value} | {'–' if met is None else 'yes' if met else '**no**'} |")

    for clients in plan["clients"]:
        label = f"{clients}c x {plan['senders']}s {_mode(HUMAN_RATE)}"
        one = _median(_cells(records, label, "1 node"), _lat("latency_ms", "p99"))
        cross = _median(_cells(records, label, two), _lat("cross_latency_ms", "p99"))
        if one and cross:
            row(f"cross-node p99 at {HUMAN_RATE:g} msg/s ≤ 2× the single node's p99 "
                f"({clients} clients)", f"{cross:.2f} vs {one:.2f} ms = {cross / one:.2f}×",
                cross <= 2 * one)
    clustered = [r for r in _ok(records) if r["target"] == "cluster"]
    bad = [r for r in clustered if r["lost"] or r["duplicated"] or r["reordered"]]
    row("no loss or reordering in any cluster cell",
        f"{len(clustered) - len(bad)} of {len(clustered)} cells clean"
        + (": " + "; ".join(f"{r['label']} {r['setup']}: lost {r['lost']}, dup "
                            f"{r['duplicated']}, reordered {r['reordered']}" for r in bad)
           if bad else ""), bool(clustered) and not bad)
    for clients in plan["clients"]:
        label = f"{clients}c x {plan['senders']}s max"
        name = f"a second node adds throughput when each node has a CPU of its own ({clients} " \
            "clients, full speed)"
        share = (data.get("capped") or {}).get(str(clients))
        if not share:
            row(name, f"not measured here: {data.get('no_capping') or 'not run'}", None)
        else:
            single = [_dps(r) for r in _cells(records, label, Setup("node", share=share).name)]
            spread = [_dps(r) for r in _cells(records, label,
                                              Setup("cluster", n, share=share).name)]
            if single and spread:
                ratio = statistics.median(spread) / statistics.median(single)
                row(f"{name}: each node capped at {share:.0%} of a core",
                    f"{statistics.median(spread):,.0f} vs {statistics.median(single):,.0f}/s "
                    f"= {ratio:.2f}× (medians of {len(spread)} and {len(single)} runs; the "
                    f"slowest with {n} nodes {min(spread):,.0f}, the fastest with one "
                    f"{max(single):,.0f})", min(spread) > max(single))
        for name, base, more in ((f"(not a target) a second node adds throughput, pinned one "
                                  f"core per node, {clients} clients max",
                                  "1 node, pinned", pinned),
                                 (f"(not a target) {n} nodes against one, unpinned, "
                                  f"{clients} clients max", "1 node", two)):
            a = _median(_cells(records, label, base), _dps)
            b = _median(_cells(records, label, more), _dps)
            if a and b:
                row(name, f"{b:,.0f} vs {a:,.0f}/s = {b / a:.2f}×", None)
        for setup in ("1 node", Setup("cluster", 1).name, two):
            cells = _cells(records, label, setup)
            ceiling = _median(cells, _ceiling)
            if ceiling:
                row(f"(not a target) ceiling with a core per server, {setup}, {clients} "
                    "clients max",
                    f"{ceiling:,.0f}/s", None)
        alone = _median(_cells(records, label, "1 node"),
                        lambda r: r["server_us_per_delivery"])
        bus = _cells(records, label, Setup("cluster", 1).name)
        if alone and bus:
            nodes = _median(bus, lambda r: r["nodes_us_per_delivery"]) or 0.0
            redis = _median(bus, lambda r: r["redis_us_per_delivery"]) or 0.0
            row(f"(not a target) what the Redis bus costs one node, {clients} clients max: "
                "server CPU µs per delivery", f"1 node {alone:.2f}; 1 node + Redis "
                f"{nodes:.2f} + {redis:.2f} = {nodes + redis:.2f}", None)
    return rows
