"""TLS for chatkit: the server's self-signed certificate, fingerprints, trust on first use,
and `TlsChannel`, the thread-safe TLS layer used by both the server and the clients.

Why a memory-BIO channel instead of `ssl.SSLSocket`: the server writes to a client from other
threads than the one reading it, and writes must never block (a non-blocking send, the rest in a
bounded backlog). An SSLSocket allows neither concurrent use by two threads nor `MSG_DONTWAIT`.
`ssl.SSLObject` over memory BIOs only encrypts and decrypts in memory, under a short lock; the
raw socket keeps its ordinary non-blocking send path.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import select
import socket
import ssl
import threading
import time
from pathlib import Path

from chatkit.errors import ChatkitError, UnreachableError

TLS_RECORD_START = 0x16  # the first byte of a TLS ClientHello


class TrustError(ChatkitError):
    """The server presented a certificate other than the one pinned for it."""

    exit_code = 4  # ExitCode.REFUSED; the literal avoids an import cycle in type checkers


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, written the way OpenSSH writes key fingerprints."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


# --------------------------------------------------------------------------- server certificate


def ensure_certificate(cert_path: Path, key_path: Path, hostname: str,
                       addresses: list[str]) -> None:
    """Create a self-signed EC certificate and key unless both exist (key mode 0600)."""
    if cert_path.exists() and key_path.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"chatkit {hostname}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname and hostname != "localhost":
        alt_names.append(x509.DNSName(hostname))
    for address in addresses:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            continue
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    os.chmod(key_path, 0o600)  # also when the file existed with wider permissions
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_path: Path, key_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context and the certificate's fingerprint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ChatkitError(f"cannot load TLS certificate {cert_path} / key {key_path}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    der = ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text())
    return context, fingerprint(der)


def client_context() -> ssl.SSLContext:
    """Encryption without a certificate authority: identity comes from the pinned fingerprint
    (trust on first use), as with SSH host keys."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------- the channel


class TlsHandshakeError(UnreachableError):
    """The client's TLS handshake failed: often a server that speaks no TLS (an older one, or
    one started without it). `host` and `reason` let the CLI say which option to change."""

    def __init__(self, host: str, reason: object) -> None:
        self.host = host
        self.reason = str(reason)
        super().__init__(f"TLS handshake with {host} failed: {reason} "
                         "(is it a chatkit server with TLS?)")


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


class KnownServers:
    """Pinned server fingerprints, like SSH's known_hosts: `known_servers.json` in the config
    directory, mapping "host:port" to a fingerprint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ChatkitError(f"cannot read {self.path}: {exc}; fix or delete it") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def all(self) -> dict[str, str]:
        return self._load()

    def get(self, address: str) -> str | None:
        return self._load().get(address)

    def pin(self, address: str, value: str) -> None:
        known = self._load()
        known[address] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        temporary.replace(self.path)

    def forget(self, address: str) -> bool:
        known = self._load()
        if known.pop(address, None) is None:
            return False
        self.path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        return True

    def verify(self, address: str, presented: str, expected: str | None = None) -> bool:
        """Check `presented` against the pin (and against `expected`, e.g. from discovery).

        Returns True when the server was new and has just been pinned; raises TrustError on a
        mismatch.
        """
        if expected is not None and expected != presented:
            raise TrustError(
                f"WARNING: {address} presented certificate {presented} but discovery announced "
                f"{expected}; someone may be impersonating the server. Not connecting.")
        pinned = self.get(address)
        if pinned is None:
            self.pin(address, presented)
            return True
        if pinned != presented:
            raise TrustError(
                f"WARNING: SERVER IDENTITY CHANGED for {address}: pinned {pinned}, presented "
                f"{presented}. Someone may be intercepting the connection, or the server got a "
                f"new certificate. If you trust the change, run "
                f"`chatkit trust --forget {address}` and connect again.")
        return False


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
