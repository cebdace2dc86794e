"""A generator worker process (`processes` > 1): one event loop running one `Shard` of the run,
told through a pipe when to move to the next phase (see runner.py for the whole exchange).

In max mode a sender waits only for its own echo, which arrives in its own worker, so without
a check one worker's receivers could fall further and further behind another's senders (until
the server drops them for their backlog). So every worker publishes, every few milliseconds, how
far its receivers got in each sender's sequence (a shared array, no messages), and a sender
stays at most `lead()` messages ahead of the slowest worker.

A worker's error goes back as (class name, one line); a worker seeing EOF on its pipe (the
coordinator stopped it, or is gone) stops at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from chatkit.bench.config import MAX_MESSAGES, BenchConfig, share
from chatkit.bench.progress import PROGRESS_S
from chatkit.bench.shard import Shard
from chatkit.errors import ChatkitError

#: Starting an interpreter and importing chatkit, on a machine the benchmark keeps busy.
SPAWN_S = 60.0
#: Added to every phase's own bound (duration, drain timeout) for scheduling and pickling.
SLACK_S = 30.0
#: How often a worker publishes its receivers' progress and reads the others'.
_PACE_S = 0.005
#: Max mode: how many bytes of messages (all senders together) any sender may be ahead of the
#: slowest worker's receivers; well under the server's default backlog limit (1 MiB).
_LEAD_BYTES = 256 * 1024


def connect_bound(config: BenchConfig) -> float:
    """Longest a worker may take to connect its share: each connection waits at most
    connect_timeout for TCP and again for the handshake, `connect_concurrency` at a time."""
    waves = -(-share(config, config.processes) // config.connect_concurrency)
    return SPAWN_S + 2 * config.connect_timeout * max(1, waves)


def lead(config: BenchConfig) -> int:
    """Messages a sender may be ahead of the slowest worker (never less than its window)."""
    frame = config.size + 100  # the event's JSON around the text, roughly
    return max(config.window, _LEAD_BYTES // (max(1, config.senders) * frame))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _Link:
    """The worker's end of its pipe, read from the event loop."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.watching = True
        try:
            self.loop.add_reader(conn.fileno(), self._readable)
        except NotImplementedError:  # Windows' proactor loop: a thread reads the pipe instead
            self.watching = False
            threading.Thread(target=self._read_thread, name="bench-link", daemon=True).start()

    def _readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            message = None
        self._deliver(message)

    def _read_thread(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = None
            try:
                self.loop.call_soon_threadsafe(self._deliver, message)
            except RuntimeError:  # the loop is closed: the worker is done
                return
            if message is None or message[0] == "close":  # nothing follows "close"
                return

    def _deliver(self, message: tuple[str, Any] | None) -> None:
        if message is not None:
            self.inbox.put_nowait(message)
            return
        # EOF: the coordinator stopped us or is gone, so nobody is left to report to.
        self.close()
        if self.task is not None:
            self.task.cancel()

    async def expect(self, kind: str) -> Any:
        try:
            message = await asyncio.wait_for(self.inbox.get(), self.timeout)
        except asyncio.TimeoutError:
            raise ChatkitError(f"no {kind!r} from the bench coordinator within "
                               f"{self.timeout:g} s") from None
        if message[0] != kind:
            raise ChatkitError(f"the bench coordinator sent {message[0]!r} when {kind!r} was due")
        return message[1]

    def send(self, kind: str, payload: Any) -> None:
        self.conn.send((kind, payload))

    def close(self) -> None:
        if self.watching:
            self.watching = False
            self.loop.remove_reader(self.conn.fileno())


async def _report_progress(shard: Shard, link: _Link) -> None:
    while True:
        await asyncio.sleep(PROGRESS_S)
        link.send("progress", (shard.sent, shard.deliveries, shard.errors))


async def _keep_pace(shard: Shard, heard: Any) -> None:
    """Publish how far this worker's receivers got; hold senders near the slowest worker."""
    count = shard.config.senders
    mine = shard.shard * count
    rows = range(0, shard.shards * count, count)
    most = lead(shard.config)
    for sender in shard.senders:
        sender.max_lead = most
    unknown = [MAX_MESSAGES] * count  # no receiver here: hold nobody back
    while True:
        # One open receiver stands for this worker: one event loop reads all of them alike.
        probe = next((conn.last for conn in shard.receivers if not conn.closed), unknown)
        heard[mine:mine + count] = probe
        for sender in shard.senders:
            sender.floor = min(heard[row + sender.sid] for row in rows)
            sender.pump()  # sends only if the window and the lead allow it
        await asyncio.sleep(_PACE_S)


async def _work(conn: Connection, config: BenchConfig, index: int, shards: int,
                run_id: str, heard: Any, cpu0: float) -> None:
    # Backstop only: the coordinator has tighter deadlines, and its exit closes the pipe.
    link = _Link(conn, connect_bound(config) + config.duration + config.drain_timeout
                 + 2 * SLACK_S)
    shard = Shard(config, run_id, shard=index, shards=shards)
    progress = pace = None
    try:
        await shard.connect_all()
        link.send("connected", {"clients": len(shard.receivers) + len(shard.stalled)})
        if config.progress:
            progress = asyncio.create_task(_report_progress(shard, link))
        await link.expect("go")
        cpu1, wall1 = time.process_time(), time.monotonic()
        if heard is not None:
            pace = asyncio.create_task(_keep_pace(shard, heard))
        await shard.send_all()
        link.send("sent", {sender.sid: sender.seq for sender in shard.senders})
        seqs = await link.expect("final")
        shard.expect_total(sum(seqs))
        await shard.drain()
        link.send("drained", {"send_cpu_s": time.process_time() - cpu1,
                              "send_wall_s": time.monotonic() - wall1})
        await link.expect("close")
    finally:
        for task in (progress, pace):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await shard.close()
    report = shard.report(seqs)
    link.close()
    link.send("result", (report, time.process_time() - cpu0))


def worker_main(conn: Connection, config: BenchConfig, shard: int, shards: int,
                run_id: str, heard: Any) -> None:
    """Entry point of a worker process (a fresh interpreter: spawned, not forked)."""
    # Ctrl-C reaches the whole process group: the coordinator handles it and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cpu0 = time.process_time()
    try:
        asyncio.run(_work(conn, config, shard, shards, run_id, heard, cpu0))
    except asyncio.CancelledError:
        pass  # the coordinator closed the pipe
    except Exception as exc:  # reported in the coordinator, one line
        try:
            conn.send(("error", type(exc).__name__, _one_line(exc), getattr(exc, "remedy", None)))
        except OSError:
            pass  # the coordinator is gone already
    finally:
        conn.close()
