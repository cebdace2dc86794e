"""Merging what the shards measured into one BenchResult, exactly: counts add up, losses are
counted against every sender's last sequence number, latency samples are thinned to one stride.

`ShardReport` is what a shard hands back (plain data: a worker pipes it to the coordinator).
"""

from __future__ import annotations

import array
import sys
from typing import TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # pragma: no cover
    from typing_extensions import NotRequired

from chatkit.bench.result import BenchResult


class ShardReport(TypedDict):
    """One shard's measurements (`Shard.report`); lists are indexed by sender number."""

    receivers: int
    connect_s: float
    deliveries: int
    #: time.monotonic_ns of its first send (0: none) and of its last delivery
    first_send: int
    last_delivery: int
    #: every `stride`-th latency in ns
    samples: array.array[int]
    stride: int
    max_latency: int
    lost: list[int]
    duplicated: list[int]
    reordered: list[int]
    errors: int
    error_samples: list[str]
    #: stalled nick -> whether its own connection shows the server dropped it
    stalled: dict[str, bool]
    #: stalled nicks whose `quit` this shard's receivers saw
    stalled_gone: list[str]
    #: per-client limits the server announced at welcome ({} if none), rate_limited answers
    limits: NotRequired[dict[str, float]]
    rate_limited: NotRequired[int]
    #: over several servers: every `stride`-th latency in ns of deliveries between servers
    #: and the worst of them (`samples` and `max_latency` then hold the others')
    cross_samples: NotRequired[array.array[int]]
    cross_max_latency: NotRequired[int]


def percentile(ordered: list[int], fraction: float) -> int:
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def _summary(samples: array.array[int], worst: int) -> dict[str, float]:
    """p50/p95/p99 of `samples` and the worst latency, in ms ({} without samples)."""
    if not samples:
        return {}
    ordered = sorted(samples)
    return {"p50": percentile(ordered, 0.50) / 1e6, "p95": percentile(ordered, 0.95) / 1e6,
            "p99": percentile(ordered, 0.99) / 1e6, "max": worst / 1e6}


def merge(result: BenchResult, seqs: list[int], parts: list[ShardReport]) -> None:
    """Fill `result` from the shards' reports; `seqs[sid]` is what sender sid sent."""
    receivers = sum(p["receivers"] for p in parts)
    result.clients_connected = sum(p["receivers"] + len(p["stalled"]) for p in parts)
    result.connect_s = max(p["connect_s"] for p in parts)
    result.sent = sum(seqs)
    result.deliveries = sum(p["deliveries"] for p in parts)
    result.expected_deliveries = result.sent * receivers
    # time.monotonic_ns is one clock for the whole machine, so shards' times compare
    first_send = min((p["first_send"] for p in parts if p["first_send"]), default=0)
    last_delivery = max(p["last_delivery"] for p in parts)
    if first_send and last_delivery > first_send:
        result.elapsed_s = (last_delivery - first_send) / 1e9
        result.deliveries_per_s = result.deliveries / result.elapsed_s
        result.messages_per_s = result.sent / result.elapsed_s
    # A shard that kept every stride-th latency: thin every shard to the largest stride, so
    # each merged sample stands for as many deliveries as any other.
    stride = max(p["stride"] for p in parts)
    local, cross = array.array("q"), array.array("q")
    for p in parts:
        local.extend(p["samples"][::stride // p["stride"]])
        cross.extend(p.get("cross_samples", array.array("q"))[::stride // p["stride"]])
    local_worst = max(p["max_latency"] for p in parts)
    cross_worst = max(p.get("cross_max_latency", 0) for p in parts)
    result.latency_ms = _summary(local + cross, max(local_worst, cross_worst))
    if len(result.config.get("addresses") or ()) > 1:
        result.cross_latency_ms = _summary(cross, cross_worst)
        result.local_latency_ms = _summary(local, local_worst)
    for sid, sent in enumerate(seqs):
        lost = sum(p["lost"][sid] for p in parts)
        duplicated = sum(p["duplicated"][sid] for p in parts)
        reordered = sum(p["reordered"][sid] for p in parts)
        result.per_sender.append({"sender": sid, "sent": sent, "lost": lost,
                                  "duplicated": duplicated, "reordered": reordered})
        result.lost += lost
        result.duplicated += duplicated
        result.reordered += reordered
    result.errors = sum(p["errors"] for p in parts)
    result.error_samples = [text for p in parts for text in p["error_samples"]][:10]
    result.server_limits = next((p["limits"] for p in parts if p.get("limits")), {})
    result.rate_limited = sum(p.get("rate_limited", 0) for p in parts)
    gone = {nick for p in parts for nick in p["stalled_gone"]}
    result.stalled_disconnected = sum(1 for p in parts for nick, dropped in p["stalled"].items()
                                      if dropped or nick in gone)
