"""The server side of discovery: answer probes and announce, only where the server is reachable.

Owns: `DiscoveryResponder` (its thread, the shared UDP port, probe validation, per-source rate
limiting, replies no larger than the probe, periodic announcements) and `DropLog`, which counts
the datagrams it ignores without flooding the log. The chat server is handed to it as an
`info()` callable; it knows nothing else about the server.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from chatkit.discovery.scope import CACHE_SECONDS, scope_for_bind
from chatkit.discovery.wire import (
    DEFAULT_ANNOUNCE_INTERVAL,
    DISCOVERY_PORT,
    MAX_DATAGRAM,
    MIN_PROBE_SIZE,
    DatagramError,
    decode_datagram,
    fit_datagram,
    is_valid_nonce,
    udp_socket,
)
from chatkit.ratelimit import KeyedLimiter

log = logging.getLogger("chatkit.discovery")

#: Replies per second (and burst) to one source, and to all sources together: the global cap
#: bounds what spoofed probes from many fake sources can make us send.
REPLY_RATE, REPLY_BURST = 2.0, 8.0
GLOBAL_REPLY_RATE, GLOBAL_REPLY_BURST = 40.0, 80.0
#: Sources whose rate a responder remembers at once (the least recently heard make room).
MAX_SOURCES = 1024


def reply_limiter() -> KeyedLimiter:
    """The responder's default limits: per source address, plus a global cap."""
    return KeyedLimiter(rate=REPLY_RATE, burst=REPLY_BURST, global_rate=GLOBAL_REPLY_RATE,
                        global_burst=GLOBAL_REPLY_BURST, max_keys=MAX_SOURCES)


class DropLog:
    """Counts ignored datagrams by reason; at most one debug line per `period` seconds.

    Thread-safe: the responder thread drops probes while the thread calling `start()`/`stop()`
    may drop a failed announcement at the same moment.
    """

    def __init__(self, period: float = 10.0) -> None:
        self.period = period
        self.counts: dict[str, int] = {}
        self._last = -period
        self._lock = threading.Lock()

    def drop(self, reason: str, source: str) -> None:
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + 1
            now = time.monotonic()
            if now - self._last < self.period:
                return
            self._last = now
            summary = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
            self.counts.clear()
        log.debug("discovery: ignored datagrams (last from %s): %s", source, summary)


class DiscoveryResponder:
    """Answers probes and announces a chat server, only where that server can be reached.

    `info()` returns the server description (name, instance, port, addresses, version, tls,
    fingerprint, users, rooms). It is called at most once per `CACHE_SECONDS`, not per reply:
    a server's `info()` enumerates the interfaces, and probes may arrive in floods.
    `limiter` may be replaced before `start()` (tests lift the global cap that way).
    """

    def __init__(self, *, bind_host: str, chat_port: int, discovery_port: int = DISCOVERY_PORT,
                 info: Callable[[], dict[str, Any]],
                 announce_interval: float = DEFAULT_ANNOUNCE_INTERVAL) -> None:
        self.bind_host = bind_host
        self.chat_port = chat_port
        self.discovery_port = discovery_port
        self.info = info
        self.announce_interval = max(0.05, float(announce_interval))
        self.scope = scope_for_bind(bind_host)
        self.error: str | None = None
        self.limiter = reply_limiter()
        self.drops = DropLog()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._info_lock = threading.Lock()  # `_announce` runs on the caller's thread too
        self._last_info: dict[str, Any] | None = None
        self._info_at = -1e9  # time.monotonic() of the last info() call

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> str:
        """One line for the server's start banner."""
        if self.error:
            return f"discovery off: {self.error}"
        if self.scope.kind == "none":
            return f"discovery off: {self.bind_host} cannot be reached over IPv4"
        return f"discovery on UDP {self.discovery_port}, visible on {self.scope.describe()}"

    def start(self) -> None:
        """Bind the shared UDP port, start the thread, announce. Never raises for network
        trouble: the chat server works without discovery (see `error` / `describe()`)."""
        if self._thread is not None:
            return
        if self.scope.kind == "none":
            log.info("discovery: %s", self.describe())
            return
        try:
            self._sock = udp_socket(self.discovery_port, shared=True)
        except OSError as exc:
            self.error = f"cannot use UDP port {self.discovery_port}: {exc.strerror or exc}"
            log.warning("discovery: %s", self.error)
            return
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="chatkit-discovery", daemon=True)
        self._thread.start()
        self._announce("start")

    def stop(self) -> None:
        """Announce the stop, end the thread (bounded wait) and close the socket."""
        if self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._announce("stop")
        self._thread.join(2.0)
        if self._sock is not None:
            self._sock.close()

    # ------------------------------------------------------------------ thread

    def _next_announce(self) -> float:
        return time.monotonic() + self.announce_interval * random.uniform(0.8, 1.2)

    def _run(self) -> None:
        assert self._sock is not None
        next_announce = self._next_announce()
        while not self._stopping.is_set():
            try:
                data, source = self._sock.recvfrom(MAX_DATAGRAM + 1)
            except TimeoutError:
                data = b""
            except OSError as exc:
                if self._stopping.is_set():
                    break
                # e.g. ICMP-triggered errors on some systems: keep serving
                log.debug("discovery: receive failed: %s", exc)
                self._stopping.wait(0.05)
                continue
            if data:
                try:
                    self._handle(data, source)
                except Exception:  # a bug here must never kill the responder
                    log.exception("discovery: error handling a datagram")
            if time.monotonic() >= next_announce and not self._stopping.is_set():
                self._announce("alive")
                next_announce = self._next_announce()

    def _handle(self, data: bytes, source: tuple[str, int]) -> None:
        host, port = source[0], source[1]
        try:
            body = decode_datagram(data)
        except DatagramError as exc:
            self.drops.drop(exc.reason, host)
            return
        if body["type"] != "probe":
            return  # announcements (our own included) and replies are for clients
        nonce = body.get("nonce")
        if len(data) < MIN_PROBE_SIZE:
            self.drops.drop("short probe", host)
            return
        if not is_valid_nonce(nonce):
            self.drops.drop("bad nonce", host)
            return
        if port < 1024:
            # Clients probe from ephemeral ports; a privileged source port is a reflection attempt
            # at some service (DNS, NTP, ...).
            self.drops.drop("privileged source port", host)
            return
        if not self.scope.accepts(host):
            self.drops.drop("out of scope", host)
            return
        if not self.limiter.allow(host):
            self.drops.drop("rate limited", host)
            return
        info = self._info()
        if info is None:
            return
        reply = fit_datagram({"type": "reply", "nonce": nonce, **info},
                             min(len(data), MAX_DATAGRAM))
        if reply is None:
            return
        try:
            assert self._sock is not None
            self._sock.sendto(reply, (host, port))
        except OSError as exc:
            self.drops.drop(f"send failed ({exc.strerror or exc})", host)

    def _info(self) -> dict[str, Any] | None:
        """The server description, from `info()` at most every CACHE_SECONDS; the last good
        one while it fails (so a failing `info()` is also logged at most that often)."""
        with self._info_lock:
            now = time.monotonic()
            if now - self._info_at < CACHE_SECONDS:
                return self._last_info
            self._info_at = now
            try:
                info = dict(self.info())
            except Exception:
                log.exception("discovery: info() failed")
                return self._last_info
            info.setdefault("port", self.chat_port)
            info["interval"] = self.announce_interval
            self._last_info = info
            return info

    def _announce(self, event: str) -> None:
        sock = self._sock
        info = self._info()
        if sock is None or info is None:
            return
        data = fit_datagram({"type": "announce", "event": event, **info}, MAX_DATAGRAM)
        if data is None:
            return
        # Recomputed each time: interfaces come and go (Wi-Fi, DHCP, VPN).
        for target in self.scope.targets():
            try:
                sock.sendto(data, (target, self.discovery_port))
            except OSError as exc:
                self.drops.drop(f"announce to {target} failed ({exc.strerror or exc})",
                                target)
