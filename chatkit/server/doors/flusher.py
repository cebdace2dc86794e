"""The flusher: one thread that drains the backlogs of clients whose sockets were full, for
every socket door."""

from __future__ import annotations

import selectors
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatkit.server.doors.output import SocketOutput


class Flusher:
    """One thread that drains the backlogs of clients whose sockets were full."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._new: list[SocketOutput] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="chatkit-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, output: SocketOutput) -> None:
        with self._lock:
            self._new.append(output)
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # already a wake-up pending

    def stop(self) -> None:
        """Stop the thread, if it was started, and close what it owns."""
        self._stopping = True
        self.watch_nothing()
        if self._thread.ident is not None:  # a server that failed to start never started it
            self._thread.join(5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def watch_nothing(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                output: SocketOutput = key.data
                if output.flush():
                    self._selector.unregister(output.sock)
            with self._lock:
                new, self._new = self._new, []
            for output in new:
                self._register(output)

    def _register(self, output: SocketOutput) -> None:
        try:
            self._selector.register(output.sock, selectors.EVENT_WRITE, output)
        except KeyError:
            # Registered already: by this client (fine), or by a client that died with
            # output pending and whose closed descriptor number the new socket now reuses.
            stale = self._selector.get_key(output.sock)
            if stale.data is not output:
                self._selector.unregister(output.sock)
                self._register(output)
        except (ValueError, OSError):
            pass  # closed meanwhile
