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
import time
from typing import TYPE_CHECKING

from chatkit.tls import TlsChannel

if TYPE_CHECKING:
    from chatkit.server.doors.flusher import Flusher

log = logging.getLogger("chatkit.server")

#: How long a reply may wait for the client to read any of it before the client is cut off
REPLY_STALL_SECONDS = 30.0
#: Most bytes of a reply queued at once (cut at a line end); the next part waits until the
#: backlog is under half of max_backlog, so a reply never counts as a slow reader's backlog
REPLY_PART = 64 * 1024

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
        self._held_bytes = 0
        self._held_ahead = 0  # how many of _held go out before release's `first`
        #: notified whenever the backlog shrinks or the output dies (paced replies wait on it)
        self.drained = threading.Condition(self.lock)

    def deliver(self, data: bytes) -> None:
        """Send or queue bytes without ever blocking the caller."""
        with self.lock:
            if self._held is not None:
                self._held_bytes += len(data)
                if self._held_bytes > self.max_backlog:  # live events while a reply is paced
                    self._overflow()
                    return
                self._held.append(data)
                return
            # inlined _send_plain_locked: this is the delivery hot path
            if self.tls is not None and not self.dead:
                data = self.tls.encrypt(data)
            self._send_locked(data)

    def hold(self) -> None:
        """Keep what is delivered from now on. Held already (a `hello` that joins a room: its
        welcome waits too), what is held so far goes out ahead of the `first` of release."""
        with self.lock:
            if self._held is None:
                self._held = []
            self._held_ahead = len(self._held)

    def release(self, first: bytes) -> None:
        """Send what was held ahead, then `first` (a joiner's history), paced, then what was
        held meanwhile."""
        with self.lock:
            held = self._held or []
            ahead = held[:self._held_ahead]
            if ahead:
                del held[:self._held_ahead]
                greeting = b"".join(ahead)
                self._held_bytes -= len(greeting)
                first = greeting + first
            self._held_ahead = 0
        self.send_paced(first)  # still held: live events keep waiting behind it
        with self.lock:
            held, self._held = self._held or [], None
            self._held_bytes = 0
            data = b"".join(held)
            if data:
                self._send_plain_locked(data)

    def send_paced(self, data: bytes) -> None:
        """Bytes the client asked for (history, long lists), whole lines at a time, each part
        waiting until the client has read most of the last: however long the reply, only a
        client that stops reading for REPLY_STALL_SECONDS is cut off. Blocks; called by the
        client's own reader thread."""
        part = max(4096, min(REPLY_PART, self.max_backlog // 4))
        start = 0
        while start < len(data) and not self.dead:
            end = len(data)
            if end - start > part:
                end = data.rfind(b"\n", start, start + part) + 1
                if end <= start:  # one line longer than a part: whole (MAX_FRAME bounds it)
                    end = data.find(b"\n", start + part) + 1 or len(data)
            with self.lock:
                if not self._wait_drained_locked(self.max_backlog // 2):
                    return
                self._send_plain_locked(data[start:end])
            start = end

    def _wait_drained_locked(self, level: int) -> bool:
        """Wait until the backlog is at most `level` bytes; False when the output died or the
        client read nothing for REPLY_STALL_SECONDS (then it is cut off)."""
        deadline = time.monotonic() + REPLY_STALL_SECONDS
        last = len(self.backlog)
        while not self.dead and len(self.backlog) > level:
            now = time.monotonic()
            if len(self.backlog) < last:  # the client is reading: give it time again
                last, deadline = len(self.backlog), now + REPLY_STALL_SECONDS
            if now >= deadline:
                log.warning("disconnecting %s: read nothing of a reply for %.0f s",
                            self.label, REPLY_STALL_SECONDS)
                self.kill_locked("too slow: stopped reading a reply")
                break
            self.drained.wait(min(1.0, deadline - now))
        return not self.dead

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
            self._keep_locked(data, sent)

    def _keep_locked(self, data: bytes, sent: int) -> None:
        """The socket took `sent` bytes of `data`: keep the rest for the flusher, or cut the
        client off if that is more than its backlog may hold (caller holds the lock)."""
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
            self.drained.notify_all()
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
        self.drained.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close_write(self) -> None:
        """No more output: the peer reads what was sent, then end of stream."""
        with self.lock:
            self.dead = True
            self.drained.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
