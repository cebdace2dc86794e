"""The line door: chatkit's own TCP port (12345). JSON mode for programs and the chatkit
clients, text mode for nc/telnet, TLS when the client starts it. Owns the listening socket, the
accept loop, admission (server full, too many connections still registering, too many
connections from one address group, an address locked out for wrong passwords) and the set of
its connections; each connection gets a reader thread (reader.py)."""

from __future__ import annotations

import _thread
import errno
import logging
import selectors
import socket
import ssl
import threading
import time

from chatkit.errors import ChatkitError
from chatkit.net.addresses import address_group, format_address, host_of
from chatkit.server.config import ServerConfig
from chatkit.server.doors.flusher import Flusher
from chatkit.server.doors.line.connection import LineConnection
from chatkit.server.doors.line.reader import LineReader
from chatkit.server.doors.reader import SocketReader
from chatkit.server.hub.hub import Hub
from chatkit.server.repeated_log import RepeatedLog

log = logging.getLogger("chatkit.server")

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: accept() failures that mean "out of descriptors or memory": waiting helps, retrying at once
#: only spins (the pending connection stays in the listen queue and fails again)
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: the longest pause between two accepts while descriptors are exhausted (seconds)
MAX_BACKOFF = 1.0
#: connections the kernel may hold for the accept loop (capped by net.core.somaxconn): a join
#: storm overflowing it has clients wait a second for a SYN retransmission
LISTEN_BACKLOG = 4096


class _Counts:
    """What doors sharing their admission count together (see LineDoor's `share`)."""

    def __init__(self) -> None:
        #: connections without a nickname yet (TLS, password, hello still to come)
        self.unregistered = 0


class LineDoor:
    """See the module docstring. `start()` binds and returns; `stop()` ends every connection.

    Another door (the IRC door, chatkit/server/doors/irc/door.py) is this class with its own
    connection and reader (`new_connection`, `reader_for`) on its own port (`port`); with
    `share` it admits against the same counts as that door, so the server's limits (clients
    in all, per address, still registering) hold whichever door a client comes in by."""

    #: the name of the acceptor thread
    ACCEPTOR = "chatkit-acceptor"

    def __init__(self, hub: Hub, config: ServerConfig, flusher: Flusher,
                 tls_context: ssl.SSLContext | None, *, port: int | None = None,
                 share: LineDoor | None = None) -> None:
        self.hub = hub
        self.config = config
        self.flusher = flusher
        self.tls_context = tls_context
        self.wanted_port = config.port if port is None else port
        self.connections: set[LineConnection] = set() if share is None else share.connections
        #: connections per address group (an IPv4 address, an IPv6 /64: address_group)
        self.per_address: dict[str, int] = {} if share is None else share.per_address
        self._counts: _Counts = _Counts() if share is None else share._counts
        # guards connections, per_address and unregistered
        self._lock: threading.Lock = threading.Lock() if share is None else share._lock
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._log = RepeatedLog(log)

    @property
    def unregistered(self) -> int:
        """Connections without a nickname yet (TLS, password, hello still to come)."""
        return self._counts.unregistered

    @property
    def port(self) -> int:
        assert self._listener is not None, "the door is not started"
        return int(self._listener.getsockname()[1])

    @property
    def bound_host(self) -> str:
        assert self._listener is not None, "the door is not started"
        return str(self._listener.getsockname()[0])

    def start(self) -> None:
        try:
            self._listener = listen(self.config.host, self.wanted_port,
                                    reuse_port=self.config.reuse_port)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise
        self._acceptor = threading.Thread(target=self._accept_loop, name=self.ACCEPTOR,
                                          daemon=True)
        self._acceptor.start()

    def stop_accepting(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        if self._acceptor is not None:
            self._acceptor.join(5)
        if self._listener is not None:
            self._listener.close()

    def close(self, reason: str) -> None:
        """Tell every connection `reason` (one `bye`: a notice too would say it twice), give
        the flusher a moment to deliver it, then cut every connection and join its reader
        thread."""
        hub = self.hub
        with hub.lock, self._lock:
            connections = list(self.connections)
        with hub.lock:
            for conn in connections:
                conn.quit_reason = reason
                conn.send_frame(hub.bye(reason))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(c.output.backlog for c in connections):
            time.sleep(0.01)  # bounded: give the flusher a moment to deliver the notice
        for conn in connections:
            conn.output.kill(reason)
        deadline = time.monotonic() + 5.0
        for conn in connections:
            conn.finished.wait(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()

    def count(self) -> int:
        with self._lock:
            return len(self.connections)

    # ------------------------------------------------------------------ accepting

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            backoff = 0.0
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, address = self._listener.accept()
                    except OSError as exc:
                        self._log.warning(f"accept:{exc.errno}", "accept failed: %s", exc)
                        if exc.errno in _EXHAUSTED:
                            # Out of descriptors: the connection waits in the listen queue
                            # until one is closed; pause instead of spinning on it.
                            backoff = min(MAX_BACKOFF, max(0.05, backoff * 2))
                            self._stopping.wait(backoff)
                        continue
                    backoff = 0.0
                    self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: tuple[str, int]) -> None:
        peer = format_address(address[0], address[1])
        ip = address[0]
        group = address_group(ip)
        config = self.config
        with self._lock:
            refusal = kind = None
            if len(self.connections) >= config.max_clients:
                refusal, kind = f"server full ({len(self.connections)} clients)", "full"
            elif config.max_unregistered and \
                    self._counts.unregistered >= config.max_unregistered:
                refusal = (f"server busy: too many connections still registering "
                           f"({self.unregistered}, the most it takes at once); try again in "
                           "a moment")
                kind = "busy"
            elif config.max_per_address and \
                    self.per_address.get(group, 0) >= config.max_per_address:
                refusal, kind = f"too many connections from {group}", f"address:{group}"
            elif self.hub.gate.throttled(ip):
                refusal = f"too many wrong passwords from {ip}; wait a minute"
                kind = f"passwords:{ip}"
            if refusal is None:
                conn = self.new_connection(sock, peer)
                conn.registering = True
                self._counts.unregistered += 1
                self.per_address[group] = self.per_address.get(group, 0) + 1
                self.connections.add(conn)
        if refusal is not None:
            # One line per reason per 10 s: a client retrying in a loop must not fill the log.
            self._log.warning(f"refuse:{kind}", "refusing %s: %s", peer, refusal)
            try:
                sock.send(self.refusal(refusal), _DONTWAIT)
            except OSError:
                pass
            sock.close()
            return
        # One thread per connection, started here (a pool of threads started ahead of need
        # joined storms a little faster but cost ~15% more CPU per delivery in a room of
        # 1,000: benchmarks/README.md, "Many people on one server"). A bare thread, not a
        # threading.Thread: Thread.start waits until the new thread has run, so this loop
        # waited for the GIL twice more per connection, behind every reader busy joining,
        # and a crowd arrived one GIL turn at a time (10,000 people: 7.1 s, now 4.3 s).
        try:
            _thread.start_new_thread(self.reader_for(conn).run, ())
        except RuntimeError as exc:  # "can't start new thread": the system's limit
            self._not_started(conn, f"server out of threads ({exc})")

    def _not_started(self, conn: LineConnection, reason: str) -> None:
        """`conn`'s reader thread could not be started: say why and forget it."""
        self._log.warning("refuse:threads", "refusing %s: %s", conn.peer, reason)
        try:
            conn.sock.send(self.refusal(f"{reason}; try again later"), _DONTWAIT)
        except OSError:
            pass
        conn.quit_reason = reason
        self.disconnect(conn)
        conn.finished.set()

    def new_connection(self, sock: socket.socket, peer: str) -> LineConnection:
        """The Member for an admitted connection (called under the door's lock)."""
        return LineConnection(sock, peer, self.flusher, self.config.max_backlog)

    def reader_for(self, conn: LineConnection) -> SocketReader:
        """What runs `conn`'s reader thread."""
        return LineReader(self, conn)

    def refusal(self, reason: str) -> bytes:
        """The one line a refused connection gets before it is closed."""
        return f"!!! {reason}\r\n".encode()

    def registered(self, conn: LineConnection) -> None:
        """`conn` has a nickname now: it no longer counts against `max_unregistered`."""
        with self._lock:
            if conn.registering and conn in self.connections:
                conn.registering = False
                self._counts.unregistered -= 1

    def disconnect(self, conn: LineConnection) -> None:
        """Forget a connection, retire its member (the people who shared a room are told),
        close the socket. Idempotent; every exit path of a reader thread ends here."""
        with self._lock:
            if conn not in self.connections:
                return
            self.connections.discard(conn)
            if conn.registering:
                conn.registering = False
                self._counts.unregistered -= 1
            group = address_group(host_of(conn.peer))
            self.per_address[group] -= 1
            if not self.per_address[group]:
                del self.per_address[group]
        if not conn.quitting:
            conn.note_end("connection closed")
        reason = conn.quit_reason
        with self.hub.lock:
            self.hub.retire(conn, reason)
        conn.output.kill(reason)
        conn.sock.close()


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket on host:port; `::` also takes IPv4 where the system allows.
    `reuse_port`: SO_REUSEPORT, so that other processes of this user that set it too listen
    on the same port (the kernel spreads the connections among them)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ChatkitError("this system cannot share a listening port between processes "
                           "(no SO_REUSEPORT)", remedy="drop_reuse_port")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ChatkitError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    dualstack = family == socket.AF_INET6 and address[0] == "::" \
        and socket.has_dualstack_ipv6()
    try:
        return socket.create_server(address, family=family, backlog=LISTEN_BACKLOG,
                                    dualstack_ipv6=dualstack, reuse_port=reuse_port)
    except OSError as exc:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno in (98, 48, 10048) and reuse_port:  # EADDRINUSE, sharing it
            raise ChatkitError(f"port {port} is already in use on {host} by a process that "
                               "does not share it (every process on one port needs "
                               "SO_REUSEPORT, and the same user)", remedy="share_port"
                               ) from None
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ChatkitError(f"port {port} is already in use on {host} "
                               "(another chatkit serve?)", remedy="choose_port") from None
        if exc.errno in (99, 49):  # EADDRNOTAVAIL
            raise ChatkitError(f"cannot listen on {where}: no interface has address "
                               f"{host}") from None
        if exc.errno == 13:
            raise ChatkitError(f"cannot listen on {where}: permission denied "
                               "(ports below 1024 need privileges)") from None
        raise ChatkitError(f"cannot listen on {where}: {exc.strerror or exc}") from None
