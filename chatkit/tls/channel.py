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

from chatkit.errors import REFUSAL_PREFIX, ProtocolError, ServerRefusal, UnreachableError
from chatkit.tls.certificates import fingerprint

TLS_RECORD_START = 0x16  # the first byte of a TLS ClientHello
#: First bytes of any TLS record (change_cipher_spec, alert, handshake, application_data)
TLS_RECORD_TYPES = frozenset(range(20, 24))
#: How much of a plaintext answer to a ClientHello is read to say what the peer is
PLAIN_ANSWER_BYTES = 1024


class NotTlsAnswer(Exception):
    """The server answered the ClientHello with something that is not a TLS record."""

    def __init__(self, data: bytes) -> None:
        super().__init__("the server did not answer in TLS")
        self.data = data


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
        answered = bool(first)
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
            if not answered and not self._tls.server_side and data[0] not in TLS_RECORD_TYPES:
                raise NotTlsAnswer(data)  # a refusal line, or not a chatkit server at all
            answered = True
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


def open_client_channel(sock: socket.socket, host: str, timeout: float,
                        address: str | None = None) -> TlsChannel:
    """Client side of the handshake over a connected socket.

    A server that answers in plain text instead of TLS either refused the connection with
    its `!!! reason` line (ServerRefusal, the reason as the server gave it) or is not a
    chatkit server (ProtocolError); `address` names it in that message.
    """
    channel = TlsChannel(client_context(), server_side=False,
                         server_hostname=host if not _is_ip(host) else None)
    deadline = time.monotonic() + timeout
    try:
        leftover = channel.handshake(sock, deadline)
    except NotTlsAnswer as answer:
        raise plain_answer_error(_read_plain_line(sock, answer.data, deadline),
                                 address or host) from None
    except TimeoutError:
        # Not a failed handshake: nothing answered at all (a server stopped with SIGSTOP or
        # swamped: the kernel still accepts its connections).
        raise UnreachableError(no_answer(address or host, timeout, "the TLS handshake")) from None
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) \
            or (exc.args[0] if exc.args else type(exc).__name__)
        raise TlsHandshakeError(host, reason) from None
    if leftover:  # servers never speak first; keep the contract simple
        raise UnreachableError(f"{host} sent data before the client spoke")
    return channel


def no_answer(address: str, timeout: float, unanswered: str) -> str:
    """What to say of a server that accepted a connection, then never answered `unanswered`
    (the TLS handshake, `hello`)."""
    return (f"no answer from {address} within {timeout:g} s: it accepted the connection but "
            f"never answered {unanswered} (a server that is stopped or overloaded, or not a "
            "chatkit server)")


def plain_answer_error(line: bytes, address: str) -> ServerRefusal | ProtocolError:
    """What a plain-text answer where TLS (or `welcome`) was expected means."""
    text = line.decode("utf-8", "replace").strip()
    text = "".join(ch for ch in text if ch.isprintable())[:200]
    if line.startswith(REFUSAL_PREFIX):
        return ServerRefusal(text[len(REFUSAL_PREFIX):].strip() or "no reason given")
    return ProtocolError(f"{address} does not speak the chatkit protocol "
                         f"(it answered {text!r})")


def _read_plain_line(sock: socket.socket, data: bytes, deadline: float) -> bytes:
    """The first line of a plain answer (bounded; whatever came when the peer closes, stops
    or the deadline passes)."""
    while b"\n" not in data and len(data) < PLAIN_ANSWER_BYTES:
        try:
            more = _recv_until(sock, min(deadline, time.monotonic() + 1.0))
        except (OSError, TimeoutError):
            break
        if not more:
            break
        data += more
    return data.split(b"\n", 1)[0][:PLAIN_ANSWER_BYTES]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
