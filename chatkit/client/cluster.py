"""The cluster a client is on (`serve --cluster`, docs/cluster.md): which nodes the last
`welcome` listed, and where to go, in which order, when the node the client was on is gone.

Owns: `Failover` (what the link keeps and asks), `ClusterView` (the `welcome`'s `cluster`,
its addresses parsed with `chatkit.net`: only IP addresses with a port, never a name to
resolve), `failover_targets` (the other live nodes,
fewest users first, each with the certificate fingerprint to expect: the trust rule of
docs/security.md, "Clusters") and `fail_over` (trying them in turn). The link
(chatkit/client/link.py) calls these when reconnecting to its own node failed; nothing here
opens a socket itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from chatkit.client.connection import Connection
from chatkit.client.link_options import LinkOptions
from chatkit.errors import ChatkitError, ProtocolError, RefusedError
from chatkit.net.addresses import format_address, parse_endpoint
from chatkit.paths import known_servers_file
from chatkit.protocol.events import ClusterInfo
from chatkit.tls import KnownServers, TrustError

#: addresses of one node tried in one round (a node lists every address it listens on)
ADDRESSES_PER_NODE = 2


@dataclass(frozen=True)
class Node:
    """One live node as the last `welcome` listed it."""

    id: str
    addresses: tuple[tuple[str, int], ...]  # (ip, port), the unusable ones left out
    fingerprint: str | None
    users: int


@dataclass(frozen=True)
class ClusterView:
    """The `cluster` of the last `welcome`: the cluster's name, the id of the node that sent
    it (the one the client is on) and every live node."""

    name: str
    node: str
    nodes: tuple[Node, ...]

    @classmethod
    def from_welcome(cls, welcome: dict[str, Any]) -> ClusterView | None:
        """The view a `welcome` gives (already checked by `check_server_frame`: a malformed
        `cluster` never got here); None without one. Addresses that are not `IP:PORT` are
        left out, never resolved."""
        if not isinstance(welcome.get("cluster"), dict):
            return None
        cluster = cast(ClusterInfo, welcome["cluster"])
        nodes = []
        for node in cluster["nodes"]:
            addresses = []
            for text in node["addresses"]:
                try:
                    addresses.append(parse_endpoint(text))
                except ValueError:
                    continue
            nodes.append(Node(node["id"], tuple(addresses), node["fingerprint"],
                              node["users"]))
        return cls(cluster["name"], cluster["node"], tuple(nodes))

    def others(self) -> list[Node]:
        """Every node but this one, fewest users first (then by id, for a stable order)."""
        return sorted((n for n in self.nodes if n.id != self.node),
                      key=lambda n: (n.users, n.id))


@dataclass(frozen=True)
class Target:
    """Somewhere to reconnect to: a node's address and the certificate it must present
    (None: checked against this machine's pins only, or not at all without TLS/--insecure)."""

    node: str
    host: str
    port: int
    fingerprint: str | None

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)


def failover_targets(view: ClusterView, here: str, *, tls: bool, verified: bool,
                     pinned: Callable[[str], bool], exclude: Iterable[str] = ()
                     ) -> list[Target]:
    """Where to go when the node the client was on (host `here`) is gone: the other nodes
    of `view`, fewest users first, at most ADDRESSES_PER_NODE addresses each (those of
    `here`'s IP version first; loopback ones only when `here` is loopback: elsewhere they
    would name the client's own machine). Nodes whose id is in `exclude` (one that presented
    the wrong certificate) are left out.

    The trust rule (docs/security.md, "Clusters"): with TLS whose certificate was checked
    (`verified`), a node's fingerprint comes from a node the client already trusts, so the
    node must present exactly it (its address is pinned to it on the first connection); a
    node listed without a fingerprint is tried only at an address this machine has pinned
    (`pinned`), never trusted on first use. Without TLS, or with --insecure, there is no
    certificate to check: the fingerprint is not used."""
    skip = set(exclude)
    targets = []
    for node in view.others():
        if node.id in skip:
            continue
        for host, port in _ranked(node.addresses, here)[:ADDRESSES_PER_NODE]:
            address = format_address(host, port)
            if tls and verified and node.fingerprint is None and not pinned(address):
                continue
            expected = node.fingerprint if tls and verified else None
            targets.append(Target(node.id, host, port, expected))
    return targets


def _ranked(addresses: tuple[tuple[str, int], ...], here: str) -> list[tuple[str, int]]:
    home: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        home = ipaddress.ip_address(here.split("%", 1)[0])
    except ValueError:  # a host name: its IP version and scope are unknown, but for one
        name = here.casefold().rstrip(".")
        local = name == "localhost" or name.endswith(".localhost")
        home = ipaddress.ip_address("127.0.0.1") if local else None
    usable = []
    for host, port in addresses:
        ip = ipaddress.ip_address(host)
        if ip.is_loopback and not (home is not None and home.is_loopback):
            continue
        usable.append((host, port, 0 if home is not None and ip.version == home.version
                       else 1))
    return [(host, port) for host, port, _ in sorted(usable, key=lambda u: u[2])]


def fail_over(targets: list[Target], open_target: Callable[[Target], Connection],
              status: Callable[[str], None], distrusted: set[str],
              stopping: Callable[[], bool] = lambda: False) -> tuple[Connection, Target] | None:
    """Try `targets` in order; the first connection made (and its target), or None. A node
    that presents another certificate than the one its cluster named is told about and put
    in `distrusted` (never tried again by this client); a refusal or a node that does not
    speak chatkit is told about and the next one tried; an unreachable one is passed over.
    Stops as soon as `stopping()` (the user quit meanwhile)."""
    for target in targets:
        if stopping():
            return None
        if target.node in distrusted:
            continue
        try:
            return open_target(target), target
        except TrustError as exc:
            distrusted.add(target.node)
            status(f"not moving to cluster node {target.address}: " + (
                f"it presented another certificate than {exc.announced}, the one its cluster "
                "named; someone may be impersonating it" if exc.announced else str(exc)))
        except (RefusedError, ProtocolError) as exc:
            status(f"cluster node {target.address} refused: {exc}")
        except ChatkitError:
            continue
    return None


class Failover:
    """What a link (chatkit/client/link.py) keeps of its cluster: the view of the last
    `welcome` (None: not on a cluster node) and the nodes it no longer trusts."""

    def __init__(self) -> None:
        self.view: ClusterView | None = None
        self.distrusted: set[str] = set()

    def welcomed(self, welcome: dict[str, Any]) -> None:
        self.view = ClusterView.from_welcome(welcome)

    @property
    def name(self) -> str | None:
        return None if self.view is None else self.view.name

    def move(self, options: LinkOptions, open_target: Callable[[Target], Connection],
             status: Callable[[str], None], stopping: Callable[[], bool]
             ) -> tuple[Connection, LinkOptions] | None:
        """The node at `options.host` is gone: a connection to another live node and the
        options that name it (its address, the certificate it presented), or None."""
        if self.view is None:
            return None
        known = KnownServers(known_servers_file())

        def pinned(address: str) -> bool:
            try:
                return known.get(address) is not None
            except ChatkitError:  # an unreadable file pins nothing
                return False

        targets = failover_targets(self.view, options.host, tls=options.tls,
                                   verified=options.tls and not options.insecure,
                                   pinned=pinned, exclude=self.distrusted)
        moved = fail_over(targets, open_target, status, self.distrusted, stopping)
        if moved is None:
            return None
        conn, target = moved
        return conn, dataclasses.replace(options, host=target.host, port=target.port,
                                         expected_fingerprint=target.fingerprint)
