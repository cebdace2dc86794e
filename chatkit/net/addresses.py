"""Host:port addresses: parsing what a user types, formatting what chatkit prints."""

from __future__ import annotations

import functools
import ipaddress


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[v6]:PORT` or a bare IPv6 address -> (host, port).

    Raises ValueError with a one-line reason for anything else.
    """
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r} (write [IPV6]:PORT)")
        if not _is_ipv6(host):
            raise ValueError(f"bad address {text!r}: {host!r} is not an IPv6 address")
        port_text = rest[1:]
        if rest == ":":
            raise ValueError(f"bad port in {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text:
            raise ValueError(f"bad port in {text!r}")
    elif ":" in text:
        # several colons: only a bare IPv6 address, never a host with ports to guess from
        if not _is_ipv6(text):
            raise ValueError(f"bad address {text!r}: more than one ':' (HOST:PORT, or "
                             "[IPV6]:PORT for an IPv6 address)")
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def format_address(host: str, port: int) -> str:
    """`host:port`, with brackets around an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_of(address: str) -> str:
    """The host part of a formatted address ("1.2.3.4:5" or "[::1]:5")."""
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


#: IPv6 addresses are handed out per /64 (SLAAC, privacy addresses): one host may use any
#: address in its /64, so limits count the /64 as one address.
IPV6_GROUP_PREFIX = 64


@functools.lru_cache(maxsize=4096)  # every accept asks, mostly for the same few hosts
def address_group(host: str) -> str:
    """The group a peer address is counted in by per-address limits: an IPv4 address itself
    (/32: on a LAN every host has its own), the /64 of an IPv6 address (an IPv4-mapped one
    counts as its IPv4 address). Anything that is not an IP address is its own group."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False)
        return str(network)
    return str(address)


def parse_endpoint(text: str) -> tuple[str, int]:
    """An address another program handed us (`IP:PORT`, `[IPV6]:PORT`) -> (ip, port).

    Stricter than `parse_address`: the host must be an IP address a connection can go to
    (no name to resolve, no wildcard, multicast or broadcast address) and the port must be
    given. Raises ValueError with a one-line reason for anything else."""
    host, port = parse_address(text, 0)
    if port == 0:
        raise ValueError(f"no port in {text!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if address.is_unspecified or address.is_multicast or str(address) == "255.255.255.255":
        raise ValueError(f"{host!r} is not an address to connect to")
    return str(address), port
