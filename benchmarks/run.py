#!/usr/bin/env python3
"""The chatkit benchmark suite: one command, a fixed matrix, raw JSON, a plot, a README table.

    python benchmarks/run.py            # the full matrix (under 15 minutes), updates README.md
    python benchmarks/run.py --smoke    # a tiny run in seconds (CI); touches no README
    python benchmarks/run.py --cluster-only   # the cluster cells only (benchmarks/cluster.py)

For every cell it starts a fresh server on 127.0.0.1 (a real `chatkit serve` subprocess, and
`redis-server` as the reference when installed), drives it with the `chatkit bench` generator
(`chatkit.bench.run_bench` called from this process; it spreads the clients over `--processes`
worker processes, by default `auto`: see `chatkit bench --help`), reads the
server's CPU seconds and peak RSS from /proc/PID, and stops the server by its PID. Only
loopback traffic; every run is bounded in messages and time.

The plot is drawn by benchmarks/plot.py, which needs matplotlib; it is not a chatkit dependency,
so give an interpreter that has it with `--plot-python` (or the plot is skipped with a note).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from chatkit.bench import BenchConfig, auto_processes, run_bench  # noqa: E402

#: Flood protection and the per-address connection cap must not be what a benchmark measures
#: (1,000 clients all come from 127.0.0.1), so both are lifted; the report says so.
SERVE_ARGS = ("--rate-limit", "0", "--max-per-address", "0")
#: The human rate of the latency target: 200 messages/s over all senders.
HUMAN_RATE = 200.0
#: The whole matrix must end in time; cells past this budget are skipped (and say so).
BUDGET_S = 9 * 60.0
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
START_TIMEOUT = 15.0
#: Where `python -m chatkit serve` imports chatkit from (benchmarks/ab.py points it elsewhere).
CHATKIT_ROOT = HERE.parent


# --------------------------------------------------------------------------- servers


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _status_kib(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)  # bounded by the deadline: the server is still starting
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s")


@dataclass
class RunningServer:
    target: str
    proc: subprocess.Popen
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: only this process, by its PID."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_chatkit(home: Path, serve_args: list[str], *, irc: bool = False,
                  prefix: tuple[str, ...] = ()) -> RunningServer:
    """`chatkit serve`; with `irc`, also on an IRC port, which is the one measured. `prefix`
    runs it through a command such as `taskset -c 0`."""
    env = dict(os.environ, CHATKIT_HOME=str(home))
    env.pop("CHATKIT_SERVE_CLUSTER", None)  # a cluster only when serve_args ask for one
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "chatkit", "serve", "--host", "127.0.0.1", "--port", "0",
         "--no-discovery", "--name", "bench", "--log-level", "warning", *serve_args,
         *(["--irc-port", "0"] if irc else [])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(CHATKIT_ROOT))
    assert proc.stdout is not None
    pattern = r"IRC clients: 127\.0\.0\.1/(\d+)" if irc else r"127\.0\.0\.1:(\d+)"
    banner = ""
    match = None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    # The banner is printed (and flushed) whole: once its first line is there, the rest
    # follows; a bounded number of lines, and a server that died ends it with EOF.
    for _ in range(20 if ready else 0):
        line = proc.stdout.readline().decode(errors="replace")
        banner += line
        match = re.search(pattern, line)
        if match or not line:
            break
    if not match:
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"chatkit serve did not start: {banner!r}")
    return RunningServer("irc" if irc else "chatkit", proc, int(match.group(1)))


def start_redis(workdir: Path) -> RunningServer:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
         "--maxclients", "12000", "--loglevel", "warning", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, START_TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    return RunningServer("redis", proc, port)


@contextmanager
def server(target: str, workdir: Path, serve_args: list[str]) -> Iterator[RunningServer]:
    running = start_redis(workdir) if target == "redis" else \
        start_chatkit(workdir, serve_args, irc=target == "irc")
    try:
        yield running
    finally:
        running.stop()


# --------------------------------------------------------------------------- one cell


def generator_processes(setting: int | str, clients: int, rate: float | None) -> int:
    """`--processes`: "auto" is chatkit bench's rule; a number is capped at the clients."""
    if setting == "auto":
        return auto_processes(clients, rate)
    return max(1, min(int(setting), clients))


def run_cell(target: str, workdir: Path, serve_args: list[str], *, label: str,
             processes: int | str = "auto", **bench: Any) -> dict[str, Any]:
    """A fresh server, one benchmark, the server's CPU and memory; the raw record."""
    bench["processes"] = generator_processes(processes, bench.get("clients", 10),
                                              bench.get("rate"))
    with server(target, workdir, serve_args) as running:
        base_rss = _status_kib(running.pid, "VmRSS")
        idle: dict[str, float] = {}

        def on_connected() -> None:
            idle["rss_kib"] = _status_kib(running.pid, "VmRSS")
            idle["cpu_s"] = _cpu_seconds(running.pid)

        def on_finished() -> None:
            idle["end_cpu_s"] = _cpu_seconds(running.pid)

        cpu0 = _cpu_seconds(running.pid)
        result = run_bench(BenchConfig(host="127.0.0.1", port=running.port, target=target,
                                       **bench), on_connected=on_connected,
                           on_finished=on_finished)
        # Up to the last delivery: the disconnect storm of the teardown is not the benchmark.
        cpu1 = idle.get("end_cpu_s", _cpu_seconds(running.pid))
        record = {
            "label": label, "target": target,
            "serve_args": serve_args if target in ("chatkit", "irc") else [], **result.to_dict(),
            "server_cpu_s": cpu1 - cpu0,
            "server_send_cpu_s": cpu1 - idle.get("cpu_s", cpu0),
            "server_rss_base_kib": base_rss,
            "server_rss_connected_kib": idle.get("rss_kib", 0),
            "server_peak_rss_kib": _status_kib(running.pid, "VmHWM"),
        }
    deliveries = record["deliveries"]
    record["server_us_per_delivery"] = (record["server_send_cpu_s"] / deliveries * 1e6
                                        if deliveries else None)
    clients = record["clients_connected"] or 1
    record["server_kib_per_client"] = (record["server_rss_connected_kib"] - base_rss) / clients
    return record


def _describe(record: dict[str, Any]) -> str:
    lat = record["latency_ms"] or {}
    return (f"{record['label']:<28} {record['target']:<7} "
            f"{record['deliveries_per_s']:>12,.0f}/s  p99 {lat.get('p99', 0):8.2f} ms  "
            f"max {lat.get('max', 0):8.2f} ms  lost {record['lost']} dup {record['duplicated']} "
            f"reord {record['reordered']} err {record['errors']}  "
            f"gen {_generator(record)}  "
            f"srv {record['server_us_per_delivery'] or 0:.2f} us/dlv  "
            f"connect {record['connect_s']:.2f} s")


def _generator(record: dict[str, Any]) -> str:
    """Generator CPU while sending: processes × the busiest one's share of a core (cores)."""
    busiest = record.get("generator_cpu_util_max", record["generator_cpu_util"])
    return (f"{record.get('generator_processes', 1)}×{busiest:.0%} "
            f"({record['generator_cpu_util']:.2f} cores)")


# --------------------------------------------------------------------------- the suite


@dataclass
class Plan:
    clients: list[int]
    senders: list[int]
    duration: float
    messages: int | None
    repeat: int
    idle_clients: int
    extras: bool
    stalled_duration: float


FULL = Plan(clients=[10, 100, 500, 1000], senders=[1, 10], duration=3.0, messages=None,
            repeat=5, idle_clients=1000, extras=True, stalled_duration=8.0)
SMOKE = Plan(clients=[5], senders=[2], duration=2.0, messages=20, repeat=1, idle_clients=5,
             extras=True, stalled_duration=2.0)


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    redis_version = None
    if shutil.which("redis-server"):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                             timeout=10).stdout
        match = re.search(r"v=(\S+)", out)
        redis_version = match.group(1) if match else out.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": model,
            "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "redis": redis_version,
            "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def irc_cell(plan: Plan, clients: int, senders: int, rate: float | None) -> bool:
    """Whether a cell also measures the IRC door: the key cell (about 100 clients, the most
    senders, full speed), beside the line door's, so both see the same machine load."""
    key = min(plan.clients, key=lambda n: abs(n - 100))
    return clients == key and senders == max(plan.senders) and rate is None


def run_suite(plan: Plan, targets: list[str], serve_args: list[str],
              log: Callable[[str], None], processes: int | str = "auto") -> dict[str, Any]:
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="chatkit-bench-"))

    def cell(target: str, label: str, args: list[str] | None = None, **bench: Any) -> None:
        if time.monotonic() - started > BUDGET_S:
            skipped.append(f"{target} {label}")
            return
        home = workdir / f"{len(records)}-{target}"
        home.mkdir()
        try:
            record = run_cell(target, home, serve_args if args is None else args,
                              label=label, processes=processes, **bench)
        except Exception as exc:  # one failed cell must not lose the others
            record = {"label": label, "target": target, "failed": f"{type(exc).__name__}: "
                      f"{exc}", **bench}
            log(f"{label:<28} {target:<7} FAILED {record['failed']}")
        else:
            log(_describe(record))
        records.append(record)

    limits = {"duration": plan.duration, "messages": plan.messages}
    try:
        # The matrix: every target on the same cell before the next, so both see the same
        # machine load.
        for clients in plan.clients:
            for senders in plan.senders:
                for rate in (None, HUMAN_RATE):
                    mode = "max" if rate is None else f"{rate:g}/s"
                    label = f"{clients}c x {senders}s {mode}"
                    for target in targets:
                        cell(target, label, clients=clients, senders=senders, rate=rate,
                             **limits)
                    if irc_cell(plan, clients, senders, rate):  # the IRC door, same run
                        cell("irc", label, clients=clients, senders=senders, rate=rate,
                             **limits)
        # Repeats of the two cells the targets are about, interleaved, to show the noise.
        key = min(plan.clients, key=lambda n: abs(n - 100))
        key_senders = max(plan.senders)
        for _ in range(plan.repeat - 1):
            for rate in (None, HUMAN_RATE):
                mode = "max" if rate is None else f"{rate:g}/s"
                for target in targets:
                    cell(target, f"{key}c x {key_senders}s {mode}", clients=key,
                         senders=key_senders, rate=rate, **limits)
                if irc_cell(plan, key, key_senders, rate):
                    cell("irc", f"{key}c x {key_senders}s {mode}", clients=key,
                         senders=key_senders, rate=rate, **limits)
        if plan.extras:
            # Memory per idle client: connect, read RSS, send nothing.
            for target in targets:
                cell(target, f"idle {plan.idle_clients}c", clients=plan.idle_clients,
                     senders=0, duration=0.5)
            if "chatkit" in targets:
                cell("chatkit", f"idle {plan.idle_clients}c TLS", clients=plan.idle_clients,
                     senders=0, duration=0.5, tls=True)
            # One client in the room that never reads; at full speed long enough for its
            # backlog to overflow, so the run also shows the server disconnecting it.
            for rate in (None, HUMAN_RATE):
                mode = "max" if rate is None else f"{rate:g}/s"
                stalled_limits = dict(limits)
                if rate is None:
                    stalled_limits["duration"] = plan.stalled_duration
                for target in targets:
                    cell(target, f"{key}c x {key_senders}s {mode} +1 stalled", clients=key,
                         senders=key_senders, rate=rate, stalled=1, **stalled_limits)
            # The message log in memory only, against the default (SQLite on disk); and every
            # client on TLS, against plain connections.
            if "chatkit" in targets:
                for rate in (None, HUMAN_RATE):
                    mode = "max" if rate is None else f"{rate:g}/s"
                    cell("chatkit", f"{key}c x {key_senders}s {mode} no-history",
                         args=[*serve_args, "--no-history"], clients=key, senders=key_senders,
                         rate=rate, **limits)
                    cell("chatkit", f"{key}c x {key_senders}s {mode} TLS", clients=key,
                         senders=key_senders, rate=rate, tls=True, **limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"machine": machine_info(), "targets": targets, "serve_args": serve_args,
            "plan": plan.__dict__, "processes": processes, "elapsed_s": time.monotonic() - started,
            "skipped": skipped, "records": records}


# --------------------------------------------------------------------------- report


def _ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "failed" not in r]


def _find(records: list[dict[str, Any]], target: str, label: str) -> list[dict[str, Any]]:
    return [r for r in _ok(records) if r["target"] == target and r["label"] == label]


def _median(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]
            ) -> float | None:
    values = [key(r) for r in records]
    return statistics.median(values) if values else None


def _dps(r: dict[str, Any]) -> float:
    return float(r["deliveries_per_s"])


def _p99(r: dict[str, Any]) -> float:
    return float((r["latency_ms"] or {}).get("p99", 0.0))


def _max(r: dict[str, Any]) -> float:
    return float((r["latency_ms"] or {}).get("max", 0.0))


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "–" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}"


def _spread(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> str:
    values = [key(r) for r in records]
    if len(values) < 2:
        return ""
    mid = statistics.median(values)
    return f" (n={len(values)}, {min(values) / mid - 1:+.0%}..{max(values) / mid - 1:+.0%})" \
        if mid else ""


def report(data: dict[str, Any], command: str) -> str:
    """The Markdown the README gets between its results markers."""
    records = data["records"]
    machine = data["machine"]
    has_redis = "redis" in data["targets"]
    lines = [
        f"Measured {machine['date']} on {machine['cpu'] or 'unknown CPU'}, "
        f"{machine['cores']} cores, Linux {machine['kernel']}, Python {machine['python']}, "
        + (f"Redis {machine['redis']}" if has_redis else
           "**Redis not installed: no reference figures**")
        + f"; load average before the run {_fmt(machine['load_before'], '.2f')}. "
        f"The whole run took {data['elapsed_s']:.0f} s.",
        "",
        f"Command: `{command}`. chatkit server flags: "
        f"`{' '.join(data['serve_args']) or '(defaults)'}` (message log on: SQLite in a "
        "temporary directory; the server offers TLS but clients connect in plain text except in "
        "the cells marked TLS; per-client rate limit and per-address connection cap "
        "lifted). Generator and server share the machine; the generator runs in "
        + (f"`--processes {data.get('processes', 'auto')}` processes"
           + (" (full speed: one per 50 clients; at a set rate: one per 100,000 "
              "deliveries/s; at most one per core and 4)"
              if data.get("processes", "auto") == "auto" else "")) + ", its CPU column "
        "shows processes × the busiest one's share of a core (cores used in all); every cell "
        "has a fresh server. "
        "Medians where a cell ran more than once, with the spread (min..max around the "
        "median) in brackets.",
        "",
    ]
    if data["skipped"]:
        lines += [f"Skipped (time budget): {', '.join(data['skipped'])}.", ""]
    failed = [r for r in records if "failed" in r]
    if failed:
        lines += ["Failed cells: " + "; ".join(f"{r['target']} {r['label']}: {r['failed']}"
                                              for r in failed) + ".", ""]
    lines += [
        "| cell | chatkit deliveries/s | Redis deliveries/s | ratio | chatkit p99 / max ms "
        "| Redis p99 / max ms | server CPU µs per delivery chatkit / Redis | "
        "generator CPU chatkit / Redis | lost·dup·reordered | connect s | chatkit peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    seen: list[str] = []
    for record in _ok(records):
        if record["label"] not in seen and not record["label"].startswith("idle"):
            seen.append(record["label"])
    for label in seen:
        ck, rd = _find(records, "chatkit", label), _find(records, "redis", label)
        if not ck:
            continue
        c_dps, r_dps = _median(ck, _dps), _median(rd, _dps)
        bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in ck)
        c_us = _median(ck, lambda r: r["server_us_per_delivery"] or 0)
        r_us = _median(rd, lambda r: r["server_us_per_delivery"] or 0)
        lines.append(
            f"| {label} | {_fmt(c_dps)}{_spread(ck, _dps)} | {_fmt(r_dps)} | "
            f"{_ratio(c_dps, r_dps)} | {_fmt(_median(ck, _p99), '.2f')} / "
            f"{_fmt(_median(ck, _max), '.1f')} | {_fmt(_median(rd, _p99), '.2f')} / "
            f"{_fmt(_median(rd, _max), '.1f')} | {_fmt(c_us, '.2f')} / {_fmt(r_us, '.2f')} | "
            f"{_generator_cell(ck)} / {_generator_cell(rd)} | "
            f"{bad} | {_fmt(_median(ck, lambda r: r['connect_s']), '.2f')} | "
            f"{_fmt(_median(ck, lambda r: r['server_peak_rss_kib'] / 1024), '.0f')} |")
    lines += ["", *targets_report(data)]
    return "\n".join(lines)


def _generator_cell(records: list[dict[str, Any]]) -> str:
    """The generator column of a cell: medians, as `_generator` writes them."""
    if not records:
        return "–"
    median = {key: _median(records, lambda r, key=key: r.get(key, r["generator_cpu_util"]))
              for key in ("generator_cpu_util", "generator_cpu_util_max")}
    procs = _median(records, lambda r: r.get("generator_processes", 1))
    return _generator({"generator_processes": f"{procs:g}", **median})


def targets_report(data: dict[str, Any]) -> list[str]:
    """The issue's targets, each with the figure measured in this run."""
    records = data["records"]
    plan = data["plan"]
    key = min(plan["clients"], key=lambda n: abs(n - 100))
    big = max(plan["clients"])
    s = max(plan["senders"])
    rate = f"{HUMAN_RATE:g}/s"
    rows = ["| target | measured | met? |", "| --- | --- | --- |"]

    def row(name: str, value: str, met: bool | None) -> None:
        rows.append(f"| {name} | {value} | {'–' if met is None else 'yes' if met else '**no**'} |")

    ck = _find(records, "chatkit", f"{key}c x {s}s max")
    rd = _find(records, "redis", f"{key}c x {s}s max")
    c_dps, r_dps = _median(ck, _dps), _median(rd, _dps)
    clean = all(not (r["lost"] or r["duplicated"] or r["reordered"]) for r in ck)
    if c_dps and r_dps:
        row(f"{key} clients × {s} senders max: ≥ 70% of Redis deliveries/s, nothing lost",
            f"{c_dps:,.0f} vs {r_dps:,.0f}/s = {c_dps / r_dps:.0%}{_spread(ck, _dps)}; "
            f"{'clean' if clean else 'LOSS/DUP/REORDER'}", c_dps / r_dps >= 0.7 and clean)
        c_us, r_us = _median(ck, _us), _median(rd, _us)
        if c_us and r_us:
            row(f"(not a target) server CPU per delivery, {key} clients max, chatkit / Redis",
                f"{c_us:.3f} / {r_us:.3f} µs = {c_us / r_us:.1f}×", None)
    for n in sorted({key, max(plan["clients"])}):
        cells = [r for t in ("chatkit", "redis") for r in _find(records, t, f"{n}c x {s}s max")]
        if cells:
            busiest = max(r.get("generator_cpu_util_max", r["generator_cpu_util"])
                          for r in cells)
            row(f"the generator is not the bottleneck ({n} clients max): every process "
                "< 90% of a core", f"busiest process {busiest:.0%}", busiest < 0.9)
    irc = _find(records, "irc", f"{key}c x {s}s max")
    if ck and irc:
        i_dps, c_us, i_us = _median(irc, _dps) or 0, _median(ck, _us), _median(irc, _us)
        clean = all(not (r["lost"] or r["duplicated"] or r["reordered"]) for r in irc)
        if c_us and i_us:
            row(f"IRC door, {key} clients × {s} senders max: server CPU per delivery ≤ 1.2 × "
                "the line door's",
                f"{i_us:.3f} / {c_us:.3f} µs = {i_us / c_us:.2f}×; {i_dps:,.0f} vs "
                f"{c_dps or 0:,.0f} deliveries/s{_spread(irc, _dps)}; "
                f"{'clean' if clean else 'LOSS/DUP/REORDER'}", i_us / c_us <= 1.2 and clean)
    big_max = _find(records, "chatkit", f"{big}c x {s}s max")
    if c_dps and big_max:
        b = _median(big_max, _dps) or 0
        rb = _median(_find(records, "redis", f"{big}c x {s}s max"), _dps)
        row(f"scaling: {big} clients ≥ 80% of {key} clients' deliveries/s",
            f"{b:,.0f} / {c_dps:,.0f} = {b / c_dps:.0%}"
            + (f" (Redis: {rb / r_dps:.0%})" if rb and r_dps else ""), b / c_dps >= 0.8)
    human = _find(records, "chatkit", f"{key}c x {s}s {rate}")
    if human:
        p99, worst = _median(human, _p99) or 0, max(_max(r) for r in human)
        rh = _find(records, "redis", f"{key}c x {s}s {rate}")
        row(f"latency, {key} clients, {HUMAN_RATE:g} msg/s: p99 < 5 ms, max < 50 ms",
            f"p99 {p99:.2f} ms{_spread(human, _p99)}, max {worst:.1f} ms (worst of "
            f"{len(human)})" + (f"; Redis p99 {_median(rh, _p99):.2f} ms, max "
                                f"{max(_max(r) for r in rh):.1f} ms" if rh else ""),
            p99 < 5 and worst < 50)
    connect = _find(records, "chatkit", f"{big}c x {s}s max") + \
        _find(records, "chatkit", f"{big}c x {s}s {rate}")
    if connect:
        slowest = max(r["connect_s"] for r in connect)
        row(f"{big} clients connect in < 5 s", f"{slowest:.2f} s (slowest of {len(connect)})",
            slowest < 5)
    idle = _find(records, "chatkit", f"idle {plan['idle_clients']}c")
    if idle:
        kib = idle[0]["server_kib_per_client"]
        ridle = _find(records, "redis", f"idle {plan['idle_clients']}c")
        row("server memory per idle client < 150 KiB",
            f"{kib:.0f} KiB" + (f" (Redis {ridle[0]['server_kib_per_client']:.0f} KiB)"
                                if ridle else ""), kib < 150)
    for mode, fig, name in (("max", _dps, "deliveries/s"), (rate, _p99, "p99")):
        base = _find(records, "chatkit", f"{key}c x {s}s {mode}")
        stalled = _find(records, "chatkit", f"{key}c x {s}s {mode} +1 stalled")
        if base and stalled:
            b, v = _median(base, fig) or 0, _median(stalled, fig) or 0
            change = v / b - 1 if b else 0.0
            dropped = sum(r["stalled_disconnected"] for r in stalled)
            row(f"a non-reading client changes {mode} {name} by ≤ 10%",
                f"{b:,.2f} → {v:,.2f} ({change:+.0%}); stalled client disconnected: "
                f"{dropped}/{len(stalled)}",
                change >= -0.10 if fig is _dps else (change <= 0.10 or v < 5))
    # The target figures are deliveries/s, latency, connect time and memory; the server's CPU
    # per delivery is shown beside them (not a target figure: it is what the machine pays).
    for what, with_it, without in (("message log", "", " no-history"), ("TLS", " TLS", "")):
        for mode, name, fig, target in (("max", "deliveries/s", _dps, True),
                                        (rate, "p99 ms", _p99, True),
                                        ("max", "server µs/delivery", _us, False),
                                        (rate, "server µs/delivery", _us, False)):
            on = _find(records, "chatkit", f"{key}c x {s}s {mode}{with_it}")
            off = _find(records, "chatkit", f"{key}c x {s}s {mode}{without}")
            if on and off:
                a, b = _median(on, fig) or 0, _median(off, fig) or 0
                cost = (1 - a / b) if fig is _dps and b else ((a / b - 1) if b else 0.0)
                row(f"{'' if target else '(not a target) '}{what} on costs ≤ 30% "
                    f"({mode} {name})", f"on {a:,.2f}, off {b:,.2f}: cost {cost:+.0%}",
                    cost <= 0.30 if target else None)
    plain = _find(records, "chatkit", f"idle {plan['idle_clients']}c")
    tls = _find(records, "chatkit", f"idle {plan['idle_clients']}c TLS")
    if plain and tls:
        for name, get in (("memory per idle client KiB", lambda r: r["server_kib_per_client"]),
                          (f"connect time of {plan['idle_clients']} clients s",
                           lambda r: r["connect_s"])):
            a, b = get(tls[0]), get(plain[0])
            cost = a / b - 1 if b else 0.0
            row(f"TLS on costs ≤ 30% ({name})", f"on {a:,.2f}, off {b:,.2f}: cost {cost:+.0%}",
                cost <= 0.30)
    return rows


def _us(record: dict[str, Any]) -> float:
    return record["server_us_per_delivery"] or 0.0


def write_readme(path: Path, body: str, markers: str = "results",
                 heading: str = "Results") -> None:
    """Put `body` between the README's `<!-- {markers}:start/end -->` (a new section with
    `heading` at the end when they are not there yet)."""
    start, end = f"<!-- {markers}:start -->", f"<!-- {markers}:end -->"
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text:
        text += f"\n## {heading}\n\n{start}\n{end}\n"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}\n{body}\n{end}{tail}")


def draw_plot(json_path: Path, png_path: Path, python: str) -> str | None:
    """Run plot.py with an interpreter that has matplotlib; None on success, else why not."""
    try:
        done = subprocess.run([python, str(HERE / "plot.py"), str(json_path), str(png_path)],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"plot skipped: {exc}"
    if done.returncode != 0:
        return "plot skipped: " + (done.stderr.strip().splitlines() or ["failed"])[-1]
    return None


def _processes_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="A tiny run in seconds.")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="Where the raw JSON (and the plot) go.")
    parser.add_argument("--readme", type=Path, default=None,
                        help="README to update [default: benchmarks/README.md, not with --smoke].")
    parser.add_argument("--no-redis", action="store_true", help="Skip the Redis reference.")
    parser.add_argument("--plot-python", default=sys.executable,
                        help="An interpreter with matplotlib for the plot.")
    parser.add_argument("--repeat", type=int, default=None,
                        help="Runs of the key cells (noise) [default: 5, smoke 1].")
    parser.add_argument("--processes", default="auto", type=_processes_arg,
                        help="Generator processes per cell: a number (capped at the cell's "
                             "clients) or auto, chatkit bench's rule [default: auto].")
    parser.add_argument("--cluster-only", action="store_true",
                        help="Only the cluster cells (issue 18: several nodes through one "
                             "Redis) and the one-node and Redis cells they are compared with; "
                             "updates only the README's cluster section.")
    parser.add_argument("--no-cluster", action="store_true",
                        help="Without the cluster cells (the full run has them; --smoke not).")
    args = parser.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.cluster_only:
        return cluster_main(args, log)
    plan = SMOKE if args.smoke else FULL
    if args.repeat is not None:
        plan.repeat = max(1, args.repeat)
    targets = ["chatkit"]
    note = None
    if not args.no_redis:
        if shutil.which("redis-server"):
            targets.append("redis")
        else:
            note = "redis-server is not installed: the Redis reference is skipped"
            print(f"note: {note}", file=sys.stderr)

    data = run_suite(plan, targets, serve_args=list(SERVE_ARGS), log=log,
                     processes=args.processes)
    data["note"] = note
    if not (args.smoke or args.no_cluster) and "redis" in targets:
        import cluster  # benchmarks/cluster.py: it imports this module's helpers

        if args.repeat is not None:
            cluster.FULL.repeat = max(1, args.repeat)
        data["cluster"] = cluster.run_cluster_suite(cluster.FULL, list(SERVE_ARGS), log,
                                                    args.processes)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = args.out / f"{'smoke-' if args.smoke else ''}{stamp}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    log(f"raw results: {json_path}")
    png_path = args.out / ("smoke.png" if args.smoke else "fanout.png")
    why = draw_plot(json_path, png_path, args.plot_python)
    log(why or f"plot: {png_path}")
    command = "python benchmarks/run.py" + (" --smoke" if args.smoke else "") + \
        (f" --processes {args.processes}" if args.processes != "auto" else "")
    body = report(data, command)
    if not why:
        body += f"\n\n![deliveries/s and p99 latency against clients]" \
                f"({os.path.relpath(png_path, (args.readme or HERE / 'README.md').parent)})"
    body += f"\n\nRaw data: `{os.path.relpath(json_path, HERE.parent)}`."
    readme = args.readme or (None if args.smoke else HERE / "README.md")
    if readme is not None:
        write_readme(readme, body)
        log(f"table written to {readme}")
    else:
        print(body)
    failed = [r for r in data["records"] if "failed" in r]
    if "cluster" in data:
        import cluster

        part = cluster.report(data["cluster"], command, data["machine"])
        part += f"\n\nRaw data: `{os.path.relpath(json_path, HERE.parent)}` (`cluster`)."
        _write_cluster(readme, part, log)
        failed += [r for r in data["cluster"]["records"] if "failed" in r]
    return 1 if failed else 0


def _write_cluster(readme: Path | None, body: str, log: Callable[[str], None]) -> None:
    if readme is None:
        print(body)
        return
    write_readme(readme, body, "cluster", "Several nodes (issue 18)")
    log(f"cluster table written to {readme}")


def cluster_main(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    """`--cluster-only`: the cluster cells and their references, their JSON, their section."""
    import cluster  # benchmarks/cluster.py: it imports this module's helpers

    if not shutil.which("redis-server"):
        log("redis-server is not installed: a cluster needs it (apt-get install redis-server)")
        return 1
    plan = cluster.SMOKE if args.smoke else cluster.FULL
    if args.repeat is not None:
        plan.repeat = max(1, args.repeat)
    machine = machine_info()
    data = cluster.run_cluster_suite(plan, list(SERVE_ARGS), log, args.processes,
                             redis=not args.no_redis)
    data["machine"] = machine
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"smoke-cluster-{time.strftime('%Y%m%d-%H%M%S')}" if args.smoke else \
        f"cluster-{time.strftime('%Y-%m-%d')}"
    json_path = args.out / f"{name}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    log(f"raw results: {json_path}")
    command = "python benchmarks/run.py --cluster-only" + (" --smoke" if args.smoke else "") \
        + (f" --processes {args.processes}" if args.processes != "auto" else "") \
        + (f" --repeat {args.repeat}" if args.repeat is not None else "")
    body = cluster.report(data, command, machine)
    body += f"\n\nRaw data: `{os.path.relpath(json_path, HERE.parent)}`."
    _write_cluster(args.readme or (None if args.smoke else HERE / "README.md"), body, log)
    return 1 if any("failed" in r for r in data["records"]) else 0


if __name__ == "__main__":
    sys.exit(main())
