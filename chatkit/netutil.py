"""Interface addresses: which addresses reach a socket bound to a given host.

Uses `ifaddr` (a maintained, dependency-free library) instead of parsing `ip`/`ifconfig` output.
"""

from __future__ import annotations

import ipaddress

import ifaddr


def interface_addresses(include_ipv6: bool = False) -> list[str]:
    """IP addresses of every interface, loopback last; IPv6 link-local addresses skipped."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif include_ipv6:
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
