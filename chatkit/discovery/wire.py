"""The discovery datagram (docs/protocol.md, "Discovery (UDP)") and the UDP socket it travels on.

Owns: the format (a header line + one JSON object), its limits and validation (every field
of a datagram is untrusted), fitting a description into a size limit, nonces, and the few
socket calls every discovery role shares (a broadcast-capable UDP socket, sending a probe,
receiving one datagram). Knows nothing about scopes, servers or output.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import secrets
import socket
from typing import Any, TypedDict

from chatkit.protocol import sanitize_text

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

# \Z, not $: `$` also matches before a trailing newline, which would let "abc\n" through
_NONCE = re.compile(r"^[0-9a-f]{16,64}\Z")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
_FINGERPRINT = re.compile(r"^[0-9A-Za-z:+/=_-]{1,128}\Z")


class ServerInfo(TypedDict):
    """A validated server description, as carried by replies and announcements."""

    name: str
    instance: str
    port: int
    addresses: list[str]
    version: int
    tls: bool
    fingerprint: str | None
    password: bool | None  # whether clients need a password; None: not said (older server)
    users: int
    rooms: int
    interval: float
    #: the IRC door's plain and TLS ports; None when off or not said (added without a
    #: version change, like `password`)
    irc_port: int | None
    irc_tls_port: int | None
    #: the cluster this server is a node of (`serve --cluster`) and its node id; None when
    #: it is not clustered or does not say (added without a version change)
    cluster: str | None
    node: str | None


class DatagramError(ValueError):
    """A datagram that is not a valid discovery message; `reason` is a short tag for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- format


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
    """A probe carrying `nonce`, padded to PROBE_SIZE."""
    return encode_datagram({"type": "probe", "nonce": nonce}, pad_to=PROBE_SIZE)


def new_nonce() -> str:
    return secrets.token_hex(16)


def is_valid_nonce(nonce: object) -> bool:
    """Whether a probe's `nonce` is one a reply may echo (16-64 lowercase hex digits)."""
    return isinstance(nonce, str) and _NONCE.match(nonce) is not None


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DatagramError(f"bad {name}")
    return value


def parse_server_info(body: dict[str, Any]) -> ServerInfo:
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
    password = body.get("password")
    if password is not None and not isinstance(password, bool):
        raise DatagramError("bad password")
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
        "password": password,
        "users": _int_field(body, "users", 0, 10**9),
        "rooms": _int_field(body, "rooms", 0, 10**9),
        "interval": float(interval),
        "irc_port": _optional_port(body, "irc_port"),
        "irc_tls_port": _optional_port(body, "irc_tls_port"),
        "cluster": _optional_name(body, "cluster"),
        "node": _optional_name(body, "node"),
    }


def _optional_name(body: dict[str, Any], name: str) -> str | None:
    """A name shown to people (a cluster's, a node's id): sanitised like chat text and cut
    to MAX_NAME; anything but a string with something visible in it is invalid."""
    value = body.get(name)
    if value is None:
        return None
    clean = sanitize_text(value).strip()[:MAX_NAME] if isinstance(value, str) else ""
    if not clean:
        raise DatagramError(f"bad {name}")
    return clean


def _optional_port(body: dict[str, Any], name: str) -> int | None:
    return None if body.get(name) is None else _int_field(body, name, 1, 65535)


def fit_datagram(body: dict[str, Any], limit: int) -> bytes | None:
    """Encode `body` in at most `limit` bytes, dropping addresses and shortening the name;
    None when even that does not fit."""
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


# --------------------------------------------------------------------------- sockets


def udp_socket(port: int, *, shared: bool) -> socket.socket:
    """A broadcast-capable UDP socket bound to 0.0.0.0:`port` (0: any free port); `shared`
    lets several servers and watchers on one host use the discovery port together."""
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


def send_probe(sock: socket.socket, target: str, port: int, nonce: str) -> str | None:
    """Send one probe; the OS error text when sending failed, else None."""
    try:
        sock.sendto(make_probe(nonce), (target, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def receive(sock: socket.socket) -> tuple[dict[str, Any], str] | None:
    """One valid datagram from a non-blocking socket: (body, source address); None when there
    was nothing to read or it was not a discovery message."""
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
