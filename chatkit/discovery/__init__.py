"""LAN discovery over UDP broadcast (docs/protocol.md, "Discovery (UDP)"): the one place that
knows it. Returns data and raises ChatkitErrors; printing, exit statuses and flag wording
belong to `chatkit.cli.discover`.

Modules, bottom to top (each imports only those before it):

- `wire`: the datagram format, its validation, and the UDP socket calls every role shares
- `scope`: where a server may be advertised for its bind address; which targets a client probes
- `responder`: the server side (`DiscoveryResponder`), rate-limited, answering only in scope
- `probe`: the client side: `discover`, `find_server`, `select_servers`, `server_names`,
  and the node of a cluster to use (`one_cluster`, `pick_node`)
- `watcher`: following servers as they come and go (`watch`, `WatchEvent`)
- `diagnosis`: the network self-test and its likely causes (`diagnose`, `DiagnoseReport`)

The names below are the package's public API; import them from `chatkit.discovery`.
"""

from chatkit.discovery.diagnosis import (
    Cause,
    CauseKind,
    DiagnoseReport,
    TargetCheck,
    diagnose,
    likely_causes,
)
from chatkit.discovery.probe import (
    ProbeResults,
    ServerFound,
    connect_host,
    discover,
    find_server,
    one_cluster,
    pick_node,
    probe_targets,
    select_servers,
    server_names,
)
from chatkit.discovery.responder import DiscoveryResponder, DropLog, reply_limiter
from chatkit.discovery.scope import (
    BROADCAST_ENV,
    CACHE_SECONDS,
    LOOPBACK_BROADCAST,
    Scope,
    TargetError,
    default_targets,
    resolve_targets,
    scope_for_bind,
)
from chatkit.discovery.watcher import MAX_WATCHED, MISSED_ANNOUNCEMENTS, WatchEvent, watch
from chatkit.discovery.wire import (
    DEFAULT_ANNOUNCE_INTERVAL,
    DISCOVERY_PORT,
    DISCOVERY_VERSION,
    HEADER,
    MAGIC,
    MAX_ADDRESSES,
    MAX_DATAGRAM,
    MAX_NAME,
    MIN_PROBE_SIZE,
    PROBE_SIZE,
    DatagramError,
    ServerInfo,
    decode_datagram,
    encode_datagram,
    fit_datagram,
    is_valid_nonce,
    make_probe,
    parse_server_info,
    udp_socket,
)

__all__ = [
    "BROADCAST_ENV", "CACHE_SECONDS", "DEFAULT_ANNOUNCE_INTERVAL", "DISCOVERY_PORT",
    "DISCOVERY_VERSION", "HEADER", "LOOPBACK_BROADCAST", "MAGIC", "MAX_ADDRESSES",
    "MAX_DATAGRAM", "MAX_NAME", "MAX_WATCHED", "MIN_PROBE_SIZE", "MISSED_ANNOUNCEMENTS",
    "PROBE_SIZE", "Cause", "CauseKind", "DatagramError", "DiagnoseReport", "DiscoveryResponder",
    "DropLog", "ProbeResults", "Scope", "ServerFound", "ServerInfo", "TargetCheck",
    "TargetError", "WatchEvent", "connect_host", "decode_datagram", "default_targets",
    "diagnose", "discover", "encode_datagram", "find_server", "fit_datagram", "is_valid_nonce",
    "likely_causes", "make_probe", "one_cluster", "parse_server_info", "pick_node",
    "probe_targets", "reply_limiter", "resolve_targets", "scope_for_bind", "select_servers",
    "server_names", "udp_socket", "watch",
]
