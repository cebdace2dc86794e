"""`ServerConfig`: everything `chatkit serve` can be told about the server (discovery is the
command's own business: chatkit/cli/serve.py wires it to the server)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from chatkit.protocol import DEFAULT_PORT, SNIFF_SECONDS
from chatkit.protocol.constants import DEFAULT_CROWD_SIZE


@dataclass
class ServerConfig:
    """Everything `chatkit serve` can be told. Defaults are the documented ones."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    name: str = field(default_factory=socket.gethostname)
    max_clients: int = 16384
    #: bytes a client may fall behind before it is disconnected as a non-reader
    max_backlog: int = 1 << 20
    #: seconds to complete TLS, password and nickname (text mode) or `hello` (JSON mode)
    handshake_timeout: float = 60.0
    #: connections from one address group (an IPv4 address, an IPv6 /64); 0 = no limit
    max_per_address: int = 32
    #: connections at once that have not registered yet (TLS, password and nickname or
    #: `hello` still to come); 0 = no limit. Bounds what addresses that never log in can hold.
    max_unregistered: int = 256
    max_rooms_per_client: int = 20
    #: above this many members a room is a crowd: arrivals and departures come as a summary
    #: every 2 s instead of one by one (chatkit/server/hub/crowds.py); 0 = never
    crowd_size: int = DEFAULT_CROWD_SIZE
    #: per-client frames per second (token bucket) and burst; rate 0 = no limit
    rate_limit: float = 5.0
    rate_burst: int = 20
    #: a client throttled without a break for this long is cut off as a flooder (a 1,000-line
    #: paste at 5 lines per second takes 200 s)
    flood_seconds: float = 600.0
    #: a client that said it answers pings (hello `pings`) and has sent nothing for this long
    #: is sent a `ping`; 0 = never
    ping_idle: float = 60.0
    #: ... and is disconnected when nothing arrives within this many seconds of the ping
    ping_deadline: float = 30.0
    #: data sent and not acknowledged for this long ends a connection (TCP_USER_TIMEOUT): a
    #: peer that vanished with a message in flight to it is dropped, not kept ~15 minutes
    dead_peer_seconds: float = 60.0
    tls: bool = True
    tls_cert: str | None = None  # default: a self-signed one made in the config directory
    tls_key: str | None = None
    require_tls: bool = False
    password: str | None = None
    sniff_seconds: float = SNIFF_SECONDS
    #: the message log; None keeps history in memory only (lost at exit)
    db: str | None = None
    fsync: str = "normal"
    log_private: bool = False
    history_on_join: int = 50
    retain_days: float | None = None
    max_messages: int | None = None
    #: seconds between two retention passes of the publisher
    prune_every: float = 60.0
    #: accounts that are server admins while the server runs (`--admin`)
    admins: tuple[str, ...] = ()
    #: guests may only register or log in
    require_account: bool = False
    #: the message of the day, read at start and on `Server.reload` (SIGHUP)
    motd_file: str | None = None
    #: the IRC door's plain port (TLS also accepted when the client starts it) and its
    #: TLS-only port; None: off (docs/irc.md)
    irc_port: int | None = None
    irc_tls_port: int | None = None
    #: the Redis URL of a cluster of nodes sharing rooms (docs/cluster.md); None: alone
    cluster: str | None = None
    #: the cluster's name, as discovery and `welcome` say it (default: the server's name)
    cluster_name: str | None = None
    #: SO_REUSEPORT on the listening sockets: several processes (the nodes of a cluster on
    #: one host) share one port, the kernel spreading connections among them
    reuse_port: bool = False
