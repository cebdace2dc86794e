"""One generator process's share of a benchmark run: its connections (`Conn`), its senders, the
receiving hot loop that checks every delivery, and what it measured (`report`).

Shard k of P owns the connections whose index i has i % P == k, and therefore the senders
sid % P == k (a sender is client sid, so its acks, its own echo, arrive in its own shard);
every shard checks every sender's messages. The runner drives a shard through its phases:
`connect_all`, `send_all`, `expect_total` + `drain`, `close`, `report`.

Receiving is the generator's hot loop: `Conn.data_received` cuts a chunk after its last
complete line, checks it for the few frames that are not messages with `in`, and hands the
markers the wire's regex found to `Shard.receive`, which never decodes JSON.
"""

from __future__ import annotations

import array
import asyncio
import socket
import ssl
import sys
import time

from chatkit.bench import wire
from chatkit.bench.config import MAX_SAMPLES, BenchConfig, room_for
from chatkit.bench.connect import open_connection
from chatkit.bench.merge import ShardReport
from chatkit.bench.sender import Sender, SendState
from chatkit.bench.spread import crossing, receive_spread
from chatkit.bench.wire import LINE_END, RATE_LIMITED_TAG, SUBSCRIBED_TAG, WELCOME_TAG
from chatkit.errors import REFUSAL_PREFIX, RefusedError, ServerRefusal, UnreachableError
from chatkit.tls import client_context

#: `tcpi_state` of a connection nobody has closed (linux/tcp_states.h)
_TCP_ESTABLISHED = 1


class Conn(asyncio.Protocol):
    """One connection. Receivers check every message; a stalled one never reads."""

    def __init__(self, shard: Shard, index: int, role: str) -> None:
        self.shard = shard
        self.index = index
        self.role = role  # "receiver", "stalled" or "publisher" (Redis only)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tail = b""
        self.sender: Sender | None = None  # set on a receiver whose own messages are acks
        self.last = [0] * shard.config.senders  # highest sequence number seen, per sender
        self.missing: set[tuple[int, int]] = set()  # gaps that may still arrive late
        self.closed = False
        #: over several servers: per sender, whether it is on another server than this one
        self.crossing = crossing(index, shard.nodes, shard.config.senders)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        shard = self.shard
        if not self.ready.done():
            self.ready.set_exception(UnreachableError("connection closed during the handshake"))
        elif self.ready.exception() is not None:
            pass  # its handshake failed: counted once, as a connect error
        elif not shard.closing and self.role != "stalled":  # stalled ones: counted at the end
            shard.error(f"client {self.index} disconnected" + (f": {exc}" if exc else ""))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.tail:
            data = self.tail + data
        cut = data.rfind(LINE_END) + 1
        if cut != len(data):
            self.tail = data[cut:]
            data = data[:cut]
        else:
            self.tail = b""
        if not data:
            return
        shard = self.shard
        if shard.redis:
            failure = wire.redis_error(data)
            if failure is not None:
                shard.error(failure)
            if self.role == "publisher":
                return  # PUBLISH replies: the count of receivers, not needed
            if not self.ready.done() and SUBSCRIBED_TAG in data:
                self.ready.set_result(None)
        else:
            if not self.ready.done():
                if data.startswith(REFUSAL_PREFIX):  # refused before any protocol (plain)
                    self.ready.set_exception(ServerRefusal(wire.refusal_reason(data)))
                    return
                if WELCOME_TAG in data and not shard.limits:
                    shard.limits = wire.announced_limits(data)
            error_tag, joined_tag, quit_tag = shard.tags
            if error_tag in data:
                for line in wire.error_lines(data, error_tag):
                    if RATE_LIMITED_TAG in line:
                        shard.rate_limited += 1
                    if self.ready.done():
                        shard.error(wire.describe_error(line))
                    else:  # refused while joining: counted once, as a connect error
                        self.ready.set_exception(RefusedError(wire.describe_error(line)))
            if not self.ready.done() and joined_tag in data:
                self.ready.set_result(None)
            if shard.stalled and quit_tag in data:
                shard.note_quits(data)
        marks = shard.marker.findall(data)
        if marks:
            if shard.nodes > 1:
                receive_spread(shard, self, marks, now)
            else:
                shard.receive(self, marks, now)


class Shard:
    """One generator process's share of the run (all of it when `shards` is 1)."""

    def __init__(self, config: BenchConfig, run_id: str, *, shard: int = 0,
                 shards: int = 1) -> None:
        self.config = config
        self.shard = shard
        self.shards = shards
        self.redis = config.target == "redis"
        self.tags = wire.tags(config.target)  # chatkit's or IRC's error, joined, quit
        self.run_id = run_id
        self.room = room_for(config, run_id)
        self.marker = wire.marker(run_id)
        self.receivers: list[Conn] = []
        self.stalled: list[Conn] = []
        self.publishers: list[Conn] = []
        self.senders: list[Sender] = []
        self.state = SendState()  # sending on/off and messages sent by this shard's senders
        self.deliveries = 0
        #: deliveries this shard's receivers must get; known once every sender has stopped
        self.drain_at = sys.maxsize
        self.connect_s = 0.0
        self.closing = False
        self.samples = array.array("q")
        #: over several servers: the kept latencies of deliveries between servers (the others
        #: stay in `samples`), and the worst of them
        self.nodes = len(config.servers())
        self.cross_samples = array.array("q")
        self.cross_max = 0
        self.stride = 1  # keep every stride-th latency once MAX_SAMPLES were reached
        self.sample_tick = 0
        self.max_latency = 0
        self.first_send = 0
        self.last_delivery = 0
        self.dup = [0] * config.senders
        self.reordered = [0] * config.senders
        self.errors = 0
        self.error_samples: list[str] = []
        #: the per-client limits the server announced (`welcome`), rate_limited answers seen
        self.limits: dict[str, float] = {}
        self.rate_limited = 0
        # every stalled nick of the run: any shard's receivers may see its `quit`
        self.stalled_nicks = {self.nick(config.clients + i) for i in range(config.stalled)}
        self.stalled_gone: set[str] = set()
        #: stalled nick -> dropped by the server, as this shard's own sockets show (at close)
        self.stalled_state: dict[str, bool] = {}
        self.drained = asyncio.Event()
        self.tls: ssl.SSLContext | None = None
        if config.tls:
            self.tls = client_context()  # encrypted, not pinned: bench measures speed

    @property
    def sent(self) -> int:
        return self.state.sent

    @property
    def phase(self) -> str:
        return "sending" if self.state.sending else ("connecting" if not self.first_send
                                                     else "draining")

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(text)

    def nick(self, index: int) -> str:
        return f"bench{self.run_id}_{index}"

    # ------------------------------------------------------------------ receiving (hot)

    def receive(self, conn: Conn, marks: list[tuple[bytes, bytes, bytes]], now: int) -> None:
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
        if len(samples) >= MAX_SAMPLES:
            self.samples = array.array("q", samples[::2])
            self.stride *= 2
        if acks:
            conn.sender.on_ack(acks)  # type: ignore[union-attr]
        if self.deliveries >= self.drain_at:
            self.drained.set()

    def note_quits(self, data: bytes) -> None:
        """Receivers see the server's `quit` event when it disconnects a stalled client."""
        for nick in wire.quit_nicks(data, self.config.target):
            if nick in self.stalled_nicks:
                self.stalled_gone.add(nick)

    # ------------------------------------------------------------------ phases

    async def _open(self, index: int, role: str, gate: asyncio.Semaphore) -> Conn:
        if role == "publisher":
            handshake = None
        elif self.redis:
            handshake = wire.subscribe(self.room)
        elif self.config.target == "irc":
            handshake = wire.irc_hello(self.room, self.nick(index))
        else:
            handshake = wire.hello(self.room, self.nick(index))
        async with gate:
            return await open_connection(self.config, self.tls, lambda: Conn(self, index, role),
                                         index, role, handshake)

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
        conns = [o for o in outcomes if isinstance(o, Conn)]
        by_role: dict[str, dict[int, Conn]] = {"receiver": {}, "stalled": {}, "publisher": {}}
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
                message = f"sender {sid} could not connect ({first}); " \
                          f"{len(failures)} connections failed"
                if isinstance(first, RefusedError):
                    raise RefusedError(message, remedy=limit_remedy(first))
                raise UnreachableError(message)
            encoder = wire.MessageEncoder(cfg.target, self.run_id, self.room, cfg.size)
            sender = Sender(cfg, sid, encoder, self.state, writer.transport.write)
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
        self.state.sending = True
        deadline = time.monotonic() + cfg.duration
        if cfg.rate is None:
            for sender in self.senders:
                sender.pump()
            while time.monotonic() < deadline and not all(s.done for s in self.senders):
                await asyncio.sleep(0.02)
        else:
            await asyncio.gather(*(s.paced(deadline) for s in self.senders))
        self.state.sending = False

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

    async def close(self) -> None:
        """Note which stalled clients the server dropped, then drop every connection."""
        self.closing = True
        self.state.sending = False
        self.stalled_state = self._stalled_state()
        for conn in (*self.receivers, *self.stalled, *self.publishers):
            if conn.transport is not None:
                conn.transport.abort()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks

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
            nick = self.nick(conn.index)
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

    # ------------------------------------------------------------------ report

    def report(self, seqs: list[int]) -> ShardReport:
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
            "limits": self.limits, "rate_limited": self.rate_limited,
            "stalled": self.stalled_state,
            "stalled_gone": sorted(self.stalled_gone),
            "cross_samples": self.cross_samples, "cross_max_latency": self.cross_max,
        }


def limit_remedy(refusal: Exception) -> str | None:
    """The remedy key for a refusal a server's own connection limits caused, if it was one."""
    if isinstance(refusal, ServerRefusal) and ("too many connections" in refusal.reason
                                               or "server full" in refusal.reason):
        return "lift_server_limits"
    return None
