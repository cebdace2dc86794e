"""Between the network's threads and Qt's: nothing here ever blocks the UI thread.

Owns: `EventBridge` (the session's `on_event`, called on the link's reader thread: frames are
queued and the UI thread is woken once per batch, at most every `BATCH_MS`, so a burst of a
thousand messages a second is a few dozen UI updates, not a thousand), `Task` (a blocking
call such as connecting, run on its own thread, its outcome delivered as a signal) and
`DiscoveryFeed` (the discovery watcher of `chatkit discover --watch`, on its own thread).

Qt delivers a signal emitted on another thread to a receiver living in the UI thread through
the receiver's event queue (a queued connection), so every slot runs on the UI thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from chatkit.protocol import Frame

#: The longest a frame waits before the UI shows it; frames arriving meanwhile join the batch.
BATCH_MS = 40


class EventBridge(QObject):
    """Frames from any thread in, batches of frames out (`batch`, on the UI thread)."""

    batch = Signal(list)
    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._frames: deque[Frame] = deque()
        self._woken = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(BATCH_MS)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._timer.start)

    def post(self, frame: Frame) -> None:
        """Queue `frame` (thread-safe); wakes the UI thread once per batch."""
        with self._lock:
            self._frames.append(frame)
            if self._woken:
                return
            self._woken = True
        self._wake.emit()

    def flush(self) -> None:
        """Hand everything queued to `batch` now (UI thread)."""
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            self._woken = False
        if frames:
            self.batch.emit(frames)


class Task(QObject):
    """`call()` on a thread of its own (`worker`); `done(result)` or `failed(exception)` on
    the UI thread. Keep a reference until one of them arrives (the caller's tasks set does)."""

    done = Signal(object)
    failed = Signal(object)

    def __init__(self, call: Callable[[], Any], name: str, parent: QObject | None = None
                 ) -> None:
        super().__init__(parent)
        self._call = call
        self.worker = threading.Thread(target=self._run, name=f"chatkit-gui-{name}",
                                       daemon=True)

    def start(self) -> Task:
        self.worker.start()
        return self

    def _run(self) -> None:
        try:
            result = self._call()
        except Exception as exc:  # delivered to the UI, which says what went wrong
            self.failed.emit(exc)
        else:
            self.done.emit(result)


class DiscoveryFeed(QObject):
    """Servers appearing, changing and leaving (`chatkit.discovery.watch`), as `found`
    signals carrying `WatchEvent`s; `failed(str)` when discovery cannot run at all."""

    found = Signal(object)
    failed = Signal(str)

    def __init__(self, broadcast: list[str] | None, discovery_port: int,
                 probe_interval: float = 5.0, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.broadcast = broadcast
        self.discovery_port = discovery_port
        self.probe_interval = probe_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chatkit-gui-discovery",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from chatkit.discovery import watch
        from chatkit.errors import ChatkitError

        try:
            for item in watch(broadcast=self.broadcast, discovery_port=self.discovery_port,
                              probe_interval=self.probe_interval, stop=self._stop):
                self.found.emit(item)
        except (ChatkitError, OSError, ValueError) as exc:
            self.failed.emit(str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
