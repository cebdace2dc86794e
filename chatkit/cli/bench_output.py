"""How `chatkit bench` shows a run: the human summary, the `--json` line, and the progress line
drawn on stderr while it runs (only when stderr is a terminal)."""

from __future__ import annotations

import json
import os
import sys
import time

from chatkit.bench import BenchResult
from chatkit.bench.progress import DONE


def summary(result: BenchResult) -> str:
    """A short human-readable report."""
    cfg = result.config
    mode = f"{cfg['rate']:g} msg/s" if cfg["rate"] else f"max (window {cfg['window']})"
    lat = result.latency_ms
    where = " ".join(f"{host}:{port}" for host, port in cfg.get("addresses") or ()) or \
        f"{cfg['host']}:{cfg['port']}"
    lines = [
        f"target       {cfg['target']} {where} room {cfg['room']}"
        + (" (TLS)" if cfg.get("tls") else ""),
        f"load         {result.clients_connected} clients, {cfg['senders']} senders, {mode}, "
        f"{cfg['size']} B text",
        f"connect      {result.clients_connected} clients in {result.connect_s:.2f} s",
        f"sent         {result.sent} messages ({result.messages_per_s:,.0f}/s)",
        f"deliveries   {result.deliveries} of {result.expected_deliveries} in "
        f"{result.elapsed_s:.2f} s = {result.deliveries_per_s:,.0f}/s",
    ]
    for name, figures in (("latency ms", lat), ("cross-node", result.cross_latency_ms),
                          ("same node", result.local_latency_ms)):
        if figures:
            lines.append(f"{name:<12} p50 {figures['p50']:.2f}  p95 {figures['p95']:.2f}  "
                         f"p99 {figures['p99']:.2f}  max {figures['max']:.2f}")
    lines.append(f"integrity    lost {result.lost}, duplicated {result.duplicated}, "
                 f"out of order {result.reordered}")
    lines.append(f"errors       {result.errors}" + (f" ({'; '.join(result.error_samples[:3])})"
                                                    if result.error_samples else ""))
    if cfg["stalled"]:
        lines.append(f"stalled      {cfg['stalled']} non-reading clients, "
                     f"{result.stalled_disconnected} disconnected by the server")
    note = limits_note(result)
    if note:
        lines.append(f"note         {note}")
    procs = result.generator_processes
    lines.append(f"generator    {procs} process{'es' if procs != 1 else ''}, "
                 f"{result.generator_cpu_s:.2f} CPU s, {result.generator_cpu_util:.2f} cores "
                 f"while sending (busiest process {result.generator_cpu_util_max:.0%})"
                 + ("  (the generator may have been the bottleneck)"
                    if result.generator_cpu_util_max > 0.9 else ""))
    return "\n".join(lines)


#: The server flags that lift its flood protection and connection caps for a benchmark
LIFT_LIMITS = "--rate-limit 0 --max-per-address 0 --max-unregistered 0"


def limits_note(result: BenchResult) -> str | None:
    """When the server's own limits shaped the run (it rate-limits each client, or refused
    connections past its caps), say so and which server flags lift them."""
    capped = any("too many connections" in text or "server full" in text
                 for text in result.error_samples)
    rate = result.server_limits.get("rate", 0)
    if not (capped or rate > 0 or result.rate_limited):
        return None
    what = []
    if rate > 0 or result.rate_limited:
        burst = result.server_limits.get("burst")
        limit = (f" ({rate:g} lines/s per client" + (f", burst {burst:g}" if burst else "")
                 + ")") if rate > 0 else ""
        refused = f", {result.rate_limited} rate_limited answers" if result.rate_limited else ""
        what.append(f"rate-limits each client{limit}{refused}")
    if capped:
        what.append("refused connections past its caps")
    return (f"the server {' and '.join(what)}: this measured its flood protection; start it "
            f"with {LIFT_LIMITS} for a benchmark")


def main_json(result: BenchResult) -> str:
    """The `--json` output: one JSON object on one line."""
    return json.dumps(result.to_dict(), separators=(",", ":"))


class ProgressLine:
    """The progress line on stderr, rewritten in place; the run's last report ends it."""

    def __init__(self) -> None:
        self.start = self.previous_t = time.monotonic()
        self.previous = 0

    def show(self, phase: str, sent: int, deliveries: int, errors: int, clients: int) -> None:
        if phase == DONE:
            print(file=sys.stderr)
            return
        now = time.monotonic()
        rate = (deliveries - self.previous) / max(1e-9, now - self.previous_t)
        self.previous, self.previous_t = deliveries, now
        sys.stderr.write(f"\r{now - self.start:6.1f} s  {phase:<10}  sent {sent:>9,}  "
                         f"deliveries {deliveries:>11,}  {rate:>11,.0f}/s  errors {errors}"
                         + (f"  clients {clients}" if clients else "") + "   ")
        sys.stderr.flush()


def stderr_is_tty() -> bool:
    """Whether a progress line on stderr would reach a person."""
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced or captured stderr
        return False
