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

Receiving is the generator's hot loop, so it never decodes JSON: one compiled regex pulls the
`@@sender:seq:ns@@` marker out of every complete line of a chunk.

One process tops out near one core (~0.6 µs per delivery), so with `processes` > 1 the clients
are spread over that many worker processes (chatkit/benchworkers.py), each an event loop with
its own `_Bench` shard: connection i lives in worker i % P, so a sender's acks (its own echo)
arrive in its own worker, and in max mode no sender runs far ahead of the slowest worker. The
calling process coordinates the phases (connected, go, final sequence numbers, drained, close)
over pipes and merges the shards' counts exactly (`_merge`). `processes=1` runs everything in
the calling process. The CPU report covers all processes: cores used while sending, and the
busiest process's share of one core (near 100%: the generator was the bottleneck).

Importable without click; the entry point is `run_bench(BenchConfig(...)) -> BenchResult`.
"""

from __future__ import annotations

import array
import asyncio
import json
import math
import os
import re
import secrets
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from chatkit.errors import ConfigError, RefusedError, UnreachableError
from chatkit.net.addresses import format_address
from chatkit.net.sockets import raise_fd_limit
from chatkit.protocol import DEFAULT_PORT, MAX_TEXT, PROTOCOL_VERSION, sanitize_text
from chatkit.tls import client_context

TARGETS = ("chatkit", "redis")

#: Latency samples kept before halving (memory and sort time stay bounded on long runs).
_MAX_SAMPLES = 1_000_000
#: Messages per second over all senders that `--rate` may ask for (also keeps inf and nan out)
_MAX_RATE = 10_000_000.0
#: Hard bound on messages per sender when no count is given (the duration bounds it first).
_MAX_MESSAGES = 10_000_000
#: In rate mode, how many messages a sender may have in flight before it waits.
_RATE_WINDOW = 1000
#: Receive buffer of a stalled client (the kernel doubles it and rounds it up)
_STALLED_RCVBUF = 4096
#: `tcpi_state` of a connection nobody has closed (linux/tcp_states.h)
_TCP_ESTABLISHED = 1


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
    #: print a progress line to stderr while running
    progress: bool = False
    #: generator processes, each with its own event loop and every P-th client (see
    #: `auto_processes`); 1 runs in the calling process
    processes: int = 1

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"unknown target {self.target!r}; use one of {', '.join(TARGETS)}")
        if self.clients < 1:
            raise ConfigError("--clients must be at least 1")
        if not 0 <= self.senders <= self.clients:
            raise ConfigError("--senders must be between 0 and --clients")
        if self.rate is not None and not (0 < self.rate < _MAX_RATE):
            raise ConfigError(f"--rate must be a positive number below {_MAX_RATE:,.0f}")
        if self.duration <= 0:
            raise ConfigError("--duration must be positive")
        if self.messages is not None and self.messages < 1:
            raise ConfigError("--messages must be at least 1")
        if not 0 <= self.size <= MAX_TEXT:
            raise ConfigError(f"--size must be between 0 and {MAX_TEXT}")
        if self.window < 1:
            raise ConfigError("--window must be at least 1")
        if self.tls and self.target == "redis":
            raise ConfigError("TLS is not supported with the Redis target")
        if not 1 <= self.processes <= self.clients:
            raise ConfigError("--processes must be between 1 and --clients")


@dataclass
class BenchResult:
    """What a run measured. `to_dict()` is the `--json` output."""

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
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    per_sender: list[dict[str, int]] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    stalled_disconnected: int = 0
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

    def summary(self) -> str:
        """A short human-readable report."""
        cfg = self.config
        mode = f"{cfg['rate']:g} msg/s" if cfg["rate"] else f"max (window {cfg['window']})"
        lat = self.latency_ms
        lines = [
            f"target       {cfg['target']} {cfg['host']}:{cfg['port']} room {cfg['room']}"
            + (" (TLS)" if cfg.get("tls") else ""),
            f"load         {self.clients_connected} clients, {cfg['senders']} senders, {mode}, "
            f"{cfg['size']} B text",
            f"connect      {self.clients_connected} clients in {self.connect_s:.2f} s",
            f"sent         {self.sent} messages ({self.messages_per_s:,.0f}/s)",
            f"deliveries   {self.deliveries} of {self.expected_deliveries} in "
            f"{self.elapsed_s:.2f} s = {self.deliveries_per_s:,.0f}/s",
        ]
        if lat:
            lines.append(f"latency ms   p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  "
                         f"p99 {lat['p99']:.2f}  max {lat['max']:.2f}")
        lines.append(f"integrity    lost {self.lost}, duplicated {self.duplicated}, "
                     f"out of order {self.reordered}")
        lines.append(f"errors       {self.errors}" + (f" ({'; '.join(self.error_samples[:3])})"
                                                      if self.error_samples else ""))
        if cfg["stalled"]:
            lines.append(f"stalled      {cfg['stalled']} non-reading clients, "
                         f"{self.stalled_disconnected} disconnected by the server")
        procs = self.generator_processes
        lines.append(f"generator    {procs} process{'es' if procs != 1 else ''}, "
                     f"{self.generator_cpu_s:.2f} CPU s, {self.generator_cpu_util:.2f} cores "
                     f"while sending (busiest process {self.generator_cpu_util_max:.0%})"
                     + ("  (the generator may have been the bottleneck)"
                        if self.generator_cpu_util_max > 0.9 else ""))
        return "\n".join(lines)


def run_bench(config: BenchConfig, on_connected: Callable[[], None] | None = None,
              on_finished: Callable[[], None] | None = None) -> BenchResult:
    """Run one benchmark and return what it measured.

    `on_connected` is called once every client is connected and joined, before any message is
    sent (the benchmark suite reads the server's idle memory there); `on_finished` after the
    last delivery, before the clients disconnect (it reads the server's CPU time there).
    Raises ConfigError for bad settings and UnreachableError when no client (or a sender) can
    connect. With `config.processes` > 1 both callbacks run in this process, which then only
    coordinates the worker processes; those are spawned, so they import the caller's main
    module (a script needs the usual `if __name__ == "__main__":` guard).
    """
    config.validate()
    if config.processes > 1:
        from chatkit.benchworkers import run_processes

        return run_processes(config, on_connected, on_finished)
    _raise_nofile_limit(_descriptors(config, 1))
    return asyncio.run(_Bench(config, on_connected, on_finished).run())


#: Rate mode: deliveries per second one generator process takes at ~60-75% of a core (each
#: message arrives on its own, so a delivery costs ~7 us there, against ~0.6 us at full speed)
_RATE_DELIVERIES_PER_PROCESS = 100_000


def auto_processes(clients: int, rate: float | None = None) -> int:
    """`--processes auto`: at full speed one process per 50 clients; at a set rate one per
    100,000 deliveries/s expected (rate x clients); at most one per core and at most 4.

    A small run stays in one process: nothing to gain, spawning costs ~0.3 s each, and at a
    human rate a second process only adds its scheduling jitter to the latencies measured.
    """
    most = min(os.cpu_count() or 1, 4)
    if rate is None:
        return min(most, max(1, clients // 50))
    expected = rate * clients / _RATE_DELIVERIES_PER_PROCESS
    if not math.isfinite(expected):  # a rate validate() refuses; never fail before it does
        return most
    return min(most, max(1, math.ceil(expected)))


def room_for(config: BenchConfig, run_id: str) -> str:
    """The room of a run: the one asked for, else a fresh one named after the run."""
    return config.room or f"bench-{run_id}"


def _share(config: BenchConfig, processes: int) -> int:
    """Connections the busiest of `processes` generator processes opens."""
    conns = config.clients + config.stalled + (config.senders if config.target == "redis" else 0)
    return -(-conns // processes)


def _descriptors(config: BenchConfig, processes: int) -> int:
    """Descriptors one generator process needs: a socket per connection, and some spare."""
    return _share(config, processes) + 64


def _raise_nofile_limit(needed: int) -> None:
    """Each connection is a descriptor; the default soft limit (often 1024) is too low."""
    soft = raise_fd_limit()
    if soft is not None and soft < needed:
        raise ConfigError(f"this run needs about {needed} file descriptors, the limit is {soft} "
                          "(raise it with `ulimit -n`)")


def _describe_error(line: bytes) -> str:
    """A server's error frame as `code: message`, safe to print (the server may be hostile)."""
    try:
        frame = json.loads(line)
        text = f"{frame['code']}: {frame['message']}"
    except (ValueError, TypeError, KeyError):
        text = line.decode(errors="replace")
    return sanitize_text(text)[:200]


def _percentile(ordered: list[int], fraction: float) -> int:
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


class _Sender:
    """One sending client: builds messages and keeps its window of messages in flight."""

    def __init__(self, bench: _Bench, sid: int) -> None:
        self.bench = bench
        self.sid = sid
        self.seq = 0  # last sequence number sent (they start at 1)
        self.acked = 0
        self.write: Callable[[bytes], None] | None = None
        self.wake = asyncio.Event()
        cfg = bench.config
        self.cap = cfg.messages or _MAX_MESSAGES
        # With several processes: the last of this sender's messages that the slowest worker
        # has received, and how far ahead of it this sender may be (see benchworkers.py)
        self.floor = 0
        self.max_lead = _MAX_MESSAGES
        room = bench.room.encode()
        self._mark = b"@@" + bench.run_id.encode() + b":%d:%d:%d@@"
        if cfg.target == "chatkit":
            self._head = b'{"type":"msg","room":' + json.dumps(bench.room).encode() + b',"ref":'
        else:
            self._head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(room), room)

    @property
    def inflight(self) -> int:
        return self.seq - self.acked

    def frames(self, count: int) -> bytes:
        """The next `count` messages, ready to write."""
        cfg = self.bench.config
        out = []
        for _ in range(count):
            self.seq += 1
            text = self._mark % (self.sid, self.seq, time.monotonic_ns())
            if len(text) < cfg.size:
                text += b"x" * (cfg.size - len(text))
            if cfg.target == "chatkit":
                out.append(b'%s%d,"text":"%s"}\n' % (self._head, self.seq, text))
            else:
                out.append(b"%s$%d\r\n%s\r\n" % (self._head, len(text), text))
        self.bench.sent += count
        return b"".join(out)

    def send(self, count: int) -> None:
        if count > 0 and self.write is not None:
            self.write(self.frames(count))

    def pump(self) -> None:
        """Max mode: top the window up (called at the start and on every acknowledgement)."""
        if self.bench.sending:
            self.send(min(self.bench.config.window - self.inflight, self.cap - self.seq,
                          self.floor + self.max_lead - self.seq))

    def on_ack(self, count: int) -> None:
        self.acked += count
        if self.bench.config.rate is None:
            self.pump()
        else:
            self.wake.set()

    @property
    def done(self) -> bool:
        return self.seq >= self.cap


class _Conn(asyncio.Protocol):
    """One connection. Receivers check every message; a stalled one never reads."""

    def __init__(self, bench: _Bench, index: int, role: str) -> None:
        self.bench = bench
        self.index = index
        self.role = role  # "receiver", "stalled" or "publisher" (Redis only)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tail = b""
        self.sender: _Sender | None = None  # set on a receiver whose own messages are acks
        nsend = bench.config.senders
        self.last = [0] * nsend  # highest sequence number seen, per sender
        self.missing: set[tuple[int, int]] = set()  # gaps that may still arrive late
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        bench = self.bench
        if not self.ready.done():
            self.ready.set_exception(UnreachableError("connection closed during the handshake"))
        elif self.ready.exception() is not None:
            pass  # its handshake failed: counted once, as a connect error
        elif not bench.closing and self.role != "stalled":  # stalled ones: counted at the end
            bench.error(f"client {self.index} disconnected" + (f": {exc}" if exc else ""))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.tail:
            data = self.tail + data
        cut = data.rfind(b"\n") + 1
        if cut != len(data):
            self.tail = data[cut:]
            data = data[:cut]
        else:
            self.tail = b""
        if not data:
            return
        bench = self.bench
        if bench.redis:
            if b"\n-" in data or data.startswith(b"-"):
                bench.error(data[data.find(b"-"):].split(b"\r\n", 1)[0].decode(errors="replace"))
            if self.role == "publisher":
                return  # PUBLISH replies: the count of receivers, not needed
            if not self.ready.done() and b"subscribe" in data:
                self.ready.set_result(None)
        else:
            if b'"type":"error"' in data:
                for line in data.splitlines():
                    if b'"type":"error"' in line:
                        if self.ready.done():
                            bench.error(_describe_error(line))
                        else:  # refused while joining: counted once, as a connect error
                            self.ready.set_exception(RefusedError(_describe_error(line)))
            if not self.ready.done() and b'"type":"joined"' in data:
                self.ready.set_result(None)
            if bench.stalled and b'"type":"quit"' in data:
                bench.note_quits(data)
        marks = bench.marker.findall(data)
        if marks:
            bench.receive(self, marks, now)


class _Bench:
    """One generator process's share of the run (all of it when `shards` is 1).

    Shard k of P owns the connections whose index i has i % P == k, and therefore the senders
    sid % P == k (a sender is client sid); every shard checks every sender's messages.
    """

    def __init__(self, config: BenchConfig, on_connected: Callable[[], None] | None,
                 on_finished: Callable[[], None] | None, *, shard: int = 0, shards: int = 1,
                 run_id: str | None = None) -> None:
        self.config = config
        self.on_connected = on_connected
        self.on_finished = on_finished
        self.shard = shard
        self.shards = shards
        self.redis = config.target == "redis"
        self.run_id = run_id or secrets.token_hex(3)
        self.room = room_for(config, self.run_id)
        # The marker every message text starts with: this run's id, then sender, sequence
        # number and send time; letters and digits only, so it survives sanitising.
        self.marker = re.compile(b"@@" + self.run_id.encode() + rb":(\d+):(\d+):(\d+)@@")
        self.receivers: list[_Conn] = []
        self.stalled: list[_Conn] = []
        self.publishers: list[_Conn] = []
        self.senders: list[_Sender] = []
        self.sent = 0  # by this shard's senders
        self.deliveries = 0
        #: deliveries this shard's receivers must get; known once every sender has stopped
        self.drain_at = sys.maxsize
        self.connect_s = 0.0
        self.sending = False
        self.closing = False
        self.samples = array.array("q")
        self.stride = 1  # keep every stride-th latency once _MAX_SAMPLES were reached
        self.sample_tick = 0
        self.max_latency = 0
        self.first_send = 0
        self.last_delivery = 0
        self.dup = [0] * config.senders
        self.reordered = [0] * config.senders
        self.errors = 0
        self.error_samples: list[str] = []
        # every stalled nick of the run: any shard's receivers may see its `quit`
        self.stalled_nicks = {f"bench{self.run_id}_{config.clients + i}"
                              for i in range(config.stalled)}
        self.stalled_gone: set[str] = set()
        #: stalled nick -> dropped by the server, as this shard's own sockets show (at close)
        self.stalled_state: dict[str, bool] = {}
        self.drained = asyncio.Event()
        self.tls: ssl.SSLContext | None = None
        if config.tls:
            self.tls = client_context()  # encrypted, not pinned: bench measures speed

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(text)

    # ------------------------------------------------------------------ receiving (hot)

    def receive(self, conn: _Conn, marks: list[tuple[bytes, bytes, bytes]], now: int) -> None:
        last = conn.last
        own = conn.sender.sid if conn.sender is not None else -1
        acks = 0
        samples = self.samples
        stride = self.stride
        tick = self.sample_tick
        worst = self.max_latency
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
                self.reordered[sid] += 1
            else:
                self.dup[sid] += 1
            latency = now - int(ts_b)
            if latency > worst:
                worst = latency
            tick += 1
            if tick >= stride:
                tick = 0
                samples.append(latency)
            if sid == own:
                acks += 1
        self.sample_tick = tick
        self.max_latency = worst
        self.deliveries += len(marks)
        self.last_delivery = now
        if len(samples) >= _MAX_SAMPLES:
            self.samples = array.array("q", samples[::2])
            self.stride *= 2
        if acks:
            conn.sender.on_ack(acks)  # type: ignore[union-attr]
        if self.deliveries >= self.drain_at:
            self.drained.set()

    # ------------------------------------------------------------------ phases

    async def run(self) -> BenchResult:
        """The whole run in this process (`processes=1`)."""
        cfg = self.config
        result = BenchResult(config={**asdict(cfg), "room": self.room})
        cpu0, wall0 = time.process_time(), time.monotonic()
        progress = asyncio.create_task(self._progress()) if cfg.progress else None
        try:
            await self.connect_all()
            if self.on_connected is not None:
                self.on_connected()
            cpu1, wall1 = time.process_time(), time.monotonic()
            await self.send_all()
            self.expect_total(self.sent)
            await self.drain()
            cpu2, wall2 = time.process_time(), time.monotonic()
            if self.on_finished is not None:
                self.on_finished()
        finally:
            if progress is not None:
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
                print(file=sys.stderr)
            await self.close()
        seqs = [sender.seq for sender in self.senders]
        _merge(result, seqs, [self.partial(seqs)])
        result.generator_cpu_s = time.process_time() - cpu0
        result.generator_wall_s = time.monotonic() - wall0
        result.generator_cpu_util = (cpu2 - cpu1) / max(1e-9, wall2 - wall1)
        result.generator_cpu_util_max = result.generator_cpu_util
        result.generator_processes = 1
        return result

    async def close(self) -> None:
        """Note which stalled clients the server dropped, then drop every connection."""
        self.closing = True
        self.sending = False
        self.stalled_state = self._stalled_state()
        for conn in (*self.receivers, *self.stalled, *self.publishers):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks

    def note_quits(self, data: bytes) -> None:
        """Receivers see the server's `quit` event when it disconnects a stalled client."""
        for line in data.splitlines():
            if b'"type":"quit"' in line:
                try:
                    nick = json.loads(line).get("nick")
                except ValueError:
                    continue
                if nick in self.stalled_nicks:
                    self.stalled_gone.add(nick)

    def _stalled_state(self) -> dict[str, bool]:
        """Per stalled client of this shard: whether its own connection shows it was dropped.

        A paused transport never reads, so it never sees the server's FIN (which waits behind
        the unread data anyway): chatkit's `quit` event to the others tells (`stalled_gone`,
        possibly seen by another shard), and otherwise the kernel's TCP state (Linux TCP_INFO)
        shows a reset.
        """
        tcp_info = getattr(socket, "TCP_INFO", None)
        state: dict[str, bool] = {}
        for conn in self.stalled:
            nick = self._nick(conn.index)
            state[nick] = conn.closed
            if conn.closed or conn.transport is None or tcp_info is None:
                continue
            sock = conn.transport.get_extra_info("socket")
            try:
                tcp_state = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 1)[0]
            except (OSError, AttributeError):
                continue
            state[nick] = tcp_state != _TCP_ESTABLISHED
        return state

    def _nick(self, index: int) -> str:
        return f"bench{self.run_id}_{index}"

    async def _create(self, loop: asyncio.AbstractEventLoop, factory: Callable[[], _Conn],
                      stalled: bool) -> tuple[asyncio.BaseTransport, _Conn]:
        cfg = self.config
        if not stalled:
            return await loop.create_connection(factory, cfg.host, cfg.port, ssl=self.tls)
        # A client that never reads, with a small receive buffer: the kernel then holds a few
        # KiB instead of megabytes, so the server's own bounded backlog is what fills up.
        infos = await loop.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _STALLED_RCVBUF)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return await loop.create_connection(
                factory, sock=sock, ssl=self.tls,
                server_hostname=cfg.host if self.tls is not None else None)
        except BaseException:
            sock.close()
            raise

    async def _open(self, index: int, role: str, gate: asyncio.Semaphore) -> _Conn:
        cfg = self.config
        loop = asyncio.get_running_loop()
        async with gate:
            try:
                _, conn = await asyncio.wait_for(
                    self._create(loop, lambda: _Conn(self, index, role), stalled=role ==
                                 "stalled"), cfg.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise UnreachableError(f"cannot connect to {format_address(cfg.host, cfg.port)}"
                                       f": {reason}") from None
            assert conn.transport is not None
            if role == "publisher":
                conn.ready.set_result(None)
                return conn
            if self.redis:
                room = self.room.encode()
                conn.transport.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(room), room))
            else:
                hello = {"type": "hello", "version": PROTOCOL_VERSION, "room": self.room,
                         "nick": self._nick(index), "client": "chatkit bench"}
                conn.transport.write(json.dumps(hello).encode() + b"\n")
            try:
                await asyncio.wait_for(asyncio.shield(conn.ready), cfg.connect_timeout)
            except asyncio.TimeoutError:
                conn.transport.abort()
                raise UnreachableError(f"client {index}: no answer to the handshake within "
                                       f"{cfg.connect_timeout:g} s") from None
            except (UnreachableError, RefusedError):
                conn.transport.abort()
                raise
            if role == "stalled":
                conn.transport.pause_reading()  # never read again: the server must cope
            return conn

    async def connect_all(self) -> None:
        cfg = self.config
        started = time.monotonic()
        gate = asyncio.Semaphore(cfg.connect_concurrency)
        plan = [(i, "receiver") for i in range(cfg.clients)]
        plan += [(cfg.clients + i, "stalled") for i in range(cfg.stalled)]
        if self.redis:
            plan += [(i, "publisher") for i in range(cfg.senders)]
        plan = [(i, role) for i, role in plan if i % self.shards == self.shard]
        outcomes = await asyncio.gather(*(self._open(i, role, gate) for i, role in plan),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for outcome in failures:
            self.error(f"connect: {outcome}")
        conns = [o for o in outcomes if isinstance(o, _Conn)]
        by_role: dict[str, dict[int, _Conn]] = {"receiver": {}, "stalled": {}, "publisher": {}}
        for conn in conns:
            by_role[conn.role][conn.index] = conn
        self.receivers = sorted(by_role["receiver"].values(), key=lambda c: c.index)
        self.stalled = list(by_role["stalled"].values())
        self.publishers = sorted(by_role["publisher"].values(), key=lambda c: c.index)
        for sid in range(self.shard, cfg.senders, self.shards):
            receiver = by_role["receiver"].get(sid)
            writer = by_role["publisher"].get(sid) if self.redis else receiver
            if receiver is None or writer is None or writer.transport is None:
                for conn in conns:
                    if conn.transport is not None:
                        conn.transport.abort()
                first = failures[0] if failures else "lost"
                kind = RefusedError if isinstance(first, RefusedError) else UnreachableError
                raise kind(f"sender {sid} could not connect ({first}); "
                           f"{len(failures)} connections failed")
            sender = _Sender(self, sid)
            sender.write = writer.transport.write
            receiver.sender = sender
            self.senders.append(sender)
        self.connect_s = time.monotonic() - started

    async def send_all(self) -> None:
        """Send for `duration`, or until every sender of this shard sent `messages`."""
        cfg = self.config
        if not cfg.senders:
            await asyncio.sleep(min(cfg.duration, 1.0))  # connect-only run
            return
        if not self.senders:
            return  # a worker whose share holds no sender only receives
        self.first_send = time.monotonic_ns()
        self.sending = True
        deadline = time.monotonic() + cfg.duration
        if cfg.rate is None:
            for sender in self.senders:
                sender.pump()
            while time.monotonic() < deadline and not all(s.done for s in self.senders):
                await asyncio.sleep(0.02)
        else:
            await asyncio.gather(*(self._paced(s, deadline) for s in self.senders))
        self.sending = False

    def expect_total(self, sent: int) -> None:
        """All senders together sent `sent` messages: each receiver here must get them all."""
        self.drain_at = sent * len(self.receivers)
        if self.deliveries >= self.drain_at:
            self.drained.set()

    async def drain(self) -> None:
        try:
            await asyncio.wait_for(self.drained.wait(), self.config.drain_timeout)
        except asyncio.TimeoutError:
            pass  # what did not arrive is reported as lost

    async def _paced(self, sender: _Sender, deadline: float) -> None:
        """Send at rate/senders per second on a fixed schedule, staggered between senders."""
        cfg = self.config
        assert cfg.rate is not None
        interval = cfg.senders / cfg.rate  # all senders, wherever they run, share the rate
        start = time.monotonic() + interval * sender.sid / cfg.senders
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        while not sender.done:
            now = time.monotonic()
            if now >= deadline:
                return
            due = min(int((now - start) / interval) + 1, sender.cap)
            if sender.seq < due:
                if sender.inflight >= _RATE_WINDOW:  # the server is far behind: wait for it
                    sender.wake.clear()
                    try:
                        await asyncio.wait_for(sender.wake.wait(), deadline - now)
                    except asyncio.TimeoutError:
                        return
                    continue
                sender.send(min(due - sender.seq, _RATE_WINDOW - sender.inflight))
                continue
            await asyncio.sleep(max(0.0, start + sender.seq * interval - time.monotonic()))

    @property
    def phase(self) -> str:
        return "sending" if self.sending else ("connecting" if not self.first_send
                                               else "draining")

    async def _progress(self) -> None:
        line = ProgressLine()
        while True:
            await asyncio.sleep(0.5)
            line.show(self.phase, self.sent, self.deliveries, self.errors, len(self.receivers))

    # ------------------------------------------------------------------ report

    def partial(self, seqs: list[int]) -> dict[str, Any]:
        """What this shard measured, with losses counted against `seqs`: every sender's last
        sequence number (over all shards). Plain data, so a worker can pipe it back."""
        lost = [0] * len(seqs)
        for sid, final in enumerate(seqs):
            for conn in self.receivers:
                if conn.missing:
                    lost[sid] += sum(1 for s, _ in conn.missing if s == sid)
                lost[sid] += final - conn.last[sid]
        return {
            "receivers": len(self.receivers), "connect_s": self.connect_s,
            "deliveries": self.deliveries, "first_send": self.first_send,
            "last_delivery": self.last_delivery, "samples": self.samples,
            "stride": self.stride, "max_latency": self.max_latency, "lost": lost,
            "duplicated": self.dup, "reordered": self.reordered, "errors": self.errors,
            "error_samples": self.error_samples,
            "stalled": self.stalled_state,
            "stalled_gone": sorted(self.stalled_gone),
        }


def _merge(result: BenchResult, seqs: list[int], parts: list[dict[str, Any]]) -> None:
    """Fill `result` from the shards' `partial()`s; `seqs[sid]` is what sender sid sent."""
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
    samples = array.array("q")
    for p in parts:
        samples.extend(p["samples"][::stride // p["stride"]])
    if samples:
        ordered = sorted(samples)
        result.latency_ms = {
            "p50": _percentile(ordered, 0.50) / 1e6,
            "p95": _percentile(ordered, 0.95) / 1e6,
            "p99": _percentile(ordered, 0.99) / 1e6,
            "max": max(p["max_latency"] for p in parts) / 1e6,
        }
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
    gone = {nick for p in parts for nick in p["stalled_gone"]}
    result.stalled_disconnected = sum(1 for p in parts for nick, dropped in p["stalled"].items()
                                      if dropped or nick in gone)


class ProgressLine:
    """The progress line on stderr, rewritten in place (one process or a coordinator)."""

    def __init__(self) -> None:
        self.start = self.previous_t = time.monotonic()
        self.previous = 0

    def show(self, phase: str, sent: int, deliveries: int, errors: int, clients: int) -> None:
        now = time.monotonic()
        rate = (deliveries - self.previous) / max(1e-9, now - self.previous_t)
        self.previous, self.previous_t = deliveries, now
        sys.stderr.write(f"\r{now - self.start:6.1f} s  {phase:<10}  sent {sent:>9,}  "
                         f"deliveries {deliveries:>11,}  {rate:>11,.0f}/s  errors {errors}"
                         + (f"  clients {clients}" if clients else "") + "   ")
        sys.stderr.flush()


def main_json(result: BenchResult) -> str:
    """The `--json` output: one JSON object on one line."""
    return json.dumps(result.to_dict(), separators=(",", ":"))


def stderr_is_tty() -> bool:
    """Whether a progress line on stderr would reach a person."""
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # replaced or captured stderr
        return False


__all__ = ["BenchConfig", "BenchResult", "auto_processes", "run_bench", "TARGETS"]
