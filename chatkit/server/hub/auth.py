"""The server password: checking it, and throttling guesses per address."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

from chatkit.net.addresses import host_of

log = logging.getLogger("chatkit.server")

AUTH_DELAY = 1.0  # seconds before answering a wrong password
AUTH_WINDOW = 60.0
AUTH_MAX_FAILURES = 5  # per address within AUTH_WINDOW; then connections are refused


class PasswordGate:
    """Counts password attempts per address and compares in constant time. Thread-safe."""

    def __init__(self, password: str | None) -> None:
        self.password = password
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}  # address -> recent failure times

    @property
    def required(self) -> bool:
        return self.password is not None

    def throttled(self, ip: str) -> bool:
        """Too many wrong passwords from `ip` lately: refuse its connections for a while."""
        now = time.monotonic()
        with self._lock:
            failures = [t for t in self._failures.get(ip, []) if now - t < AUTH_WINDOW]
        return len(failures) >= AUTH_MAX_FAILURES

    def attempt(self, peer: str, given: object) -> str:
        """"ok"; "missing" at once when no password was given (not a guess: nothing is
        counted, nothing learnt); after a delay "wrong", or "locked_out" (too many attempts:
        disconnect)."""
        expected = self.password
        if expected is None:
            return "ok"
        if given is None:
            return "missing"
        ip = host_of(peer)
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 1024:  # bounded memory: forget stale addresses
                self._failures = {a: ts for a, ts in self._failures.items()
                                  if ts and now - ts[-1] < AUTH_WINDOW}
            recent = [t for t in self._failures.get(ip, []) if now - t < AUTH_WINDOW]
            # A throttled address gets no comparison at all (connections opened before the
            # limit was reached cannot keep guessing), and an attempt counts as a failure
            # until it has succeeded (parallel guesses cannot outrun the limit).
            throttled = len(recent) >= AUTH_MAX_FAILURES
            if not throttled:
                recent.append(now)
            self._failures[ip] = recent
        ok = not throttled and isinstance(given, str) and hmac.compare_digest(
            hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())
        if ok:
            with self._lock:
                current = self._failures.get(ip, [])
                if now in current:
                    current.remove(now)
                if not current:
                    self._failures.pop(ip, None)
            return "ok"
        log.warning("%s: wrong password (%d in the last minute)", peer, len(recent))
        time.sleep(AUTH_DELAY)  # only this client's thread waits: slows guessing, nobody else
        return "locked_out" if len(recent) >= AUTH_MAX_FAILURES else "wrong"
