"""What a benchmark run measured: `BenchResult` (plain data; `to_dict()` is the `--json`
output's object). Formatting it for people is the command line's job (chatkit/cli)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BenchResult:
    """What a run measured."""

    config: dict[str, Any]
    clients_connected: int = 0
    connect_s: float = 0.0
    sent: int = 0
    deliveries: int = 0
    expected_deliveries: int = 0
    #: from the first send to the last delivery
    elapsed_s: float = 0.0
    deliveries_per_s: float = 0.0
    messages_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    #: over several servers (`addresses`): the same figures for deliveries from a sender on
    #: one server to a receiver on another, and for those within one server ({} otherwise)
    cross_latency_ms: dict[str, float] = field(default_factory=dict)
    local_latency_ms: dict[str, float] = field(default_factory=dict)
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    per_sender: list[dict[str, int]] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    stalled_disconnected: int = 0
    #: per-client limits the server announced at welcome (`rate` lines/s, `burst`), and how
    #: many lines it answered `rate_limited`: either means the flood protection was measured
    server_limits: dict[str, float] = field(default_factory=dict)
    rate_limited: int = 0
    #: generator CPU seconds (user + system, all its processes) and wall seconds of the run
    generator_cpu_s: float = 0.0
    generator_wall_s: float = 0.0
    #: cores the generator used while sending (all processes together; can exceed 1.0)
    generator_cpu_util: float = 0.0
    generator_processes: int = 1
    #: fraction of one core the busiest generator process used while sending; near 1.0 that
    #: process, not the server, was the bottleneck
    generator_cpu_util_max: float = 0.0

    @property
    def ok(self) -> bool:
        """Every receiver got every message exactly once, in order, without errors."""
        return not (self.lost or self.duplicated or self.reordered or self.errors)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data
