"""Writing to a client socket without ever blocking the writer: `SocketOutput`.

Every door that speaks over TCP shares this. Delivery is a non-blocking send; what the socket
cannot take at once is kept in the client's bounded backlog, which the flusher thread
(chatkit/server/doors/flusher.py) drains when the socket becomes writable. A client whose
backlog overflows is cut off; nobody else waits for it. TLS, when the client uses it, is
applied here, under the same lock, so ciphertext keeps the order of the plaintext.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from chatkit.tls import TlsChannel

if TYPE_CHECKING:
    from chatkit.server.doors.flusher import Flusher

log = logging.getLogger("chatkit.server")

# Not on Windows; there a send could block, so the server is supported on POSIX systems only.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class SocketOutput:
    """One client's outbound side: backlog, TLS, the held output of a joiner, and the cut-off."""

    def __init__(self, sock: socket.socket, flusher: Flusher, max_backlog: int,
                 label: str) -> None:
        self.sock = sock
        self.flusher = flusher
        self.max_backlog = max_backlog
        self.label = label  # for the log line of a cut-off
        self.lock = threading.Lock()
        self.backlog = bytearray()
        self.tls: TlsChannel | None = None
        self.dead = False
        #: why the connection ended, when this side ended it (slow reader, lost connection)
        self.reason: str | None = None
        self._held: list[bytes] | None = None

    def deliver(self, data: bytes) -> None:
        """Send or queue bytes without ever blocking the caller."""
        with self.lock:
            if self._held is not None:
                self._held.append(data)
                return
            # inlined _send_plain_locked: this is the delivery hot path
            if self.tls is not None and not self.dead:
                data = self.tls.encrypt(data)
            self._send_locked(data)

    def hold(self) -> None:
        with self.lock:
            if self._held is None:
                self._held = []

    def release(self, first: bytes) -> None:
        with self.lock:
            held, self._held = self._held or [], None
            data = first + b"".join(held) if held else first
            if data:
                self._send_plain_locked(data)

    def send_raw(self, data: bytes) -> None:
        """Bytes that are already on the wire's terms (a TLS handshake reply)."""
        with self.lock:
            self._send_locked(data)

    def _send_plain_locked(self, data: bytes) -> None:
        if self.tls is not None and not self.dead:
            data = self.tls.encrypt(data)  # under the lock: ciphertext keeps its order
        self._send_locked(data)

    def _send_locked(self, data: bytes) -> None:
        """Send now what the socket takes, keep the rest (caller holds the lock)."""
        if self.dead:
            return
        if self.backlog:
            if len(self.backlog) + len(data) > self.max_backlog:
                self._overflow()
            else:
                self.backlog += data
            return
        try:
            sent = self.sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.kill_locked("connection lost")
            return
        if sent < len(data):
            if len(data) - sent > self.max_backlog:
                self._overflow()
                return
            self.backlog += memoryview(data)[sent:]
            self.flusher.watch(self)

    def flush(self) -> bool:
        """Send what the socket takes now; True when the backlog is empty (flusher thread)."""
        with self.lock:
            if self.dead:
                return True
            try:
                sent = self.sock.send(self.backlog, _DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                self.kill_locked("connection lost")
                return True
            del self.backlog[:sent]
            return not self.backlog

    def _overflow(self) -> None:
        log.warning("disconnecting %s: output backlog over %d bytes (not reading)",
                    self.label, self.max_backlog)
        self.kill_locked("too slow: stopped reading messages")

    def kill(self, reason: str | None) -> None:
        with self.lock:
            self.kill_locked(reason)

    def kill_locked(self, reason: str | None) -> None:
        """Mark dead and wake the reader thread, which does the cleanup (caller holds the
        lock)."""
        self.dead = True
        self.reason = self.reason or reason
        self.backlog.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close_write(self) -> None:
        """No more output: the peer reads what was sent, then end of stream."""
        with self.lock:
            self.dead = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
