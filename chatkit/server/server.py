"""`Server`: one running chat server, wired from its parts.

    door (chatkit/server/doors/line/) ──request──▶ hub (chatkit/server/hub/)
        ▲                                              │ accepted event, id assigned
        └──── bytes, encoded once per format ◀──── bus (chatkit/server/bus/local.py: store,
                                                        then deliver)

This module only builds the parts, starts them in order and stops them in the reverse order;
it holds no chat logic. Services that run beside the server (LAN discovery) are attached by the
caller (`attach`) and stopped before it.
"""

from __future__ import annotations

import logging
import secrets
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatkit import protocol
from chatkit.errors import ChatkitError
from chatkit.net.addresses import format_address
from chatkit.net.interfaces import interface_addresses, reachable_addresses
from chatkit.paths import server_cert_file, server_key_file
from chatkit.protocol import PROTOCOL_VERSION, name_key
from chatkit.server.bus.local import LocalBus
from chatkit.server.bus.retention import Retention
from chatkit.server.config import ServerConfig
from chatkit.server.doors.flusher import Flusher
from chatkit.server.doors.irc.door import IrcDoor
from chatkit.server.doors.line.door import LineDoor
from chatkit.server.hub.account_requests import MAX_MOTD_LINE, MAX_MOTD_LINES
from chatkit.server.hub.crowds import PresenceClock
from chatkit.server.hub.hub import Hub, HubRules
from chatkit.store import MessageStore
from chatkit.tls import ensure_certificate, server_context

if TYPE_CHECKING:
    from chatkit.server.bus.cluster import ClusterBus

log = logging.getLogger("chatkit.server")


def read_motd(path: str | None) -> list[str]:
    """The message of the day from `path`, line by line, sanitised and bounded (a missing
    or unreadable file is logged and gives none)."""
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.error("cannot read the message of the day %s: %s", path, exc.strerror or exc)
        return []
    lines = [protocol.sanitize_text(line)[:MAX_MOTD_LINE] for line in text.splitlines()]
    return lines[:MAX_MOTD_LINES]


def cluster_bus(url: str, store: MessageStore, config: ServerConfig, name: str
                ) -> ClusterBus:
    """The bus of a node of the cluster at `url` (redis-py is imported only for a cluster)."""
    try:
        from chatkit.server.bus.cluster import ClusterBus
    except ImportError as exc:
        if exc.name != "redis":
            raise
        store.close()
        raise ChatkitError("a cluster needs redis-py, which is not installed",
                           remedy="install_cluster") from None
    try:
        return ClusterBus(url, store, cluster_name=name,
                          archive=config.db is not None,
                          retention=Retention(store, retain_days=config.retain_days,
                                              max_messages=config.max_messages,
                                              prune_every=config.prune_every))
    except ChatkitError:
        store.close()
        raise


class Service(Protocol):
    def stop(self) -> None: ...


class Server:
    """A running chat server. `start()` binds and returns; `stop()` shuts down gracefully."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        self.name = protocol.sanitize_text(config.name)[:64] or "chatkit"
        self.instance = secrets.token_hex(8)  # tells two servers of one name apart
        store = MessageStore(config.db or ":memory:", fsync=config.fsync,
                             log_private=config.log_private)
        self.bus: LocalBus | ClusterBus
        self.cluster: ClusterBus | None = None  # --cluster
        if config.cluster is not None:
            name = protocol.sanitize_text(config.cluster_name or "")[:64] or self.name
            self.bus = self.cluster = cluster_bus(config.cluster, store, config, name)
        else:
            self.bus = LocalBus(store, retain_days=config.retain_days,
                                max_messages=config.max_messages,
                                prune_every=config.prune_every)
        self.hub = Hub(self.name, self.bus, HubRules(
            history_on_join=config.history_on_join,
            max_rooms_per_client=config.max_rooms_per_client, password=config.password,
            log_private=config.log_private, rate_limit=config.rate_limit,
            rate_burst=config.rate_burst if config.rate_limit > 0 else 0,
            crowd_size=config.crowd_size,
            admins=frozenset(name_key(a) for a in config.admins),
            require_account=config.require_account,
            motd=read_motd(config.motd_file)),
            self.cluster.records() if self.cluster is not None else store.records)
        for name in self.hub.accounts.missing_admins():
            log.warning("admin %s is not a registered account, so not an admin: register it, "
                        "then reload (SIGHUP)", name)
        self.presence = PresenceClock(self.hub.announce_presence)
        self.flusher = Flusher()
        self.tls_context: ssl.SSLContext | None = None
        self.fingerprint: str | None = None
        self.door: LineDoor | None = None
        self.irc_door: IrcDoor | None = None  # --irc-port
        self.irc_tls_door: IrcDoor | None = None  # --irc-tls-port
        self._services: list[Service] = []
        self._stopped = False

    @property
    def port(self) -> int:
        assert self.door is not None, "the server is not started"
        return self.door.port

    @property
    def bound_host(self) -> str:
        assert self.door is not None, "the server is not started"
        return self.door.bound_host

    def start(self) -> None:
        try:
            if self.config.tls:
                self._setup_tls()
            door = LineDoor(self.hub, self.config, self.flusher, self.tls_context)
            door.start()
        except ChatkitError:
            self.flusher.stop()  # its wake-up sockets
            self.bus.close()
            raise
        self.door = door
        try:
            self._start_irc(door)
        except ChatkitError:
            for started in self.doors():
                started.stop_accepting()
                started.close("the server could not start")  # its reader threads too
            self.flusher.stop()
            self.bus.close()
            self.door = self.irc_door = self.irc_tls_door = None
            raise
        self.flusher.start()
        if self.cluster is not None:
            self.cluster.node_info = self.node_info
        self.bus.start()
        self.presence.start()
        # debug: `chatkit serve` prints this in its banner; the log must not say it twice
        log.debug("server %s listening on %s", self.name, ", ".join(self.addresses()))

    def reload(self) -> None:
        """Read the message of the day, accounts, bans and room settings again (SIGHUP):
        `chatkit admin` may have changed the database while the server runs."""
        motd = read_motd(self.config.motd_file)
        self.hub.moderation.load(self.hub.lock)
        with self.hub.lock:
            self.hub.rules.motd = motd
        self.hub.accounts.reload()
        for name in self.hub.accounts.missing_admins():
            log.warning("admin %s is not a registered account, so not an admin", name)
        log.info("reloaded the message of the day, accounts and bans")

    def _start_irc(self, door: LineDoor) -> None:
        """The IRC door's ports, when asked for: admitting against the line door's counts."""
        config = self.config
        if config.irc_port is not None:
            self.irc_door = IrcDoor(self.hub, config, self.flusher, self.tls_context,
                                    port=config.irc_port, tls_only=False, share=door)
            self.irc_door.start()
        if config.irc_tls_port is not None:
            if self.tls_context is None:
                raise ChatkitError("the IRC TLS port needs TLS", remedy="drop_no_tls")
            self.irc_tls_door = IrcDoor(self.hub, config, self.flusher, self.tls_context,
                                        port=config.irc_tls_port, tls_only=True, share=door)
            self.irc_tls_door.start()

    def doors(self) -> list[LineDoor]:
        """Every started door, the line door first."""
        return [d for d in (self.door, self.irc_door, self.irc_tls_door) if d is not None]

    @property
    def irc_port(self) -> int | None:
        return self.irc_door.port if self.irc_door is not None else None

    @property
    def irc_tls_port(self) -> int | None:
        return self.irc_tls_door.port if self.irc_tls_door is not None else None

    def attach(self, service: Service) -> None:
        """A service that runs beside this server (discovery): stopped before the server."""
        self._services.append(service)

    def _setup_tls(self) -> None:
        config = self.config
        if config.tls_cert is None or config.tls_key is None:
            cert, key = server_cert_file(), server_key_file()
            try:
                ensure_certificate(cert, key, socket.gethostname(),
                                   interface_addresses(include_ipv6=True))
            except OSError as exc:
                raise ChatkitError(f"cannot create the TLS certificate in {cert.parent}: "
                                   f"{exc.strerror or exc}") from None
        else:
            cert, key = Path(config.tls_cert), Path(config.tls_key)
        self.tls_context, self.fingerprint = server_context(cert, key)

    def info(self) -> dict[str, Any]:
        """What discovery announces about this server."""
        users, rooms = self.hub.counts()
        return {"name": self.name, "instance": self.instance, "port": self.port,
                "addresses": self.addresses(with_port=False), "version": PROTOCOL_VERSION,
                "tls": self.tls_context is not None, "fingerprint": self.fingerprint,
                "password": self.hub.gate.required, "users": users, "rooms": rooms,
                **self._cluster_info(),
                **{name: port for name, port in (("irc_port", self.irc_port),
                                                 ("irc_tls_port", self.irc_tls_port))
                   if port is not None}}

    def node_info(self) -> dict[str, Any]:
        """What this node tells the other nodes of its cluster (and they tell clients)."""
        return {"addresses": self.addresses(), "fingerprint": self.fingerprint,
                "users": self.hub.counts()[0] if self.door is not None else 0}

    def _cluster_info(self) -> dict[str, str]:
        view = self.bus.cluster_view()
        return {} if view is None else {"cluster": view["name"], "node": view["node"]}

    def addresses(self, with_port: bool = True) -> list[str]:
        """Every address a client can use to reach this server."""
        hosts = reachable_addresses(self.bound_host)
        if not with_port:
            return hosts
        return [format_address(host, self.port) for host in hosts]

    def stop(self, reason: str = "server shutting down") -> None:
        """Tell every client, close every socket, join every thread."""
        if self._stopped:
            return
        self._stopped = True
        if self.door is None:  # never started, or its start failed
            self.flusher.stop()  # its wake-up sockets (idempotent)
            self.bus.close()
            return
        for service in reversed(self._services):
            service.stop()
        self.hub.stopping = True
        self.presence.stop()
        for door in self.doors():
            door.stop_accepting()
        self.bus.stop()  # everything accepted is stored and delivered before the notice
        for door in self.doors():  # the doors share one set of connections: the first
            door.close(reason)     # closes them all
        self.flusher.stop()
        self.bus.close()  # last: a reader thread may have been answering /history until now
        log.info("server %s stopped", self.name)
