"""The client side of discovery: probe, collect the replies, pick a server.

Owns: `ServerFound` (one server instance, however many interfaces it answered on) and how
sightings of one instance are merged; `probe_targets`, the probe-and-listen loop that
`discover` and `diagnose` share; and the questions clients ask: every server (`discover`), one
by name (`find_server`, `select_servers`), the node of a cluster to use (`one_cluster`,
`pick_node`) and just the names (`server_names`, for completion).
Returns data or raises ChatkitErrors; never prints.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatkit.discovery.scope import resolve_targets
from chatkit.discovery.wire import (
    DEFAULT_ANNOUNCE_INTERVAL,
    DISCOVERY_PORT,
    DatagramError,
    ServerInfo,
    new_nonce,
    parse_server_info,
    receive,
    send_probe,
    udp_socket,
)
from chatkit.errors import NotFoundError
from chatkit.net.addresses import format_address


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
    password: bool | None = None  # whether it needs a password; None: an older server
    irc_port: int | None = None  # the IRC door's ports, when on
    irc_tls_port: int | None = None
    cluster: str | None = None  # the cluster it is a node of (`serve --cluster`)
    node: str | None = None  # its node id in that cluster

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def identity(self) -> str:
        """The name this server's certificate is remembered under (chatkit/tls/identities):
        its name, or for a node of a cluster `CLUSTER/NODE` (the nodes of one cluster may
        share a name and have certificates of their own)."""
        return f"{self.cluster}/{self.node}" if self.cluster and self.node else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "instance": self.instance, "host": self.host,
            "port": self.port, "address": self.address, "addresses": self.addresses,
            "version": self.version, "tls": self.tls, "fingerprint": self.fingerprint,
            "password": self.password,
            "irc_port": self.irc_port, "irc_tls_port": self.irc_tls_port,
            "cluster": self.cluster, "node": self.node,
            "users": self.users, "rooms": self.rooms,
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 3),
            "via": self.via,
        }

    @classmethod
    def heard(cls, info: ServerInfo, source: str, rtt: float | None) -> ServerFound:
        """The server described by `info`, heard from `source` (`rtt` after our probe)."""
        return cls(
            name=info["name"], instance=info["instance"],
            host=connect_host(source, info["addresses"]), port=info["port"],
            addresses=info["addresses"], version=info["version"], tls=info["tls"],
            fingerprint=info["fingerprint"], users=info["users"], rooms=info["rooms"],
            rtt=rtt, via=[source], interval=info["interval"], password=info["password"],
            irc_port=info.get("irc_port"), irc_tls_port=info.get("irc_tls_port"),
            cluster=info.get("cluster"), node=info.get("node"))

    def merge(self, new: ServerFound) -> None:
        """Fold another sighting of the same instance into this one (keep the best address)."""
        for source in new.via:
            if source not in self.via:
                self.via.append(source)
        if new.rtt is not None and (self.rtt is None or new.rtt < self.rtt):
            self.rtt = new.rtt
        # A LAN address is more useful to show (and share) than a loopback one.
        if ipaddress.ip_address(self.host).is_loopback \
                and not ipaddress.ip_address(new.host).is_loopback:
            self.host = new.host
        self.users, self.rooms, self.name = new.users, new.rooms, new.name
        self.cluster, self.node = new.cluster, new.node


def connect_host(source: str, addresses: list[str]) -> str:
    """Which address to use for a server heard from `source` that says it listens on
    `addresses`: the source when that is one of them (or it listens everywhere), else the
    address it is bound to (a server bound to one address may answer from another)."""
    if not addresses or source in addresses or any(
            ipaddress.ip_address(a).is_unspecified for a in addresses):
        return source
    v4 = [a for a in addresses if ":" not in a]
    return (v4 or addresses)[0]


def _sort_key(server: ServerFound) -> tuple[str, str, int]:
    return (server.name.casefold(), server.host, server.port)


@dataclass
class ProbeResults:
    """What `probe_targets` saw: servers by instance, and per target who answered, whether
    sending failed and (with a listener) whether our own probe came back."""

    by_instance: dict[str, ServerFound] = field(default_factory=dict)
    by_target: dict[str, list[str]] = field(default_factory=dict)  # target -> instances
    send_errors: dict[str, str] = field(default_factory=dict)  # target -> OS error
    # targets whose probe we heard ourselves (only known with `per_target_nonce`)
    echoed: set[str] = field(default_factory=set)

    def servers(self) -> list[ServerFound]:
        return sorted(self.by_instance.values(), key=_sort_key)

    def add(self, server: ServerFound) -> None:
        """Fold a sighting into the server of its instance id, when it is that server (same
        port and certificate); a reply that copies an instance id but differs is listed on
        its own, never merged away (nor able to hide the real one)."""
        key = server.instance
        known = self.by_instance.get(key)
        if known is not None and (known.port, known.fingerprint) != (server.port,
                                                                    server.fingerprint):
            key = f"{server.instance} {server.port} {server.fingerprint}"
            known = self.by_instance.get(key)
        if known is not None:
            known.merge(server)
        else:
            self.by_instance[key] = server


def probe_targets(targets: list[str], *, timeout: float, discovery_port: int, attempts: int,
                  per_target_nonce: bool = False, listener: socket.socket | None = None
                  ) -> ProbeResults:
    """Probe `targets` `attempts` times within `timeout` seconds and collect the replies.

    Only replies echoing one of our nonces count. With `per_target_nonce`, each target gets
    its own nonce, so replies and echoes (probes heard on `listener`, a socket on the
    discovery port) can be told apart per target.
    """
    results = ProbeResults()
    timeout = max(0.05, timeout)
    attempts = max(1, min(attempts, 10))
    sent_at: dict[str, float] = {}
    nonce_target: dict[str, str] = {}
    echoed_nonces: set[str] = set()
    start = time.monotonic()
    deadline = start + timeout
    schedule = [start + timeout * k / (attempts + 1) for k in range(attempts)]
    sock = udp_socket(0, shared=False)
    try:
        sock.setblocking(False)
        while True:
            now = time.monotonic()
            if schedule and now >= schedule[0]:
                schedule.pop(0)
                shared_nonce = new_nonce()
                for target in targets:
                    nonce = new_nonce() if per_target_nonce else shared_nonce
                    nonce_target[nonce] = target
                    sent_at[nonce] = time.monotonic()
                    error = send_probe(sock, target, discovery_port, nonce)
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
                received = receive(ready_sock)
                if received is None:
                    continue
                body, source = received
                if ready_sock is listener:
                    if body["type"] == "probe" and body.get("nonce") in sent_at:
                        echoed_nonces.add(body["nonce"])
                    continue
                if body["type"] != "reply" or body.get("nonce") not in sent_at:
                    continue  # unsolicited or spoofed without our nonce
                try:
                    info = parse_server_info(body)
                except DatagramError:
                    continue
                nonce = body["nonce"]
                server = ServerFound.heard(info, source, time.monotonic() - sent_at[nonce])
                answered = results.by_target.setdefault(nonce_target[nonce], [])
                if server.instance not in answered:
                    answered.append(server.instance)
                results.add(server)
    finally:
        sock.close()
    if per_target_nonce:
        results.echoed = {nonce_target[n] for n in echoed_nonces}
    return results


def discover(*, timeout: float = 2.0, broadcast: list[str] | None = None,
             discovery_port: int = DISCOVERY_PORT, attempts: int = 3) -> list[ServerFound]:
    """Probe every target and collect replies for `timeout` seconds; one entry per instance.

    Probes are repeated `attempts` times within the timeout (UDP may be lost). Only replies
    echoing one of our nonces count, so an off-path attacker cannot inject servers blindly.
    """
    targets = resolve_targets(broadcast)
    results = probe_targets(targets, timeout=timeout, discovery_port=discovery_port,
                            attempts=attempts)
    return results.servers()


def select_servers(servers: list[ServerFound], name: str) -> list[ServerFound]:
    """Servers matching `name`: exact name or cluster name (case-insensitive: every node of
    a cluster of that name), else instance id, else address; how `chatkit join`/`send`
    without a host pick the server a user named."""
    key = name.casefold()
    exact = [s for s in servers if s.name.casefold() == key
             or (s.cluster is not None and s.cluster.casefold() == key)]
    if exact:
        return exact
    return [s for s in servers if s.instance == name or s.address == name or s.host == name]


def one_cluster(servers: list[ServerFound]) -> str | None:
    """The cluster's name when every one of `servers` is a node of that one cluster (they
    are then one chat, and any node will do: `pick_node`); None otherwise."""
    names = {s.cluster.casefold() if s.cluster else None for s in servers}
    if len(names) != 1 or None in names:
        return None
    return servers[0].cluster


def pick_node(nodes: list[ServerFound], timeout: float = 1.0,
              reachable: Callable[[str, int, float], bool] | None = None) -> ServerFound:
    """The node of a cluster to connect to: the least loaded (fewest users, then the
    quickest to answer) whose chat port accepts a TCP connection within `timeout`; the least
    loaded when none does (connecting to it then says why)."""
    check = reachable or tcp_reachable
    ranked = sorted(nodes, key=lambda s: (s.users, s.rtt if s.rtt is not None else 1e9,
                                          s.address))
    return next((s for s in ranked if check(s.host, s.port, timeout)), ranked[0])


def tcp_reachable(host: str, port: int, timeout: float) -> bool:
    """Whether `host:port` accepts a TCP connection now (closed again at once)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def server_names(*, timeout: float = 0.5, broadcast: list[str] | None = None,
                 discovery_port: int = DISCOVERY_PORT) -> list[str]:
    """Names of the servers answering now, for shell completion; never raises."""
    try:
        found = discover(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
        return sorted({s.name for s in found} | {s.cluster for s in found if s.cluster})
    except Exception:  # completion must never print a traceback into the shell
        return []


def find_server(name: str | None = None, *, timeout: float = 2.0,
                broadcast: list[str] | None = None,
                discovery_port: int = DISCOVERY_PORT) -> list[ServerFound]:
    """Discover and filter by `name`; raise NotFoundError when none match. Returns every
    match so the caller can ask the user to choose when there are several."""
    servers = discover(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
    if name is not None:
        matches = select_servers(servers, name)
        if not matches:
            others = ", ".join(sorted({s.name for s in servers}) + sorted(
                {f"cluster {s.cluster}" for s in servers if s.cluster})) or "none"
            raise NotFoundError(f"no server named {name!r} answered (found: {others})")
        return matches
    if not servers:
        raise NotFoundError("no chatkit server answered on this network")
    return servers
