"""A run spread over several servers (the nodes of one cluster): which sender is on another
server than a receiver, and the receiving hot loop of such a run, which keeps the latencies of
deliveries between servers apart from the others.

Connection i goes to server i % n (`BenchConfig.address`), and sender sid is connection sid,
so sender sid is on server sid % n. A run over one server never comes here: `Shard.receive`
stays the hot loop it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatkit.bench.config import MAX_SAMPLES

if TYPE_CHECKING:
    from chatkit.bench.shard import Conn, Shard

def crossing(index: int, nodes: int, senders: int) -> list[bool]:
    """Per sender: whether it is on another server than connection `index` ([] for one)."""
    if nodes <= 1:
        return []
    node = index % nodes
    return [sid % nodes != node for sid in range(senders)]


def receive_spread(shard: Shard, conn: Conn, marks: list[tuple[bytes, bytes, bytes]],
                   now: int) -> None:
    """`Shard.receive` for a run over several servers: the same checks and counts, with
    each latency in `shard.samples` and `shard.max_latency` (same server) or
    `shard.cross_samples` and `shard.cross_max` (another). One stride for both, so every kept
    sample stands for as many deliveries."""
    last = conn.last
    crosses = conn.crossing
    own = conn.sender.sid if conn.sender is not None else -1
    acks = 0
    samples = shard.samples
    cross = shard.cross_samples
    stride = shard.stride
    tick = shard.sample_tick
    worst = shard.max_latency
    cross_worst = shard.cross_max
    for sid_b, seq_b, ts_b in marks:
        sid = int(sid_b)
        seq = int(seq_b)
        previous = last[sid]
        if seq == previous + 1:
            last[sid] = seq
        elif seq > previous:
            conn.missing.update((sid, n) for n in range(previous + 1, seq))
            last[sid] = seq
        elif (sid, seq) in conn.missing:
            conn.missing.discard((sid, seq))
            shard.reordered[sid] += 1
        else:
            shard.dup[sid] += 1
        latency = now - int(ts_b)
        tick += 1
        if crosses[sid]:
            if latency > cross_worst:
                cross_worst = latency
            if tick >= stride:
                tick = 0
                cross.append(latency)
        else:
            if latency > worst:
                worst = latency
            if tick >= stride:
                tick = 0
                samples.append(latency)
        if sid == own:
            acks += 1
    shard.sample_tick = tick
    shard.max_latency = worst
    shard.cross_max = cross_worst
    shard.deliveries += len(marks)
    shard.last_delivery = now
    if len(samples) + len(cross) >= MAX_SAMPLES:
        shard.samples = samples[::2]
        shard.cross_samples = cross[::2]
        shard.stride *= 2
    if acks:
        conn.sender.on_ack(acks)  # type: ignore[union-attr]
    if shard.deliveries >= shard.drain_at:
        shard.drained.set()
