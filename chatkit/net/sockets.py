"""Socket set-up shared by the server and the clients: TCP options and the descriptor limit."""

from __future__ import annotations

import socket

#: data sent and not acknowledged for this long ends the connection (see tune_tcp)
DEAD_PEER_SECONDS = 60.0


def tune_tcp(sock: socket.socket, dead_peer_seconds: float = DEAD_PEER_SECONDS) -> None:
    """Low latency, and a half-open connection (a peer that vanished without a word: sleep,
    Wi-Fi gone) noticed on either side: within about 90 s by keepalive when nothing is being
    sent, and within `dead_peer_seconds` by TCP_USER_TIMEOUT when data is outstanding (where
    keepalive does not run and retransmissions alone would take ~15 minutes). Linux only
    for the latter; 0 leaves the system's default."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = [("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)]
    if dead_peer_seconds > 0:
        options.append(("TCP_USER_TIMEOUT", max(1, int(dead_peer_seconds * 1000))))
    for option, value in options:
        if hasattr(socket, option):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
            except OSError:
                pass


def raise_fd_limit() -> int | None:
    """Raise the soft limit on open descriptors (each connection is one) to the hard limit;
    return the limit now in force (None where the system has no such limit)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


#: descriptors kept for what is not a client connection: the listening and wake-up sockets,
#: the message database and its -wal, -shm and lock files, discovery, certificates, Python's own
RESERVED_DESCRIPTORS = 48


def clients_within(limit: int | None, wanted: int) -> int:
    """How many client connections (one descriptor each) fit in a descriptor limit of `limit`
    with RESERVED_DESCRIPTORS kept aside: `wanted`, or fewer (at least 1)."""
    if limit is None or limit < 0:  # no limit known (RLIM_INFINITY is -1)
        return wanted
    return max(1, min(wanted, limit - RESERVED_DESCRIPTORS))
