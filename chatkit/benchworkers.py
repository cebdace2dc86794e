"""`chatkit bench --processes P` (P > 1): the generator spread over P worker processes.

One generator process tops out near one core, so a fast server can outrun it. Here the calling
process only coordinates: it starts P workers (the "spawn" method, never fork: the caller may
have threads, such as a test's in-process server), each running its own asyncio loop with one
`_Bench` shard of the run (connection i lives in worker i % P, so sender sid and the connection
its acks arrive on are in the same worker). All share one run id and room. The phases, over one
pipe per worker:

    worker -> coordinator               coordinator -> worker
    connected {clients}                 go                    after on_connected()
    sent {sid: last seq}                final [seq per sid]   once every worker stopped sending
    drained {send CPU s, send wall s}   close                 after on_finished()
    result partial() + CPU s
    progress (sent, deliveries, errors) every 0.5 s with `progress`; error (class, message)

In max mode a sender waits only for its own echo, which arrives in its own worker, so without
a check one worker's receivers could fall further and further behind another's senders (until
the server drops them for their backlog). So every worker publishes, every few milliseconds, how
far its receivers got in each sender's sequence (a shared array, no messages), and a sender
stays at most `_lead()` messages ahead of the slowest worker.

Every wait on either side has a deadline. A worker's ChatkitError is raised in the coordinator
as the same class with its message, and the coordinator always stops every worker: it closes
the pipes (a worker seeing EOF stops at once), joins them for a bounded time, then terminates.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from chatkit import errors
from chatkit.bench import (
    _MAX_MESSAGES,
    BenchConfig,
    BenchResult,
    ProgressLine,
    _Bench,
    _descriptors,
    _merge,
    _raise_nofile_limit,
    _share,
    room_for,
)
from chatkit.errors import ChatkitError

#: Starting an interpreter and importing chatkit, on a machine the benchmark keeps busy.
_SPAWN_S = 60.0
#: Added to every phase's own bound (duration, drain timeout) for scheduling and pickling.
_SLACK_S = 30.0
#: How long stopped workers get to exit before they are terminated.
_JOIN_S = 5.0
_PROGRESS_S = 0.5
#: How often a worker publishes its receivers' progress and reads the others'.
_PACE_S = 0.005
#: Max mode: how many bytes of messages (all senders together) any sender may be ahead of the
#: slowest worker's receivers; well under the server's default backlog limit (1 MiB).
_LEAD_BYTES = 256 * 1024


def _connect_bound(config: BenchConfig) -> float:
    """Longest a worker may take to connect its share: each connection waits at most
    connect_timeout for TCP and again for the handshake, `connect_concurrency` at a time."""
    waves = -(-_share(config, config.processes) // config.connect_concurrency)
    return _SPAWN_S + 2 * config.connect_timeout * max(1, waves)


def _lead(config: BenchConfig) -> int:
    """Messages a sender may be ahead of the slowest worker (never less than its window)."""
    frame = config.size + 100  # the event's JSON around the text, roughly
    return max(config.window, _LEAD_BYTES // (max(1, config.senders) * frame))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _rebuild(name: str, text: str, shard: int) -> ChatkitError:
    """A worker's error as the coordinator raises it: the same ChatkitError class if it is one."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, ChatkitError):
        try:
            return cls(text)
        except TypeError:  # a subclass with a different constructor
            pass
    return ChatkitError(f"bench worker {shard} failed: {name}: {text}")


# --------------------------------------------------------------------------- coordinator


@dataclass
class _Worker:
    shard: int
    proc: BaseProcess
    conn: Connection
    clients: int = 0
    #: (sent, deliveries, errors) of its last progress report
    progress: tuple[int, int, int] = (0, 0, 0)
    finished: bool = False  # sent its result, so its pipe is about to close


class _Coordinator:
    def __init__(self, config: BenchConfig, run_id: str) -> None:
        self.config = config
        self.run_id = run_id
        self.workers: list[_Worker] = []
        self.phase = "connecting"
        self.line = ProgressLine() if config.progress else None
        self.shown = 0.0
        self.ctx = multiprocessing.get_context("spawn")
        # Row k: the last sequence number of each sender that worker k's receivers got.
        self.heard = (self.ctx.RawArray("q", config.processes * config.senders)
                      if config.rate is None and config.senders else None)

    def start(self) -> None:
        shards = self.config.processes
        for shard in range(shards):
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=worker_main, name=f"chatkit-bench-{shard}",
                                    daemon=True, args=(child, self.config, shard, shards,
                                                       self.run_id, self.heard))
            try:
                proc.start()
            except BaseException:
                parent.close()
                raise
            finally:
                child.close()  # the worker's end lives in the worker; EOF here when it exits
            self.workers.append(_Worker(shard, proc, parent))

    def broadcast(self, kind: str, payload: Any = None) -> None:
        for worker in self.workers:
            try:
                worker.conn.send((kind, payload))
            except OSError:
                raise self._gone(worker) from None

    def collect(self, kind: str, timeout: float) -> list[Any]:
        """Every worker's `kind` report, in shard order; raises a worker's error."""
        deadline = time.monotonic() + timeout
        got: dict[int, Any] = {}
        by_conn = {worker.conn: worker for worker in self.workers}
        while len(got) < len(self.workers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = [w.shard for w in self.workers if w.shard not in got]
                raise ChatkitError(f"bench worker(s) {late} did not report {kind!r} within "
                                   f"{timeout:g} s")
            live = [w.conn for w in self.workers if not w.finished]
            for conn in wait(live, min(remaining, _PROGRESS_S)):
                worker = by_conn[conn]
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._gone(worker) from None
                if message[0] == "progress":
                    worker.progress = message[1]
                elif message[0] == "error":
                    raise _rebuild(message[1], message[2], worker.shard)
                elif message[0] == kind and worker.shard not in got:
                    got[worker.shard] = message[1]
                    worker.finished = kind == "result"
                else:
                    raise ChatkitError(f"bench worker {worker.shard} reported {message[0]!r} "
                                       f"when {kind!r} was due")
            self.show_progress()
        return [got[worker.shard] for worker in self.workers]

    def _gone(self, worker: _Worker) -> ChatkitError:
        worker.proc.join(1.0)  # for its exit status
        return ChatkitError(f"bench worker {worker.shard} exited unexpectedly "
                            f"(exit status {worker.proc.exitcode})")

    def show_progress(self) -> None:
        now = time.monotonic()
        if self.line is None or now - self.shown < _PROGRESS_S:
            return
        self.shown = now
        sent, deliveries, errs = (sum(w.progress[i] for w in self.workers) for i in range(3))
        self.line.show(self.phase, sent, deliveries, errs, sum(w.clients for w in self.workers))

    def stop(self) -> None:
        """Stop every worker, whatever state it is in; never leaves a process behind."""
        for worker in self.workers:
            worker.conn.close()  # EOF: a worker still running stops at once
        deadline = time.monotonic() + _JOIN_S
        for worker in self.workers:
            worker.proc.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.proc.is_alive():
                worker.proc.terminate()
                worker.proc.join(2.0)
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join(2.0)
        if self.line is not None:
            print(file=sys.stderr)


def run_processes(config: BenchConfig, on_connected: Callable[[], None] | None,
                  on_finished: Callable[[], None] | None) -> BenchResult:
    """`run_bench` with `config.processes` > 1 worker processes (see the module docstring)."""
    # Workers inherit the raised limit; each needs descriptors for its share only.
    _raise_nofile_limit(_descriptors(config, config.processes))
    run_id = secrets.token_hex(3)
    result = BenchResult(config={**asdict(config), "room": room_for(config, run_id)})
    cpu0, wall0 = time.process_time(), time.monotonic()
    coordinator = _Coordinator(config, run_id)
    try:
        coordinator.start()
        reports = coordinator.collect("connected", _connect_bound(config))
        for worker, report in zip(coordinator.workers, reports, strict=True):
            worker.clients = report["clients"]
        if on_connected is not None:
            on_connected()
        coordinator.broadcast("go")
        coordinator.phase = "sending"
        go = time.monotonic()
        seqs = [0] * config.senders
        for report in coordinator.collect("sent", config.duration + _SLACK_S):
            for sid, seq in report.items():
                seqs[sid] = seq
        coordinator.broadcast("final", seqs)
        coordinator.phase = "draining"
        drained = coordinator.collect("drained", config.drain_timeout + _SLACK_S)
        send_wall = time.monotonic() - go
        if on_finished is not None:
            on_finished()
        coordinator.broadcast("close")
        parts = coordinator.collect("result", _SLACK_S)
    finally:
        coordinator.stop()
    _merge(result, seqs, parts)
    result.generator_processes = config.processes
    result.generator_cpu_s = time.process_time() - cpu0 + sum(p["cpu_s"] for p in parts)
    result.generator_wall_s = time.monotonic() - wall0
    result.generator_cpu_util = sum(d["send_cpu_s"] for d in drained) / max(1e-9, send_wall)
    result.generator_cpu_util_max = max(d["send_cpu_s"] / max(1e-9, d["send_wall_s"])
                                        for d in drained)
    return result


# --------------------------------------------------------------------------- worker


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


async def _report_progress(bench: _Bench, link: _Link) -> None:
    while True:
        await asyncio.sleep(_PROGRESS_S)
        link.send("progress", (bench.sent, bench.deliveries, bench.errors))


async def _keep_pace(bench: _Bench, heard: Any) -> None:
    """Publish how far this worker's receivers got; hold senders near the slowest worker."""
    count = bench.config.senders
    mine = bench.shard * count
    rows = range(0, bench.shards * count, count)
    lead = _lead(bench.config)
    for sender in bench.senders:
        sender.max_lead = lead
    unknown = [_MAX_MESSAGES] * count  # no receiver here: hold nobody back
    while True:
        # One open receiver stands for this worker: one event loop reads all of them alike.
        probe = next((conn.last for conn in bench.receivers if not conn.closed), unknown)
        heard[mine:mine + count] = probe
        for sender in bench.senders:
            sender.floor = min(heard[row + sender.sid] for row in rows)
            sender.pump()  # sends only if the window and the lead allow it
        await asyncio.sleep(_PACE_S)


async def _work(conn: Connection, config: BenchConfig, shard: int, shards: int,
                run_id: str, heard: Any, cpu0: float) -> None:
    # Backstop only: the coordinator has tighter deadlines, and its exit closes the pipe.
    link = _Link(conn, _connect_bound(config) + config.duration + config.drain_timeout
                 + 2 * _SLACK_S)
    bench = _Bench(config, None, None, shard=shard, shards=shards, run_id=run_id)
    progress = pace = None
    try:
        await bench.connect_all()
        link.send("connected", {"clients": len(bench.receivers) + len(bench.stalled)})
        if config.progress:
            progress = asyncio.create_task(_report_progress(bench, link))
        await link.expect("go")
        cpu1, wall1 = time.process_time(), time.monotonic()
        if heard is not None:
            pace = asyncio.create_task(_keep_pace(bench, heard))
        await bench.send_all()
        link.send("sent", {sender.sid: sender.seq for sender in bench.senders})
        seqs = await link.expect("final")
        bench.expect_total(sum(seqs))
        await bench.drain()
        link.send("drained", {"send_cpu_s": time.process_time() - cpu1,
                              "send_wall_s": time.monotonic() - wall1})
        await link.expect("close")
    finally:
        for task in (progress, pace):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await bench.close()
    part = bench.partial(seqs)
    part["cpu_s"] = time.process_time() - cpu0
    link.close()
    link.send("result", part)


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
            conn.send(("error", type(exc).__name__, _one_line(exc)))
        except OSError:
            pass  # the coordinator is gone already
    finally:
        conn.close()
