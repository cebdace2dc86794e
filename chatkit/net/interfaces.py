"""Network interfaces: their addresses, and which addresses reach a socket bound to a host.

Uses `ifaddr` (a maintained, dependency-free library) instead of parsing `ip`/`ifconfig` output.
The start banner and discovery both read interfaces from here.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass

import ifaddr


@dataclass(frozen=True)
class Interface:
    """One IPv4 address of a network interface."""

    name: str
    address: str
    prefix: int
    up: bool

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)

    @property
    def loopback(self) -> bool:
        return ipaddress.IPv4Address(self.address).is_loopback

    @property
    def broadcast(self) -> str | None:
        """The directed broadcast address; None where there is none (/31, /32)."""
        if self.prefix >= 31:
            return None
        return str(self.network.broadcast_address)


def _is_up(name: str) -> bool:
    # ifaddr reports addresses but not link state; Linux exposes IFF_UP in sysfs. Elsewhere an
    # interface with an address is assumed up (a probe to a down one just fails to send).
    if "/" in name or not sys.platform.startswith("linux"):
        return True
    try:
        with open(f"/sys/class/net/{name}/flags") as flags:
            return bool(int(flags.read().strip(), 16) & 0x1)
    except (OSError, ValueError):
        return True


def interfaces() -> list[Interface]:
    """Every IPv4 address of every interface (up or not), via ifaddr."""
    found: list[Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(Interface(adapter.nice_name or adapter.name, ip.ip,
                                       int(ip.network_prefix), _is_up(adapter.name)))
    return found


def interface_addresses(include_ipv6: bool = False) -> list[str]:
    """Addresses of every interface that is up, loopback last; IPv6 link-local skipped."""
    found = [i.address for i in interfaces() if i.up]
    if include_ipv6:
        for adapter in ifaddr.get_adapters():
            if not _is_up(adapter.name):
                continue
            for ip in adapter.ips:
                if not isinstance(ip.ip, str):
                    address = ipaddress.IPv6Address(ip.ip[0])
                    if not address.is_link_local:
                        found.append(str(address))
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda a: (ipaddress.ip_address(a).is_loopback, ":" in a))


def reachable_addresses(bound_host: str) -> list[str]:
    """The addresses a client can connect to for a socket bound to `bound_host`."""
    if bound_host in ("0.0.0.0", ""):
        return [a for a in interface_addresses() if ":" not in a] or ["127.0.0.1"]
    if bound_host == "::":
        return interface_addresses(include_ipv6=True) or ["::1"]
    return [bound_host]
