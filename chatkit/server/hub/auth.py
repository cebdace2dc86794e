"""The server password: checking it, and throttling guesses per address group (an IPv4
address, an IPv6 /64) and across all addresses."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time

from chatkit.net.addresses import address_group, host_of

log = logging.getLogger("chatkit.server")

AUTH_DELAY = 1.0  # seconds before answering a wrong password
AUTH_WINDOW = 60.0
AUTH_MAX_FAILURES = 5  # per address group within AUTH_WINDOW; then connections are refused
#: password attempts within AUTH_WINDOW across all addresses: many addresses (a botnet, or one
#: host with a whole IPv6 prefix) cannot multiply the per-address rate past this
AUTH_GLOBAL_MAX = 60


class PasswordGate:
    """Counts password attempts per address and compares in constant time. Thread-safe."""

    def __init__(self, password: str | None, global_max: int = AUTH_GLOBAL_MAX) -> None:
        self.password = password
        self.global_max = global_max
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}  # address group -> recent failure times
        self._attempts: list[float] = []  # attempts lately, from anywhere, not (yet) right
        self._busy_logged = -AUTH_WINDOW  # when "busy" was last logged (once a window)

    @property
    def required(self) -> bool:
        return self.password is not None

    def throttled(self, ip: str) -> bool:
        """Too many wrong passwords from `ip`'s group lately: refuse its connections for a
        while."""
        now = time.monotonic()
        with self._lock:
            failures = [t for t in self._failures.get(address_group(ip), [])
                        if now - t < AUTH_WINDOW]
        return len(failures) >= AUTH_MAX_FAILURES

    def attempt(self, peer: str, given: object) -> str:
        """"ok"; "missing" at once when no password was given (not a guess: nothing is
        counted, nothing learnt); after a delay "wrong", or "locked_out" (too many attempts:
        disconnect), or "busy" (too many attempts from everywhere lately: not compared,
        disconnect)."""
        expected = self.password
        if expected is None:
            return "ok"
        if given is None:
            return "missing"
        ip = address_group(host_of(peer))
        now = time.monotonic()
        with self._lock:
            self._attempts = [t for t in self._attempts if now - t < AUTH_WINDOW]
            busy = len(self._attempts) >= self.global_max
            if not busy:
                self._attempts.append(now)
            quiet = now - self._busy_logged < AUTH_WINDOW
            if busy and not quiet:
                self._busy_logged = now
        if busy:
            if not quiet:
                log.warning("%s: password attempt refused unchecked: %d attempts from all "
                            "addresses in the last minute (said once a minute)", peer,
                            self.global_max)
            time.sleep(AUTH_DELAY)
            return "busy"
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
                if now in self._attempts:  # a right password costs the budget nothing
                    self._attempts.remove(now)
            return "ok"
        log.warning("%s: wrong password (%d in the last minute)", peer, len(recent))
        time.sleep(AUTH_DELAY)  # only this client's thread waits: slows guessing, nobody else
        return "locked_out" if len(recent) >= AUTH_MAX_FAILURES else "wrong"
