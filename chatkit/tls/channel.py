"""`TlsChannel`, the thread-safe TLS layer used by both the server and the clients, and the
client side of the handshake.

Why a memory-BIO channel instead of `ssl.SSLSocket`: the server writes to a client from other
threads than the one reading it, and writes must never block (a non-blocking send, the rest in a
bounded backlog). An SSLSocket allows neither concurrent use by two threads nor `MSG_DONTWAIT`.
`ssl.SSLObject` over memory BIOs only encrypts and decrypts in memory, under a short lock; the
raw socket keeps its ordinary non-blocking send path.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import threading
import time

from chatkit.errors import UnreachableError
from chatkit.tls.certificates import fingerprint

TLS_RECORD_START = 0x16  # the first byte of a TLS ClientHello


class TlsHandshakeError(UnreachableError):
    """The client's TLS handshake failed: often a server that speaks no TLS (an older one, or
    one started without it). `host` and `reason` let the front end say which option to
    change."""

    def __init__(self, host: str, reason: object) -> None:
        self.host = host
        self.reason = str(reason)
        super().__init__(f"TLS handshake with {host} failed: {reason} "
                         "(is it a chatkit server with TLS?)")


def client_context() -> ssl.SSLContext:
    """Encryption without a certificate authority: identity comes from the pinned fingerprint
    (trust on first use), as with SSH host keys."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------- the channel


class TlsChannel:
    """TLS over memory BIOs: `encrypt`/`decrypt` are pure memory operations, thread-safe."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._lock = threading.Lock()
        self.peer_fingerprint: str | None = None

    def handshake(self, sock: socket.socket, deadline: float, first: bytes = b"") -> bytes:
        """Complete the handshake over a blocking socket; return plaintext already received.

        Raises ssl.SSLError for a bad handshake and TimeoutError past `deadline` (monotonic).
        """
        if first:
            self._incoming.write(first)
        while True:
            with self._lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                pending = self._outgoing.read()
            if pending:
                sock.sendall(pending)
            if done:
                break
            data = _recv_until(sock, deadline)
            if not data:
                raise ssl.SSLError("connection closed during the TLS handshake")
            self._incoming.write(data)
        der = self._tls.getpeercert(binary_form=True)
        if der:
            self.peer_fingerprint = fingerprint(der)
        return self.decrypt(b"")[0]

    def encrypt(self, data: bytes) -> bytes:
        with self._lock:
            self._tls.write(data)
            return self._outgoing.read()

    def decrypt(self, data: bytes) -> tuple[bytes, bytes]:
        """Plaintext from received bytes, and bytes TLS itself wants sent back (rarely any).

        At the peer's close_notify returns what remains; raises ssl.SSLError on bad records.
        """
        with self._lock:
            if data:
                self._incoming.write(data)
            chunks = []
            while True:
                try:
                    chunk = self._tls.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks), self._outgoing.read()

    def server_fingerprint(self) -> str | None:
        """The fingerprint of the server's certificate (client side)."""
        der = self._tls.getpeercert(binary_form=True)
        return fingerprint(der) if der else None


def _recv_until(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("TLS handshake timed out")
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(int(remaining * 1000)):
        raise TimeoutError("TLS handshake timed out")
    return sock.recv(65536)


# --------------------------------------------------------------------------- trust on first use


def open_client_channel(sock: socket.socket, host: str, timeout: float) -> TlsChannel:
    """Client side of the handshake over a connected socket."""
    channel = TlsChannel(client_context(), server_side=False,
                         server_hostname=host if not _is_ip(host) else None)
    try:
        leftover = channel.handshake(sock, time.monotonic() + timeout)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) \
            or (exc.args[0] if exc.args else type(exc).__name__)
        raise TlsHandshakeError(host, reason) from None
    if leftover:  # servers never speak first; keep the contract simple
        raise UnreachableError(f"{host} sent data before the client spoke")
    return channel


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
