"""Running a benchmark: `run_bench`, one code path for 1..P generator processes.

The run goes through the same phases whatever P is, driven from the calling process:

    connect    every shard connects its share of the clients and joins the room
               -> on_connected() (the benchmark suite reads the server's idle memory there)
    send       go: every shard sends for `duration` (or `messages`); -> each sender's last seq
    drain      final seqs: each shard waits until its receivers got them all (or drain_timeout)
               -> on_finished() (the suite reads the server's CPU time there)
    close      every shard notes its stalled clients and disconnects; -> its ShardReport
    merge      the reports merged exactly (merge.py)

With P = 1 (`_InProcess`) the one shard lives in this process, on an event loop that runs each
phase to its end (the callbacks run between phases, as they would inside the loop: nothing is
read while they run either way). With P > 1 (`_Workers`) this process only coordinates P worker
processes (worker.py; the "spawn" method, never fork: the caller may have threads, such as a
test's in-process server), each an event loop with one shard, over one pipe each:

    worker -> coordinator               coordinator -> worker
    connected {clients}                 go                    after on_connected()
    sent {sid: last seq}                final [seq per sid]   once every worker stopped sending
    drained {send CPU s, send wall s}   close                 after on_finished()
    result (report, CPU s)
    progress (sent, deliveries, errors) every 0.5 s with `progress`; error (class, message)

Every wait on either side has a deadline. A worker's ChatkitError is raised here as the same
class with its message, and the coordinator always stops every worker: it closes the pipes (a
worker seeing EOF stops at once), joins them for a bounded time, then terminates.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, TypeVar

from chatkit import errors
from chatkit.bench.config import BenchConfig, descriptors, raise_nofile_limit, room_for
from chatkit.bench.merge import ShardReport, merge
from chatkit.bench.progress import DONE, PROGRESS_S, ProgressCallback
from chatkit.bench.result import BenchResult
from chatkit.bench.shard import Shard
from chatkit.bench.worker import SLACK_S, connect_bound, worker_main
from chatkit.errors import ChatkitError

#: How long stopped workers get to exit before they are terminated.
_JOIN_S = 5.0

T = TypeVar("T")


def run_bench(config: BenchConfig, on_connected: Callable[[], None] | None = None,
              on_finished: Callable[[], None] | None = None,
              on_progress: ProgressCallback | None = None) -> BenchResult:
    """Run one benchmark and return what it measured.

    `on_connected` is called once every client is connected and joined, before any message is
    sent; `on_finished` after the last delivery, before the clients disconnect; with
    `config.progress`, `on_progress` as progress.py says. All run in this process.
    Raises ConfigError for bad settings and UnreachableError (RefusedError) when no client (or
    a sender) can connect (is let in). With `config.processes` > 1 the worker processes are
    spawned, so they import the caller's main module (a script needs the usual
    `if __name__ == "__main__":` guard).
    """
    config.validate()
    # Workers inherit the raised limit; each needs descriptors for its share only.
    raise_nofile_limit(descriptors(config, config.processes))
    run_id = secrets.token_hex(3)
    result = BenchResult(config={**asdict(config), "room": room_for(config, run_id)})
    progress = on_progress if config.progress else None
    cpu0, wall0 = time.process_time(), time.monotonic()
    shards: _Shards = (_InProcess(config, run_id, progress) if config.processes == 1
                       else _Workers(config, run_id, progress))
    try:
        shards.start()
        shards.connect()
        if on_connected is not None:
            on_connected()
        go = time.monotonic()
        seqs = shards.send()
        drained = shards.drain(seqs)
        send_wall = time.monotonic() - go
        if on_finished is not None:
            on_finished()
        parts = shards.close(seqs)
    finally:
        shards.stop()
    merge(result, seqs, [part for part, _ in parts])
    result.generator_processes = config.processes
    # CPU of this process, and of the workers (zero for a shard that ran in this process)
    result.generator_cpu_s = time.process_time() - cpu0 + sum(cpu for _, cpu in parts)
    result.generator_wall_s = time.monotonic() - wall0
    result.generator_cpu_util_max = max(d["send_cpu_s"] / max(1e-9, d["send_wall_s"])
                                        for d in drained)
    result.generator_cpu_util = (sum(d["send_cpu_s"] for d in drained) / max(1e-9, send_wall)
                                 if len(drained) > 1 else result.generator_cpu_util_max)
    return result


class _Shards(Protocol):
    """The shards of a run, moved through its phases together (see the module docstring)."""

    def start(self) -> None: ...
    def connect(self) -> None: ...
    def send(self) -> list[int]: ...
    def drain(self, seqs: list[int]) -> list[dict[str, float]]: ...
    def close(self, seqs: list[int]) -> list[tuple[ShardReport, float]]: ...
    def stop(self) -> None: ...


class _InProcess:
    """The one shard of a single-process run, on an event loop of this process."""

    def __init__(self, config: BenchConfig, run_id: str,
                 on_progress: ProgressCallback | None) -> None:
        self.config = config
        self.run_id = run_id
        self.on_progress = on_progress
        self.loop = asyncio.new_event_loop()
        self.shard: Shard | None = None
        self.ticker: asyncio.Task[None] | None = None
        self.closed = False
        self.cpu1 = self.wall1 = 0.0

    def _step(self, phase: Awaitable[T]) -> T:
        return self.loop.run_until_complete(phase)

    def _report(self, phase: str) -> None:
        assert self.on_progress is not None and self.shard is not None
        shard = self.shard
        self.on_progress(phase, shard.sent, shard.deliveries, shard.errors, len(shard.receivers))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_S)
            self._report(self.shard.phase)  # type: ignore[union-attr]

    async def _begin(self) -> None:
        self.shard = Shard(self.config, self.run_id)
        if self.on_progress is not None:
            self.ticker = asyncio.create_task(self._tick())

    def start(self) -> None:
        self._step(self._begin())

    def connect(self) -> None:
        assert self.shard is not None
        self._step(self.shard.connect_all())

    def send(self) -> list[int]:
        assert self.shard is not None
        self.cpu1, self.wall1 = time.process_time(), time.monotonic()
        self._step(self.shard.send_all())
        return [sender.seq for sender in self.shard.senders]

    def drain(self, seqs: list[int]) -> list[dict[str, float]]:
        assert self.shard is not None
        self.shard.expect_total(sum(seqs))
        self._step(self.shard.drain())
        return [{"send_cpu_s": time.process_time() - self.cpu1,
                 "send_wall_s": time.monotonic() - self.wall1}]

    async def _end_progress(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
            await asyncio.gather(self.ticker, return_exceptions=True)
            self.ticker = None
            self._report(DONE)

    async def _close(self) -> None:
        await self._end_progress()
        if self.shard is not None and not self.closed:
            self.closed = True
            await self.shard.close()

    def close(self, seqs: list[int]) -> list[tuple[ShardReport, float]]:
        assert self.shard is not None
        self._step(self._close())
        return [(self.shard.report(seqs), 0.0)]  # its CPU is this process's

    async def _shutdown(self) -> None:
        await self._close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

    def stop(self) -> None:
        """Close the shard if a phase failed, then the loop (as asyncio.run would)."""
        try:
            self._step(self._shutdown())
        finally:
            self.loop.close()


# --------------------------------------------------------------------------- P > 1


def _rebuild(name: str, text: str, shard: int, remedy: str | None = None) -> ChatkitError:
    """A worker's error as the coordinator raises it: the same ChatkitError class if it is one
    (with its remedy)."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, ChatkitError):
        try:
            error = cls(text)
        except TypeError:  # a subclass with a different constructor
            pass
        else:
            error.remedy = remedy
            return error
    return ChatkitError(f"bench worker {shard} failed: {name}: {text}")


@dataclass
class _Worker:
    shard: int
    proc: BaseProcess
    conn: Connection
    clients: int = 0
    #: (sent, deliveries, errors) of its last progress report
    progress: tuple[int, int, int] = (0, 0, 0)
    finished: bool = False  # sent its result, so its pipe is about to close


class _Workers:
    """The coordinator of P worker processes, one shard each."""

    def __init__(self, config: BenchConfig, run_id: str,
                 on_progress: ProgressCallback | None) -> None:
        self.config = config
        self.run_id = run_id
        self.workers: list[_Worker] = []
        self.phase = "connecting"
        self.on_progress = on_progress
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

    def connect(self) -> None:
        reports = self._collect("connected", connect_bound(self.config))
        for worker, report in zip(self.workers, reports, strict=True):
            worker.clients = report["clients"]

    def send(self) -> list[int]:
        self._broadcast("go")
        self.phase = "sending"
        seqs = [0] * self.config.senders
        for report in self._collect("sent", self.config.duration + SLACK_S):
            for sid, seq in report.items():
                seqs[sid] = seq
        return seqs

    def drain(self, seqs: list[int]) -> list[dict[str, float]]:
        self._broadcast("final", seqs)
        self.phase = "draining"
        return self._collect("drained", self.config.drain_timeout + SLACK_S)

    def close(self, seqs: list[int]) -> list[tuple[ShardReport, float]]:
        self._broadcast("close")
        return self._collect("result", SLACK_S)

    def _broadcast(self, kind: str, payload: Any = None) -> None:
        for worker in self.workers:
            try:
                worker.conn.send((kind, payload))
            except OSError:
                raise self._gone(worker) from None

    def _collect(self, kind: str, timeout: float) -> list[Any]:
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
            for conn in wait(live, min(remaining, PROGRESS_S)):
                worker = by_conn[conn]  # type: ignore[index]
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    raise self._gone(worker) from None
                if message[0] == "progress":
                    worker.progress = message[1]
                elif message[0] == "error":
                    raise _rebuild(message[1], message[2], worker.shard, *message[3:4])
                elif message[0] == kind and worker.shard not in got:
                    got[worker.shard] = message[1]
                    worker.finished = kind == "result"
                else:
                    raise ChatkitError(f"bench worker {worker.shard} reported {message[0]!r} "
                                       f"when {kind!r} was due")
            self._show_progress()
        return [got[worker.shard] for worker in self.workers]

    def _gone(self, worker: _Worker) -> ChatkitError:
        worker.proc.join(1.0)  # for its exit status
        return ChatkitError(f"bench worker {worker.shard} exited unexpectedly "
                            f"(exit status {worker.proc.exitcode})")

    def _report(self, phase: str) -> None:
        assert self.on_progress is not None
        sent, deliveries, errs = (sum(w.progress[i] for w in self.workers) for i in range(3))
        self.on_progress(phase, sent, deliveries, errs, sum(w.clients for w in self.workers))

    def _show_progress(self) -> None:
        now = time.monotonic()
        if self.on_progress is None or now - self.shown < PROGRESS_S:
            return
        self.shown = now
        self._report(self.phase)

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
        if self.on_progress is not None:
            self._report(DONE)
