"""`RepeatedLog`: a log line that an attacker (or one misbehaving client) can make the server
repeat thousands of times a second is written once per window, and the next one after the
window says how many were left out. Keeps the log readable and its size bounded under load."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

#: seconds during which a repeated line is counted rather than written
WINDOW = 10.0
#: distinct keys remembered at once (each key is one kind of line, e.g. one refusal reason)
MAX_KEYS = 1024


class RepeatedLog:
    """Write a log line at most once per `window` seconds per `key`; the first line written
    after a window in which some were left out ends with "(same message N more times in the
    last 10 s)". Thread-safe."""

    def __init__(self, logger: logging.Logger, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        #: key -> (when its window started, lines left out since)
        self._seen: dict[str, tuple[float, int]] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> None:
        now = self.clock()
        with self._lock:
            started, skipped = self._seen.get(key, (None, 0))
            if started is not None and now - started < self.window:
                self._seen[key] = (started, skipped + 1)
                return
            if len(self._seen) >= MAX_KEYS:
                self._forget(now)
            self._seen[key] = (now, 0)
        if skipped:
            message += " (same message %d more times in the last %d s)"
            args = (*args, skipped, round(self.window))
        self.logger.log(level, message, *args)

    def warning(self, key: str, message: str, *args: object) -> None:
        self.log(logging.WARNING, key, message, *args)

    def _forget(self, now: float) -> None:
        """Drop keys whose window is over (their skipped count is lost: bounded memory wins);
        if all are current, drop the oldest half."""
        expired = [k for k, (started, _) in self._seen.items() if now - started >= self.window]
        if not expired:
            expired = sorted(self._seen, key=lambda k: self._seen[k][0])[: MAX_KEYS // 2]
        for key in expired:
            del self._seen[key]
