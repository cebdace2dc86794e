"""Where discovery datagrams may go: a server's scope and a client's probe targets.

Owns: which networks a chat server bound to a given address can be reached on, hence where it
announces and whom it answers (`Scope`, `scope_for_bind`); which broadcast addresses a client
probes (`resolve_targets`, `default_targets`, the CHATKIT_BROADCAST setting); and the short-lived
cache of the interface list that makes a flood of probes cost one enumeration.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal

from chatkit.errors import ConfigError
from chatkit.net.interfaces import Interface, interfaces

LOOPBACK_BROADCAST = "127.255.255.255"
BROADCAST_ENV = "CHATKIT_BROADCAST"

#: How long the interface list and a responder's server description are reused: a burst of
#: probes costs one enumeration, and a changed address still shows within about a second.
CACHE_SECONDS = 1.0

_LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
_WILDCARDS = {"", "0.0.0.0", "::", "*"}

_cache_lock = threading.Lock()
_cache: tuple[float, list[Interface]] = (-1e9, [])


class TargetError(ConfigError):
    """A probe target that is neither an IPv4 address nor a host name that resolves."""

    def __init__(self, target: str, reason: str = "is not an IPv4 address or known host"
                 ) -> None:
        super().__init__(f"broadcast target {target!r} {reason}")
        self.target = target
        self.reason = reason


def interfaces_cached(max_age: float = CACHE_SECONDS) -> list[Interface]:
    """`interfaces()` at most every `max_age` seconds: probes may arrive in floods."""
    global _cache
    with _cache_lock:
        now = time.monotonic()
        if now - _cache[0] > max_age:
            _cache = (now, interfaces())
        return _cache[1]


def clear_interface_cache() -> None:
    """Forget the cached interface list: the next `interfaces_cached()` enumerates again."""
    global _cache
    with _cache_lock:
        _cache = (-1e9, [])


def broadcast_addresses() -> set[str]:
    """Every address a unicast reply must never go to: the broadcast addresses of this host's
    networks, the loopback broadcast and the limited broadcast."""
    found = {i.broadcast for i in interfaces_cached() if i.broadcast}
    return found | {LOOPBACK_BROADCAST, "255.255.255.255"}


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
        if src.is_unspecified or src.is_multicast or source in broadcast_addresses():
            return False  # a reply to a broadcast source would itself be a broadcast
        if self.kind == "all":
            return True
        if self.kind == "loopback":
            return src in _LOOPBACK_NET
        if self.kind == "address":
            local = interfaces_cached()
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


def default_targets() -> list[str]:
    """Broadcast address of every IPv4 interface that is up, plus loopback broadcast: where a
    server bound to every interface announces, so where a client looks by default."""
    return Scope("all").targets()


def resolve_targets(broadcast: list[str] | None) -> list[str]:
    """Probe targets (IPv4 addresses or host names) -> IPv4 addresses; TargetError if one is
    neither.

    Without targets, `CHATKIT_BROADCAST` (space-separated) if set, else every interface's
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
            raise TargetError(item) from None
        targets.append(str(infos[0][4][0]))
    return list(dict.fromkeys(targets))
