"""`chatkit bench`: a load generator that measures a chat server's fan-out.

An asyncio event loop opens N real client connections, joins them to one room and lets S of them
send messages. Every message text carries the sender's id, a sequence number and the send time
(`time.monotonic_ns`, so generator and server must share the machine's clock for latencies, which
they do on loopback), so each receiver can check that it got every message of every sender
exactly once and in order, and how long each took.

Two modes: at an aggregate rate (`rate`), or as fast as the server accepts (`rate=None`), where
each sender keeps at most `window` messages in flight and counts a message as acknowledged when
its own copy comes back through the fan-out (the echo carrying `ref`).

The same generator can drive Redis pub/sub (`target="redis"`: one SUBSCRIBE connection per client,
one PUBLISH connection per sender), the reference the benchmark suite compares against.

One process tops out near one core (~0.6 µs per delivery), so with `processes` > 1 the clients
are spread over that many worker processes, each an event loop with its own shard: connection
i lives in worker i % P, so a sender's acks (its own echo) arrive in its own worker. The
calling process drives the phases and merges the shards' counts exactly. The CPU report covers
all processes: cores used while sending, and the busiest process's share of one core (near
100%: the generator was the bottleneck).

Over several servers (`addresses`: the nodes of one cluster) connection i goes to server
i % n, and the latency from a sender on one server to a receiver on another is kept apart
(`cross_latency_ms`).

Importable without click, prints nothing; the entry point is
`run_bench(BenchConfig(...)) -> BenchResult`. The modules, bottom to top:

    config     BenchConfig and its checks, auto_processes, the room, descriptors needed
    wire       the only code that knows the bytes: chatkit JSON lines and Redis RESP
    result     BenchResult: what a run measured (plain data)
    merge      ShardReport, and merging the shards' reports into a BenchResult exactly
    progress   the on_progress seam (the command line draws it)
    sender     a sending client: window, pacing
    connect    opening one connection and its handshake
    spread     several servers: which senders are on another one; the hot loop that keeps
               the cross-server latencies apart
    shard      one process's share: connections, the receiving hot loop, its report
    worker     a worker process: one shard driven over a pipe, pacing between workers
    runner     run_bench: the phases for 1..P processes
"""

from chatkit.bench.config import TARGETS, BenchConfig, SettingError, auto_processes, room_for
from chatkit.bench.progress import ProgressCallback
from chatkit.bench.result import BenchResult
from chatkit.bench.runner import run_bench

__all__ = ["BenchConfig", "BenchResult", "ProgressCallback", "SettingError", "TARGETS",
           "auto_processes", "room_for", "run_bench"]
