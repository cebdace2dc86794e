"""Reader threads for a door: one thread per connection, taken from a pool of started ones.

`threading.Thread.start` returns only once the new thread runs, and a reader thread runs until
it blocks: it reads the hello, registers and joins first. So starting each connection's thread
from the accept loop made the whole join storm one long queue: about 1,300 people a second on
a 2-core machine, whatever the clients did. Here the accept loop only hands the connection's
reader to the pool (`run`); a parked thread takes it at once, and a spawner thread starts new
threads ahead of need, in parallel with the accept loop. A thread serves one connection for
that connection's whole life, then parks for the next one (or ends after `idle_seconds`), so
the server stays one thread per connection, and a reconnect storm reuses threads rather than
creating them.

A thread that cannot be started (the system's thread limit) leaves jobs waiting: the caller's
`failed` callback is told for each job no thread took in time, so the door turns that
connection away instead of leaving it hanging.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("chatkit.server")

#: started threads kept waiting for the next connection beyond those already wanted
SPARE_THREADS = 32
#: a parked thread with no connection for this long ends
IDLE_SECONDS = 30.0
#: threads starting reader threads at once
SPAWNERS = 4


@dataclass
class _Job:
    work: Callable[[], None]
    name: str
    failed: Callable[[str], None]


class ReaderPool:
    """See the module docstring. Thread-safe."""

    def __init__(self, name: str = "chatkit-reader", spare: int = SPARE_THREADS,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._spare = spare
        self._idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads parked in _jobs.get()
        self._waiting = 0  # jobs handed in that no thread took yet
        self._threads: set[threading.Thread] = set()
        self._wanted = threading.Condition(self._lock)  # the spawner waits on it
        self._stopping = False
        # Several: `Thread.start` waits for the new thread to get the GIL, which in a storm
        # is mostly waiting, and those waits overlap.
        self._spawners = [threading.Thread(target=self._spawn_loop, name=f"{name}-spawner",
                                           daemon=True) for _ in range(SPAWNERS)]

    def start(self) -> None:
        for spawner in self._spawners:
            spawner.start()

    def run(self, work: Callable[[], None], name: str, failed: Callable[[str], None]) -> None:
        """Run `work` on a thread of its own (renamed `name`) as soon as one is free; never
        blocks. `failed(reason)` instead if the pool is stopping or no thread can be made."""
        with self._lock:
            if self._stopping:
                failed("server shutting down")
                return
            self._waiting += 1
            self._wanted.notify()
        self._jobs.put(_Job(work, name, failed))

    def busy(self) -> int:
        """Threads serving a connection (for tests and the log)."""
        with self._lock:
            return len(self._threads) - self._idle

    def stop(self, timeout: float = 10.0) -> None:
        """End every parked thread and the spawner; wait for threads still serving a
        connection (the door ends those connections first) up to `timeout`."""
        with self._lock:
            self._stopping = True
            self._wanted.notify_all()
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in [*threads, *self._spawners]:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        # jobs nobody took (the spawner could not start threads): say so, once each
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.failed("server shutting down")

    # ------------------------------------------------------------------ threads

    def _spawn_loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and self._idle >= self._waiting + self._spare:
                    self._wanted.wait()
                if self._stopping:
                    return
            thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            with self._lock:
                self._threads.add(thread)
                self._idle += 1  # counted as parked from now: it parks first thing
            try:
                thread.start()
            except RuntimeError as exc:  # "can't start new thread": the system's limit
                with self._lock:
                    self._threads.discard(thread)
                    self._idle -= 1
                self._refuse_waiting(f"server out of threads ({exc})")
                time.sleep(0.5)  # threads end as connections close; try again then

    def _refuse_waiting(self, reason: str) -> None:
        """Turn away the jobs no parked thread can take now."""
        log.error("cannot start a reader thread: %s", reason)
        while True:
            with self._lock:
                if self._waiting <= self._idle:
                    return
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:
                self._jobs.put(None)  # a stop: leave it for a thread
                return
            with self._lock:
                self._waiting -= 1
            job.failed(reason)

    def _serve(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=self._idle_seconds)
                except queue.Empty:
                    with self._lock:
                        if self._waiting == 0:  # nothing handed in meanwhile: end
                            self._idle -= 1
                            return
                    continue
                if job is None:
                    with self._lock:
                        self._idle -= 1
                    return
                with self._lock:
                    self._idle -= 1
                    self._waiting -= 1
                    if self._idle < self._waiting + self._spare:
                        self._wanted.notify()
                me.name = job.name
                try:
                    job.work()
                except Exception:  # the work handles its own errors; this is a last guard
                    log.exception("internal error in %s", job.name)
                me.name = self._name
                with self._lock:
                    self._idle += 1
        finally:
            with self._lock:
                self._threads.discard(me)
