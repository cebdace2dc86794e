"""UDP broadcast discovery (docs/protocol.md, "Discovery (UDP)"): the one place that knows it.

Owns: the discovery datagram format and its validation; which networks a server may be
advertised on for a given bind address; the server-side responder/announcer thread
(`DiscoveryResponder`); client-side probing (`discover`), passive watching (`watch`) and the
network self-test (`diagnose`); and rendering their results as tables, JSON and exit statuses
(`run_discover`), so the click command stays a thin wrapper. Never imports click.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import random
import re
import secrets
import select
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from chatkit.errors import ConfigError, ExitCode, NotFoundError
from chatkit.net.addresses import format_address
from chatkit.net.interfaces import Interface, interfaces
from chatkit.protocol import sanitize_text

log = logging.getLogger("chatkit.discovery")

DISCOVERY_PORT = 12345
DISCOVERY_VERSION = 1
MAGIC = b"CHATKIT-DISCOVERY"
HEADER = MAGIC + b" %d\n" % DISCOVERY_VERSION

#: Every datagram stays far below one Ethernet MTU (and the IPv6 minimum of 1280).
MAX_DATAGRAM = 1200
#: Probes are padded to this size and shorter ones are ignored, so that a reply (which is never
#: larger than the probe it answers) cannot amplify traffic towards a spoofed source.
PROBE_SIZE = 1024
MIN_PROBE_SIZE = PROBE_SIZE

MAX_NAME = 64
MAX_ADDRESSES = 16
DEFAULT_ANNOUNCE_INTERVAL = 30.0
#: A passive listener forgets a server after this many missed announcements.
MISSED_ANNOUNCEMENTS = 3
LOOPBACK_BROADCAST = "127.255.255.255"

# \Z, not $: `$` also matches before a trailing newline, which would let "abc\n" through
_NONCE = re.compile(r"^[0-9a-f]{16,64}\Z")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_FINGERPRINT = re.compile(r"^[0-9A-Za-z:+/=_-]{1,128}\Z")
_LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
_WILDCARDS = {"", "0.0.0.0", "::", "*"}

NOTHING_FOUND_HINT = (
    "run `chatkit discover --diagnose` to see why, or ask for the server's address and use "
    "`chatkit join HOST[:PORT]`"
)


class DatagramError(ValueError):
    """A datagram that is not a valid discovery message; `reason` is a short tag for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- wire format


def encode_datagram(body: dict[str, Any], *, pad_to: int = 0) -> bytes:
    """Header line + one JSON object, padded with spaces (which JSON ignores) to `pad_to`."""
    data = HEADER + json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) < pad_to:
        data += b" " * (pad_to - len(data))
    return data


def decode_datagram(data: bytes) -> dict[str, Any]:
    """Parse a datagram into its JSON body (with a string `type`), or raise DatagramError."""
    if len(data) > MAX_DATAGRAM:
        raise DatagramError("oversized")
    header, newline, payload = data.partition(b"\n")
    magic, _, version = header.partition(b" ")
    if magic != MAGIC or not newline:
        raise DatagramError("bad magic")
    if version != b"%d" % DISCOVERY_VERSION:
        raise DatagramError("wrong version")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DatagramError("bad json") from None
    if not isinstance(body, dict) or body.get("type") not in ("probe", "reply", "announce"):
        raise DatagramError("bad type")
    return body


def make_probe(nonce: str) -> bytes:
    return encode_datagram({"type": "probe", "nonce": nonce}, pad_to=PROBE_SIZE)


def _new_nonce() -> str:
    return secrets.token_hex(16)


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DatagramError(f"bad {name}")
    return value


def parse_server_info(body: dict[str, Any]) -> dict[str, Any]:
    """Validate the server description in a reply or announcement; every field is untrusted."""
    name = body.get("name")
    instance = body.get("instance")
    if not isinstance(name, str) or not isinstance(instance, str) \
            or not _INSTANCE.match(instance):
        raise DatagramError("bad name or instance")
    name = sanitize_text(name).strip()[:MAX_NAME] or "?"
    addresses = body.get("addresses", [])
    if not isinstance(addresses, list) or len(addresses) > MAX_ADDRESSES:
        raise DatagramError("bad addresses")
    clean_addresses: list[str] = []
    for address in addresses:
        try:
            clean_addresses.append(str(ipaddress.ip_address(address)))
        except (TypeError, ValueError):
            raise DatagramError("bad addresses") from None
    tls = body.get("tls", False)
    fingerprint = body.get("fingerprint")
    if not isinstance(tls, bool):
        raise DatagramError("bad tls")
    if fingerprint is not None and not (isinstance(fingerprint, str)
                                        and _FINGERPRINT.match(fingerprint)):
        raise DatagramError("bad fingerprint")
    interval = body.get("interval", DEFAULT_ANNOUNCE_INTERVAL)
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) \
            or not 0.05 <= interval <= 3600:
        raise DatagramError("bad interval")
    return {
        "name": name,
        "instance": instance,
        "port": _int_field(body, "port", 1, 65535),
        "addresses": clean_addresses,
        "version": _int_field(body, "version", 0, 1_000_000),
        "tls": tls,
        "fingerprint": fingerprint,
        "users": _int_field(body, "users", 0, 10**9),
        "rooms": _int_field(body, "rooms", 0, 10**9),
        "interval": float(interval),
    }


def _fit(body: dict[str, Any], limit: int) -> bytes | None:
    """Encode `body` in at most `limit` bytes, dropping addresses and shortening the name."""
    body = dict(body)
    body["addresses"] = list(body.get("addresses", []))[:MAX_ADDRESSES]
    data = encode_datagram(body)
    while len(data) > limit and body["addresses"]:
        body["addresses"].pop()
        data = encode_datagram(body)
    if len(data) > limit and len(str(body.get("name", ""))) > 16:
        body["name"] = str(body["name"])[:16]
        data = encode_datagram(body)
    return data if len(data) <= limit else None


# --------------------------------------------------------------------------- interfaces


#: How long the interface list and a responder's server description are reused: a burst of
#: probes costs one enumeration, and a changed address still shows within about a second.
CACHE_SECONDS = 1.0

_cache_lock = threading.Lock()
_cache: tuple[float, list[Interface]] = (-1e9, [])


def _interfaces_cached(max_age: float = CACHE_SECONDS) -> list[Interface]:
    """`interfaces()` at most every `max_age` seconds: probes may arrive in floods."""
    global _cache
    with _cache_lock:
        now = time.monotonic()
        if now - _cache[0] > max_age:
            _cache = (now, interfaces())
        return _cache[1]


def _broadcast_addresses() -> set[str]:
    """Every address a unicast reply must never go to: the broadcast addresses of this host's
    networks, the loopback broadcast and the limited broadcast."""
    found = {i.broadcast for i in _interfaces_cached() if i.broadcast}
    return found | {LOOPBACK_BROADCAST, "255.255.255.255"}


def default_targets() -> list[str]:
    """Broadcast address of every IPv4 interface that is up, plus loopback broadcast: where a
    server bound to every interface announces, so where a client looks by default."""
    return Scope("all").targets()


BROADCAST_ENV = "CHATKIT_BROADCAST"


def resolve_targets(broadcast: list[str] | None) -> list[str]:
    """`--broadcast` values (IPv4 addresses or host names) -> IPv4 addresses; ConfigError if bad.

    Without values, `CHATKIT_BROADCAST` (space-separated) if set, else every interface's
    broadcast address: a network where broadcast must go elsewhere is configured once.
    """
    if not broadcast:
        configured = os.environ.get(BROADCAST_ENV, "").split()
        if not configured:
            return default_targets()
        broadcast = configured
    targets: list[str] = []
    for item in broadcast:
        try:
            targets.append(str(ipaddress.IPv4Address(item.strip())))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(item.strip(), None, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            raise ConfigError(f"--broadcast {item!r} is not an IPv4 address or known host") \
                from None
        targets.append(str(infos[0][4][0]))
    return list(dict.fromkeys(targets))


# --------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """Where a server bound to `bind_host` can be reached, hence where it may be advertised.

    kind: `loopback` (127.x / ::1: this machine only), `address` (one address: that address's
    network), `all` (0.0.0.0 / ::: every interface that is up), `none` (unreachable over IPv4,
    e.g. a specific IPv6 address: discovery stays silent).
    """

    kind: Literal["loopback", "address", "all", "none"]
    address: str | None = None

    def networks(self) -> list[Interface]:
        if self.kind == "loopback":
            return [Interface("lo", "127.0.0.1", 8, True)]
        if self.kind == "address":
            return [i for i in interfaces() if i.address == self.address]
        if self.kind == "all":
            return [i for i in interfaces() if i.up]
        return []

    def targets(self) -> list[str]:
        """Broadcast addresses announcements go to."""
        if self.kind == "loopback":
            return [LOOPBACK_BROADCAST]
        found = [i.broadcast for i in self.networks() if i.up and i.broadcast]
        if self.kind == "all":
            found.append(LOOPBACK_BROADCAST)
        return list(dict.fromkeys(t for t in found if t))

    def accepts(self, source: str) -> bool:
        """Whether a probe from `source` may be answered (the asker can reach us)."""
        try:
            src = ipaddress.IPv4Address(source)
        except ValueError:
            return False
        if src.is_unspecified or src.is_multicast or source in _broadcast_addresses():
            return False  # a reply to a broadcast source would itself be a broadcast
        if self.kind == "all":
            return True
        if self.kind == "loopback":
            return src in _LOOPBACK_NET
        if self.kind == "address":
            local = _interfaces_cached()
            if src in _LOOPBACK_NET or any(i.address == source for i in local):
                return True  # a client on this very host can always connect to our address
            return any(src in i.network for i in local if i.address == self.address)
        return False

    def describe(self) -> str:
        if self.kind == "loopback":
            return "this machine only (loopback)"
        if self.kind == "address":
            return f"the network of {self.address}"
        if self.kind == "all":
            return "every network interface that is up"
        return "nowhere (not reachable over IPv4)"


def scope_for_bind(bind_host: str) -> Scope:
    """The discovery scope of a chat server bound to `bind_host` (address or host name)."""
    host = bind_host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in _WILDCARDS:
        return Scope("all")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return Scope("none")
        address = ipaddress.ip_address(infos[0][4][0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.is_loopback:
            return Scope("loopback")
        else:
            return Scope("none")  # IPv6-only bind: IPv4 broadcast would advertise the unreachable
    if address.is_loopback:
        return Scope("loopback")
    if address.is_unspecified:
        return Scope("all")
    return Scope("address", str(address))


# --------------------------------------------------------------------------- server side


class RateLimiter:
    """Token buckets per source address plus one global bucket; bounded memory.

    The global bucket caps what spoofed probes from many fake sources can make us send. When
    the per-source table is full, the source heard from least recently makes room: refusing new
    sources instead would let anyone who spoofs `max_sources` addresses shut everyone else out.
    (An evicted source starts again with a full bucket; the global bucket still bounds the total.)
    Used by one thread only (the responder's).
    """

    def __init__(self, *, rate: float = 2.0, burst: float = 8.0, global_rate: float = 40.0,
                 global_burst: float = 80.0, max_sources: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        self.max_sources = max(1, max_sources)
        self.clock = clock
        # source -> (tokens, last seen), least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._global = _Bucket(global_rate, global_burst, clock())

    def allow(self, source: str) -> bool:
        now = self.clock()
        known = self._buckets.pop(source, None)
        tokens, last = known if known is not None else (self.burst, now)
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        while len(self._buckets) >= self.max_sources:
            self._buckets.popitem(last=False)
        allowed = tokens >= 1 and self._global.take(now)
        self._buckets[source] = (tokens - 1 if allowed else tokens, now)
        return allowed


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _DropLog:
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


def _udp_socket(port: int, *, shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if shared:
            # Several servers (and watchers) on one host share the discovery port; broadcasts
            # are delivered to every socket in the group.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # 0.0.0.0, never a unicast address: Linux delivers broadcasts only to wildcard sockets.
        sock.bind(("0.0.0.0", port))
    except OSError:
        sock.close()
        raise
    return sock


class DiscoveryResponder:
    """Answers probes and announces a chat server, only where that server can be reached.

    `info()` returns the server description (name, instance, port, addresses, version, tls,
    fingerprint, users, rooms). It is called at most once per `CACHE_SECONDS`, not per reply:
    a server's `info()` enumerates the interfaces, and probes may arrive in floods.
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
        self.limiter = RateLimiter()
        self._drops = _DropLog()
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
            self._sock = _udp_socket(self.discovery_port, shared=True)
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
            self._drops.drop(exc.reason, host)
            return
        if body["type"] != "probe":
            return  # announcements (our own included) and replies are for clients
        nonce = body.get("nonce")
        if len(data) < MIN_PROBE_SIZE:
            self._drops.drop("short probe", host)
            return
        if not isinstance(nonce, str) or not _NONCE.match(nonce):
            self._drops.drop("bad nonce", host)
            return
        if port < 1024:
            # Clients probe from ephemeral ports; a privileged source port is a reflection attempt
            # at some service (DNS, NTP, ...).
            self._drops.drop("privileged source port", host)
            return
        if not self.scope.accepts(host):
            self._drops.drop("out of scope", host)
            return
        if not self.limiter.allow(host):
            self._drops.drop("rate limited", host)
            return
        info = self._info()
        if info is None:
            return
        reply = _fit({"type": "reply", "nonce": nonce, **info}, min(len(data), MAX_DATAGRAM))
        if reply is None:
            return
        try:
            assert self._sock is not None
            self._sock.sendto(reply, (host, port))
        except OSError as exc:
            self._drops.drop(f"send failed ({exc.strerror or exc})", host)

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
        data = _fit({"type": "announce", "event": event, **info}, MAX_DATAGRAM)
        if data is None:
            return
        # Recomputed each time: interfaces come and go (Wi-Fi, DHCP, VPN).
        for target in self.scope.targets():
            try:
                sock.sendto(data, (target, self.discovery_port))
            except OSError as exc:
                self._drops.drop(f"announce to {target} failed ({exc.strerror or exc})",
                                 target)


# --------------------------------------------------------------------------- client side


@dataclass
class ServerFound:
    """One server instance, however many interfaces it answered on."""

    name: str
    instance: str
    host: str  # the address to connect to
    port: int
    addresses: list[str]
    version: int
    tls: bool
    fingerprint: str | None
    users: int
    rooms: int
    rtt: float | None  # seconds; None when only heard from an announcement
    via: list[str] = field(default_factory=list)  # source addresses it was heard from
    interval: float = DEFAULT_ANNOUNCE_INTERVAL

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "instance": self.instance, "host": self.host,
            "port": self.port, "address": self.address, "addresses": self.addresses,
            "version": self.version, "tls": self.tls, "fingerprint": self.fingerprint,
            "users": self.users, "rooms": self.rooms,
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 3),
            "via": self.via,
        }


def _connect_host(source: str, addresses: list[str]) -> str:
    """Which address to use for a server heard from `source` that says it listens on
    `addresses`: the source when that is one of them (or it listens everywhere), else the
    address it is bound to (a server bound to one address may answer from another)."""
    if not addresses or source in addresses or any(
            ipaddress.ip_address(a).is_unspecified for a in addresses):
        return source
    v4 = [a for a in addresses if ":" not in a]
    return (v4 or addresses)[0]


def _server_from(info: dict[str, Any], source: str, rtt: float | None) -> ServerFound:
    return ServerFound(
        name=info["name"], instance=info["instance"],
        host=_connect_host(source, info["addresses"]), port=info["port"],
        addresses=info["addresses"], version=info["version"], tls=info["tls"],
        fingerprint=info["fingerprint"], users=info["users"], rooms=info["rooms"],
        rtt=rtt, via=[source], interval=info["interval"])


def _merge(known: ServerFound, new: ServerFound) -> None:
    """Fold another sighting of the same instance into `known` (keep the best address)."""
    for source in new.via:
        if source not in known.via:
            known.via.append(source)
    if new.rtt is not None and (known.rtt is None or new.rtt < known.rtt):
        known.rtt = new.rtt
    # A LAN address is more useful to show (and share) than a loopback one.
    if ipaddress.ip_address(known.host).is_loopback \
            and not ipaddress.ip_address(new.host).is_loopback:
        known.host = new.host
    known.users, known.rooms, known.name = new.users, new.rooms, new.name


def _send_probe(sock: socket.socket, target: str, port: int, nonce: str) -> str | None:
    try:
        sock.sendto(make_probe(nonce), (target, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _recv(sock: socket.socket) -> tuple[dict[str, Any], str] | None:
    try:
        data, source = sock.recvfrom(MAX_DATAGRAM + 1)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:
        # ICMP port-unreachable from a unicast target surfaces here on Linux
        if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return None
        raise
    try:
        return decode_datagram(data), source[0]
    except DatagramError:
        return None


def _sort_key(server: ServerFound) -> tuple[str, str, int]:
    return (server.name.casefold(), server.host, server.port)


def discover(*, timeout: float = 2.0, broadcast: list[str] | None = None,
             discovery_port: int = DISCOVERY_PORT, attempts: int = 3) -> list[ServerFound]:
    """Probe every target and collect replies for `timeout` seconds; one entry per instance.

    Probes are repeated `attempts` times within the timeout (UDP may be lost). Only replies
    echoing one of our nonces count, so an off-path attacker cannot inject servers blindly.
    """
    targets = resolve_targets(broadcast)
    results = _probe(targets, timeout=timeout, discovery_port=discovery_port,
                     attempts=attempts)
    return results.servers()


@dataclass
class _ProbeResults:
    by_instance: dict[str, ServerFound] = field(default_factory=dict)
    by_target: dict[str, list[str]] = field(default_factory=dict)  # nonce -> instances
    send_errors: dict[str, str] = field(default_factory=dict)
    echoed: set[str] = field(default_factory=set)  # nonces we heard ourselves

    def servers(self) -> list[ServerFound]:
        return sorted(self.by_instance.values(), key=_sort_key)


def _probe(targets: list[str], *, timeout: float, discovery_port: int, attempts: int,
           per_target_nonce: bool = False, listener: socket.socket | None = None
           ) -> _ProbeResults:
    results = _ProbeResults()
    timeout = max(0.05, timeout)
    attempts = max(1, min(attempts, 10))
    sent_at: dict[str, float] = {}
    nonce_target: dict[str, str] = {}
    start = time.monotonic()
    deadline = start + timeout
    schedule = [start + timeout * k / (attempts + 1) for k in range(attempts)]
    sock = _udp_socket(0, shared=False)
    try:
        sock.setblocking(False)
        while True:
            now = time.monotonic()
            if schedule and now >= schedule[0]:
                schedule.pop(0)
                shared_nonce = _new_nonce()
                for target in targets:
                    nonce = _new_nonce() if per_target_nonce else shared_nonce
                    nonce_target[nonce] = target
                    sent_at[nonce] = time.monotonic()
                    error = _send_probe(sock, target, discovery_port, nonce)
                    if error:
                        results.send_errors[target] = error
                    else:
                        results.send_errors.pop(target, None)
            if now >= deadline:
                break
            wake = min([deadline] + schedule[:1])
            readable = [sock] + ([listener] if listener is not None else [])
            ready, _, _ = select.select(readable, [], [], max(0.0, wake - now))
            for ready_sock in ready:
                received = _recv(ready_sock)
                if received is None:
                    continue
                body, source = received
                if ready_sock is listener:
                    if body["type"] == "probe" and body.get("nonce") in sent_at:
                        results.echoed.add(body["nonce"])
                    continue
                if body["type"] != "reply" or body.get("nonce") not in sent_at:
                    continue  # unsolicited or spoofed without our nonce
                try:
                    info = parse_server_info(body)
                except DatagramError:
                    continue
                nonce = body["nonce"]
                server = _server_from(info, source, time.monotonic() - sent_at[nonce])
                results.by_target.setdefault(nonce_target[nonce], [])
                if server.instance not in results.by_target[nonce_target[nonce]]:
                    results.by_target[nonce_target[nonce]].append(server.instance)
                if server.instance in results.by_instance:
                    _merge(results.by_instance[server.instance], server)
                else:
                    results.by_instance[server.instance] = server
    finally:
        sock.close()
    if per_target_nonce:
        results.echoed = {nonce_target[n] for n in results.echoed}
    return results


def select_servers(servers: list[ServerFound], name: str) -> list[ServerFound]:
    """Servers matching `name` (`--server NAME`): exact name (case-insensitive), else instance
    id, else address; used by `chatkit join`/`send` without a host."""
    key = name.casefold()
    exact = [s for s in servers if s.name.casefold() == key]
    if exact:
        return exact
    return [s for s in servers if s.instance == name or s.address == name or s.host == name]


def server_names(*, timeout: float = 0.5, broadcast: list[str] | None = None,
                 discovery_port: int = DISCOVERY_PORT) -> list[str]:
    """Names of the servers answering now, for shell completion of `--server`; never raises."""
    try:
        return sorted({s.name for s in discover(timeout=timeout, broadcast=broadcast,
                                                discovery_port=discovery_port)})
    except Exception:  # completion must never print a traceback into the shell
        return []


def find_server(name: str | None = None, *, timeout: float = 2.0,
                broadcast: list[str] | None = None,
                discovery_port: int = DISCOVERY_PORT) -> list[ServerFound]:
    """Discover and filter by `name`; raise NotFoundError (exit 6) with advice when none match.
    Returns every match so the caller can ask the user to choose when there are several."""
    servers = discover(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
    if name is not None:
        matches = select_servers(servers, name)
        if not matches:
            others = ", ".join(sorted({s.name for s in servers})) or "none"
            raise NotFoundError(f"no server named {name!r} answered (found: {others}); "
                                + NOTHING_FOUND_HINT)
        return matches
    if not servers:
        raise NotFoundError("no chatkit server answered on this network; " + NOTHING_FOUND_HINT)
    return servers


# --------------------------------------------------------------------------- watch


@dataclass(frozen=True)
class WatchEvent:
    """`kind`: appear, update (users/rooms/name changed) or leave; `reason` says why."""

    kind: Literal["appear", "update", "leave"]
    server: ServerFound
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "reason": self.reason, "server": self.server.to_dict()}


MAX_WATCHED = 1024  # servers `watch` keeps track of at once


def watch(*, broadcast: list[str] | None = None, discovery_port: int = DISCOVERY_PORT,
          probe_interval: float = 15.0, missed: int = MISSED_ANNOUNCEMENTS,
          stop: threading.Event | None = None, duration: float | None = None
          ) -> Iterator[WatchEvent]:
    """Listen for announcements and probe every `probe_interval` seconds; yield events.

    A server leaves when it announces its stop, when a new instance takes over its address
    (a restart), or when nothing was heard from it for `missed` announcement intervals.
    Runs until `stop` is set or `duration` has passed (or forever; Ctrl-C ends it).
    """
    targets = resolve_targets(broadcast)
    end = None if duration is None else time.monotonic() + duration
    listener: socket.socket | None
    try:
        listener = _udp_socket(discovery_port, shared=True)
        listener.setblocking(False)
    except OSError as exc:
        listener = None
        log.warning("discovery: cannot listen for announcements on UDP %d (%s); probing only",
                    discovery_port, exc.strerror or exc)
    try:
        prober = _udp_socket(0, shared=False)  # replies must not land on the shared port
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    prober.setblocking(False)
    known: dict[str, ServerFound] = {}
    last_seen: dict[str, float] = {}  # only for instances in `known`

    def forget(instance: str) -> ServerFound:
        last_seen.pop(instance, None)
        return known.pop(instance)
    gone: dict[str, float] = {}  # stopped instances; late datagrams must not resurrect them
    nonces: dict[str, float] = {}
    next_probe = time.monotonic()

    def expiry(server: ServerFound) -> float:
        # We hear a live server at least once per announcement interval (when listening) and
        # once per probe; the 1.25 covers the announcement jitter.
        period = max(probe_interval, 0.05)
        if listener is not None:
            period = min(period, server.interval)
        return last_seen[server.instance] + missed * period * 1.25

    try:
        while (stop is None or not stop.is_set()) and (end is None or time.monotonic() < end):
            now = time.monotonic()
            if now >= next_probe:
                nonce = _new_nonce()
                nonces[nonce] = now
                for old in [n for n, t in nonces.items() if now - t > 5.0]:
                    del nonces[old]
                for target in targets:
                    _send_probe(prober, target, discovery_port, nonce)
                next_probe = now + max(0.05, probe_interval)
            for server in [s for s in known.values() if now > expiry(s)]:
                yield WatchEvent("leave", forget(server.instance), "silent")
            wait = 0.2 if end is None else max(0.0, min(0.2, end - now))
            sockets = [prober] + ([listener] if listener is not None else [])
            ready, _, _ = select.select(sockets, [], [], wait)
            for sock in ready:
                received = _recv(sock)
                if received is None:
                    continue
                body, source = received
                rtt: float | None = None
                if body["type"] == "reply" and sock is prober and body.get("nonce") in nonces:
                    rtt = time.monotonic() - nonces[body["nonce"]]
                    event = "alive"
                elif body["type"] == "announce" and sock is listener \
                        and body.get("event") in ("start", "alive", "stop"):
                    event = body["event"]
                else:
                    continue
                try:
                    info = parse_server_info(body)
                except DatagramError:
                    continue
                server = _server_from(info, source, rtt)
                instance = server.instance
                if instance in gone:
                    continue
                if event == "stop":
                    gone[instance] = time.monotonic()
                    if len(gone) > 4096:
                        gone.pop(next(iter(gone)))
                    if instance in known:
                        yield WatchEvent("leave", forget(instance), "stopped")
                    continue
                if instance not in known and len(known) >= MAX_WATCHED:
                    continue  # a flood of spoofed announcements must not grow memory
                last_seen[instance] = time.monotonic()
                if instance in known:
                    before = known[instance]
                    changed = (before.users, before.rooms, before.name) != (
                        server.users, server.rooms, server.name)
                    _merge(before, server)
                    if changed:
                        yield WatchEvent("update", before, "changed")
                    continue
                for other in [s for s in known.values()
                              if (s.host, s.port) == (server.host, server.port)]:
                    yield WatchEvent("leave", forget(other.instance), "replaced")
                known[instance] = server
                yield WatchEvent("appear", server, "announce" if rtt is None else "probe")
    finally:
        prober.close()
        if listener is not None:
            listener.close()


# --------------------------------------------------------------------------- diagnose


@dataclass
class TargetCheck:
    """What happened to the probe sent to one target."""

    target: str
    interface: str | None  # our interface whose broadcast address this is
    address: str | None  # our address on it
    network: str | None
    error: str | None  # sending failed
    echoed: bool | None  # our own broadcast came back; None when that cannot be expected/seen
    servers: list[str] = field(default_factory=list)  # instances that answered this probe


@dataclass
class DiagnoseReport:
    discovery_port: int
    timeout: float
    interfaces: list[Interface]
    targets: list[TargetCheck]
    listening: bool
    listen_error: str | None
    servers: list[ServerFound]
    causes: list[str]
    fallback: str

    @property
    def ok(self) -> bool:
        return bool(self.servers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "discovery_port": self.discovery_port, "timeout": self.timeout,
            "interfaces": [{"name": i.name, "address": i.address, "prefix": i.prefix,
                            "up": i.up, "broadcast": i.broadcast} for i in self.interfaces],
            "targets": [t.__dict__ for t in self.targets],
            "listening": self.listening, "listen_error": self.listen_error,
            "servers": [s.to_dict() for s in self.servers],
            "causes": self.causes, "fallback": self.fallback,
        }


def diagnose(*, timeout: float = 2.0, broadcast: list[str] | None = None,
             discovery_port: int = DISCOVERY_PORT) -> DiagnoseReport:
    """Probe every target with its own nonce while listening on the discovery port ourselves,
    to tell "our broadcast never left/came back" from "nobody answered"."""
    all_interfaces = interfaces()
    targets = resolve_targets(broadcast)
    listener: socket.socket | None = None
    listen_error = None
    try:
        listener = _udp_socket(discovery_port, shared=True)
        listener.setblocking(False)
    except OSError as exc:
        listen_error = exc.strerror or str(exc)
    try:
        results = _probe(targets, timeout=timeout, discovery_port=discovery_port, attempts=2,
                         per_target_nonce=True, listener=listener)
    finally:
        if listener is not None:
            listener.close()
    checks: list[TargetCheck] = []
    for target in targets:
        owner = next((i for i in all_interfaces if i.broadcast == target), None)
        if owner is None and target == LOOPBACK_BROADCAST:
            owner = Interface("lo", "127.0.0.1", 8, True)
        # Only a broadcast reaches every socket sharing the port. A probe to one of our own
        # unicast addresses reaches just one of them (SO_REUSEPORT picks one; a server or a
        # `--watch` on this host may be it), so its echo missing proves nothing: unknown, not
        # "not heard", and never a firewall verdict.
        echoed: bool | None = None
        if listener is not None and target in results.echoed:
            echoed = True
        elif listener is not None and owner is not None:
            echoed = False
        checks.append(TargetCheck(
            target=target,
            interface=owner.name if owner else None,
            address=owner.address if owner else None,
            network=str(owner.network) if owner else None,
            error=results.send_errors.get(target),
            echoed=echoed,
            servers=results.by_target.get(target, []),
        ))
    servers = results.servers()
    report = DiagnoseReport(
        discovery_port=discovery_port, timeout=timeout, interfaces=all_interfaces,
        targets=checks, listening=listener is not None, listen_error=listen_error,
        servers=servers, causes=[],
        fallback="ask for the server's address (its `chatkit serve` banner shows it) and run "
                 "`chatkit join HOST[:PORT]`")
    report.causes = _likely_causes(report)
    return report


def _likely_causes(report: DiagnoseReport) -> list[str]:
    causes: list[str] = []
    port = report.discovery_port
    lan = [i for i in report.interfaces if not i.loopback]
    if not any(i.up for i in lan):
        causes.append("no network interface except loopback is up: connect to the network "
                      "(Wi-Fi/Ethernet) first")
    for down in [i for i in lan if not i.up]:
        causes.append(f"interface {down.name} ({down.address}) is down and was not probed")
    for check in report.targets:
        if check.error:
            causes.append(f"could not send to {check.target}: {check.error} (interface down, "
                          "no route, or sending broadcasts is blocked)")
        elif check.echoed is False:
            causes.append(f"our own probe to {check.target} did not come back: a local firewall "
                          f"is probably dropping UDP port {port} (check ufw/firewalld/iptables, "
                          "or Windows Defender Firewall / macOS firewall)")
    if report.listen_error:
        causes.append(f"could not listen on UDP port {port} ({report.listen_error}), so the "
                      "echo test was skipped; another program may hold the port")
    if report.servers:
        probed_lan = any(t.target != LOOPBACK_BROADCAST for t in report.targets)
        if probed_lan and all(ipaddress.ip_address(s.host).is_loopback for s in report.servers):
            causes.append("servers answered only on this machine: a server started with "
                          "`--host 127.0.0.1` is invisible to other machines; use "
                          "`chatkit serve --host 0.0.0.0`")
        return causes
    causes += [
        "no server is running with discovery on (a server started with `--no-discovery` stays "
        f"silent), or it uses another discovery port than {port} (`--discovery-port`)",
        f"the server's firewall drops incoming UDP port {port} (the chat port is TCP and "
        "may still work)",
        "Wi-Fi client isolation (guest, hotel, café and some office networks) blocks traffic "
        "between devices: use a network without it, or a wired connection",
        "a VPN is capturing your traffic or puts you on another subnet: disconnect it or allow "
        "local network access",
        "containers and VMs (Docker bridge, WSL2, VirtualBox NAT) sit on their own private "
        "network; broadcasts do not cross it: use host networking or a bridged adapter",
        "the server is on another subnet or VLAN: broadcasts do not cross routers; try "
        "`--broadcast` with that subnet's broadcast address, or the server's own address",
    ]
    return causes


# --------------------------------------------------------------------------- output


def _format_rtt(rtt: float | None) -> str:
    if rtt is None:
        return "-"
    return f"{rtt * 1000:.1f} ms"


def format_table(servers: list[ServerFound]) -> str:
    """A plain-text table: name, address:port, users, rooms, TLS, round-trip time."""
    rows = [("NAME", "ADDRESS", "USERS", "ROOMS", "TLS", "RTT")]
    for s in servers:
        rows.append((s.name, s.address, str(s.users), str(s.rooms), "yes" if s.tls else "no",
                     _format_rtt(s.rtt)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5}
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_json(servers: list[ServerFound]) -> str:
    return json.dumps({"servers": [s.to_dict() for s in servers]}, ensure_ascii=False, indent=2)


def format_event(event: WatchEvent) -> str:
    s = event.server
    mark = {"appear": "+", "update": "~", "leave": "-"}[event.kind]
    stamp = time.strftime("%H:%M:%S")
    detail = f"{s.users} user{'s' if s.users != 1 else ''}, {s.rooms} room" \
             f"{'s' if s.rooms != 1 else ''}"
    if event.kind == "leave":
        detail = {"stopped": "stopped", "silent": "no longer heard",
                  "replaced": "restarted"}.get(event.reason, event.reason)
    return f"{stamp} {mark} {s.name}  {s.address}  ({detail})"


def format_diagnose(report: DiagnoseReport) -> str:
    port = report.discovery_port
    lines = [f"Discovery self-test (UDP port {port}, {report.timeout:g} s)", "", "Interfaces:"]
    for i in report.interfaces:
        state = "up" if i.up else "DOWN"
        lines.append(f"  {i.name:<12} {i.address}/{i.prefix:<3} {state:<4} "
                     f"broadcast {i.broadcast or '-'}")
    if not report.listening:
        lines.append(f"  (could not listen on UDP {port}: {report.listen_error}; "
                     "echo test skipped)")
    lines += ["", "Probes:"]
    names = {s.instance: s.name for s in report.servers}
    for t in report.targets:
        where = f" via {t.interface}" if t.interface else ""
        if t.error:
            status = f"send FAILED: {t.error}"
        else:
            echo = {True: "own probe came back", False: "own probe NOT heard",
                    None: "echo n/a"}[t.echoed]
            answered = ", ".join(names.get(i, i) for i in t.servers) or "no answer"
            status = f"sent, {echo}; {answered}"
        lines.append(f"  {t.target:<16}{where}: {status}")
    lines.append("")
    if report.servers:
        lines += ["Servers found:", format_table(report.servers)]
    else:
        lines.append("No server answered.")
    if report.causes:
        lines += ["", "Likely causes:" if not report.servers else "Notes:"]
        lines += [f"  - {cause}" for cause in report.causes]
    if not report.servers:
        lines += ["", f"Fallback: {report.fallback}."]
    return "\n".join(lines)


def run_discover(*, timeout: float = 2.0, json_output: bool = False, watch_mode: bool = False,
                 diagnose_mode: bool = False, broadcast: list[str] | None = None,
                 discovery_port: int = DISCOVERY_PORT, out: TextIO | None = None,
                 err: TextIO | None = None, stop: threading.Event | None = None,
                 duration: float | None = None) -> int:
    """What `chatkit discover` does; returns the exit status (0 found, 6 nothing found).

    `stop`/`duration` bound `watch_mode` (tests); otherwise it runs until Ctrl-C.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if diagnose_mode:
        report = diagnose(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
        print(json.dumps(report.to_dict(), indent=2) if json_output
              else format_diagnose(report), file=out, flush=True)
        return ExitCode.OK if report.ok else ExitCode.NOT_FOUND
    if watch_mode:
        seen = False
        if not json_output:
            print(f"watching for chatkit servers on UDP {discovery_port} (Ctrl-C to stop)",
                  file=err, flush=True)
        try:
            for event in watch(broadcast=broadcast, discovery_port=discovery_port,
                               probe_interval=max(timeout, 1.0) * 5, stop=stop,
                               duration=duration):
                seen = True
                print(json.dumps(event.to_dict(), ensure_ascii=False) if json_output
                      else format_event(event), file=out, flush=True)
        except KeyboardInterrupt:
            pass
        return ExitCode.OK if seen else ExitCode.NOT_FOUND
    servers = discover(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
    if json_output:
        print(format_json(servers), file=out, flush=True)
    elif servers:
        print(format_table(servers), file=out, flush=True)
    if not servers:
        print(f"no chatkit server answered within {timeout:g} s on UDP {discovery_port}; "
              + NOTHING_FOUND_HINT, file=err, flush=True)
        return ExitCode.NOT_FOUND
    return ExitCode.OK
