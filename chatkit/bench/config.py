"""What a benchmark run is asked to do: `BenchConfig` and its checks, `auto_processes` (how many
generator processes a run gets), the room a run uses, and the descriptors it needs.

Errors say what is wrong in the settings' own words (`SettingError` keeps which settings it
names, so the command line can say the same with its flags instead).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from chatkit.errors import ConfigError
from chatkit.net.sockets import raise_fd_limit
from chatkit.protocol import DEFAULT_PORT, MAX_TEXT

TARGETS = ("chatkit", "redis", "irc")

#: Messages per second over all senders that a run may ask for (also keeps inf and nan out)
MAX_RATE = 10_000_000.0
#: Hard bound on messages per sender when no count is given (the duration bounds it first).
MAX_MESSAGES = 10_000_000
#: Latency samples a shard keeps before halving (memory and sort time stay bounded on long runs)
MAX_SAMPLES = 1_000_000
#: Rate mode: deliveries per second one generator process takes at ~60-75% of a core (each
#: message arrives on its own, so a delivery costs ~7 us there, against ~0.6 us at full speed)
RATE_DELIVERIES_PER_PROCESS = 100_000

#: How a SettingError names each setting when nobody rewords it.
SETTING_WORDS = {
    "clients": "the number of clients",
    "senders": "the number of senders",
    "rate": "the rate",
    "duration": "the duration",
    "messages": "the messages per sender",
    "size": "the text size",
    "window": "the window",
    "processes": "the number of processes",
}


class SettingError(ConfigError):
    """A setting out of range. `template` names settings as `{clients}`, `{senders}`...;
    `str()` fills in SETTING_WORDS, `worded(names)` fills in the caller's names (flags)."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.worded(SETTING_WORDS))

    def worded(self, names: dict[str, str]) -> str:
        return self.template.format_map(names)


@dataclass
class BenchConfig:
    """What to run. Defaults suit a quick run against a local server."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    clients: int = 10
    senders: int = 1
    #: aggregate messages per second over all senders; None = as fast as the server accepts
    rate: float | None = None
    duration: float = 5.0
    #: messages per sender; the run ends at whichever of this and `duration` comes first
    messages: int | None = None
    #: bytes of message text (the marker included; padded with 'x')
    size: int = 64
    #: None: a fresh room per run, so a late message of an earlier run can never be counted
    room: str | None = None
    #: messages in flight per sender in max mode
    window: int = 16
    target: str = "chatkit"
    #: connect with TLS (chatkit servers offer it by default); the certificate is not checked,
    #: a benchmark measures speed, not trust
    tls: bool = False
    #: extra clients that join the room and never read (not counted as receivers)
    stalled: int = 0
    connect_concurrency: int = 100
    connect_timeout: float = 30.0
    #: after the last send, how long to wait for the remaining deliveries
    drain_timeout: float = 10.0
    #: report progress every 0.5 s to run_bench's `on_progress`
    progress: bool = False
    #: generator processes, each with its own event loop and every P-th client (see
    #: `auto_processes`); 1 runs in the calling process
    processes: int = 1
    #: several servers to spread the clients over (the nodes of one cluster), each (host,
    #: port); empty: `host`:`port` only. Connection i goes to the (i % n)-th, so clients and
    #: senders are spread evenly, and deliveries from a sender on one server to a receiver on
    #: another are measured apart (`BenchResult.cross_latency_ms`)
    addresses: list[tuple[str, int]] = field(default_factory=list)

    def servers(self) -> list[tuple[str, int]]:
        """Every server of the run, in the order connections are spread over them."""
        return list(self.addresses) or [(self.host, self.port)]

    def address(self, index: int) -> tuple[str, int]:
        """The server connection `index` goes to."""
        servers = self.servers()
        return servers[index % len(servers)]

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; use one of {', '.join(TARGETS)}")
        if self.clients < 1:
            raise SettingError("{clients} must be at least 1")
        if not 0 <= self.senders <= self.clients:
            raise SettingError("{senders} must be between 0 and {clients}")
        if self.rate is not None and not (0 < self.rate < MAX_RATE):
            raise SettingError(f"{{rate}} must be a positive number below {MAX_RATE:,.0f}")
        if self.duration <= 0:
            raise SettingError("{duration} must be positive")
        if self.messages is not None and self.messages < 1:
            raise SettingError("{messages} must be at least 1")
        if not 0 <= self.size <= MAX_TEXT:
            raise SettingError(f"{{size}} must be between 0 and {MAX_TEXT}")
        if self.window < 1:
            raise SettingError("{window} must be at least 1")
        if self.tls and self.target == "redis":
            raise ConfigError("TLS is not supported with the Redis target")
        if len(self.addresses) > 1 and self.target == "redis":
            raise ConfigError("several addresses need chatkit servers sharing rooms (a "
                              "cluster); Redis pub/sub servers do not share channels")
        if not 1 <= self.processes <= self.clients:
            raise SettingError("{processes} must be between 1 and {clients}")


def auto_processes(clients: int, rate: float | None = None) -> int:
    """`processes` chosen for a run: at full speed one process per 50 clients; at a set rate
    one per 100,000 deliveries/s expected (rate x clients); at most one per core and at most 4.

    A small run stays in one process: nothing to gain, spawning costs ~0.3 s each, and at a
    human rate a second process only adds its scheduling jitter to the latencies measured.
    """
    most = min(os.cpu_count() or 1, 4)
    if rate is None:
        return min(most, max(1, clients // 50))
    expected = rate * clients / RATE_DELIVERIES_PER_PROCESS
    if not math.isfinite(expected):  # a rate validate() refuses; never fail before it does
        return most
    return min(most, max(1, math.ceil(expected)))


def room_for(config: BenchConfig, run_id: str) -> str:
    """The room of a run: the one asked for, else a fresh one named after the run."""
    return config.room or f"bench-{run_id}"


def share(config: BenchConfig, processes: int) -> int:
    """Connections the busiest of `processes` generator processes opens."""
    conns = config.clients + config.stalled + (config.senders if config.target == "redis" else 0)
    return -(-conns // processes)


def descriptors(config: BenchConfig, processes: int) -> int:
    """Descriptors one generator process needs: a socket per connection, and some spare."""
    return share(config, processes) + 64


def raise_nofile_limit(needed: int) -> None:
    """Each connection is a descriptor; the default soft limit (often 1024) is too low."""
    soft = raise_fd_limit()
    if soft is not None and soft < needed:
        raise ConfigError(f"this run needs about {needed} file descriptors, the limit is {soft} "
                          "(raise it with `ulimit -n`)")
