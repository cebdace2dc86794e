"""A sending client of a benchmark: its sequence numbers, its window of messages in flight, the
pacing of rate mode, and the shard-wide sending switch and count (`SendState`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatkit.bench.config import MAX_MESSAGES, BenchConfig
from chatkit.bench.wire import MessageEncoder

#: In rate mode, how many messages a sender may have in flight before it waits.
RATE_WINDOW = 1000


@dataclass
class SendState:
    """What every sender of a shard shares: whether sending is on, and how many were sent."""

    sending: bool = False
    sent: int = 0


class Sender:
    """One sending client: builds messages and keeps its window of messages in flight."""

    def __init__(self, config: BenchConfig, sid: int, encoder: MessageEncoder,
                 state: SendState, write: Callable[[bytes], None]) -> None:
        self.config = config
        self.sid = sid
        self.batch = encoder.batch
        self.state = state
        self.write = write
        self.seq = 0  # last sequence number sent (they start at 1)
        self.acked = 0
        self.wake = asyncio.Event()
        self.cap = config.messages or MAX_MESSAGES
        # With several processes: the last of this sender's messages that the slowest worker
        # has received, and how far ahead of it this sender may be (see worker.py)
        self.floor = 0
        self.max_lead = MAX_MESSAGES

    @property
    def inflight(self) -> int:
        return self.seq - self.acked

    def send(self, count: int) -> None:
        if count > 0:
            data = self.batch(self.sid, self.seq + 1, count)
            self.seq += count
            self.state.sent += count
            self.write(data)

    def pump(self) -> None:
        """Max mode: top the window up (called at the start and on every acknowledgement)."""
        if self.state.sending:
            self.send(min(self.config.window - self.inflight, self.cap - self.seq,
                          self.floor + self.max_lead - self.seq))

    def on_ack(self, count: int) -> None:
        self.acked += count
        if self.config.rate is None:
            self.pump()
        else:
            self.wake.set()

    @property
    def done(self) -> bool:
        return self.seq >= self.cap

    async def paced(self, deadline: float) -> None:
        """Send at rate/senders per second on a fixed schedule, staggered between senders."""
        cfg = self.config
        assert cfg.rate is not None
        interval = cfg.senders / cfg.rate  # all senders, wherever they run, share the rate
        start = time.monotonic() + interval * self.sid / cfg.senders
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        while not self.done:
            now = time.monotonic()
            if now >= deadline:
                return
            due = min(int((now - start) / interval) + 1, self.cap)
            if self.seq < due:
                if self.inflight >= RATE_WINDOW:  # the server is far behind: wait for it
                    self.wake.clear()
                    try:
                        await asyncio.wait_for(self.wake.wait(), deadline - now)
                    except asyncio.TimeoutError:
                        return
                    continue
                self.send(min(due - self.seq, RATE_WINDOW - self.inflight))
                continue
            await asyncio.sleep(max(0.0, start + self.seq * interval - time.monotonic()))
