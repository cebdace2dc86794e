"""Opening one benchmark connection: TCP (or TLS), a small receive buffer for a client that
never reads, the handshake, and the errors a failure becomes (UnreachableError, RefusedError).

The connection object is the shard's asyncio protocol; here it is only something with a
`transport` and a `ready` future that its protocol resolves once the handshake is answered.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import Protocol, TypeVar

from chatkit.bench import wire
from chatkit.bench.config import BenchConfig
from chatkit.errors import REFUSAL_PREFIX, RefusedError, ServerRefusal, UnreachableError
from chatkit.net.addresses import format_address

#: Receive buffer of a stalled client (the kernel doubles it and rounds it up)
STALLED_RCVBUF = 4096


class Handshaking(Protocol):
    transport: asyncio.Transport | None
    ready: asyncio.Future[None]


C = TypeVar("C", bound=Handshaking)


async def _create(host: str, port: int, tls: ssl.SSLContext | None,
                  factory: Callable[[], asyncio.Protocol],
                  stalled: bool) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    if not stalled:
        return await loop.create_connection(factory, host, port, ssl=tls)
    # A client that never reads, with a small receive buffer: the kernel then holds a few
    # KiB instead of megabytes, so the server's own bounded backlog is what fills up.
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        return await loop.create_connection(
            factory, sock=sock, ssl=tls,
            server_hostname=host if tls is not None else None)
    except BaseException:
        sock.close()
        raise


async def open_connection(config: BenchConfig, tls: ssl.SSLContext | None,
                          factory: Callable[[], C], index: int, role: str,
                          handshake: bytes | None) -> C:
    """Connect, write `handshake` (None: none, a Redis publisher) and wait for its answer.

    `role` "stalled" connects with a small receive buffer and stops reading once joined.
    The server is `config.address(index)`.
    """
    host, port = config.address(index)
    try:
        _, made = await asyncio.wait_for(
            _create(host, port, tls, factory, stalled=role == "stalled"),  # type: ignore[arg-type]
            config.connect_timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        if isinstance(exc, ssl.SSLError):  # a plain `!!! reason` refusal reads as bad TLS
            refused = await plain_refusal(config, host, port)
            if refused is not None:
                raise ServerRefusal(refused) from None
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UnreachableError(f"cannot connect to {format_address(host, port)}: {reason}"
                               ) from None
    conn: C = made  # type: ignore[assignment]
    assert conn.transport is not None
    if handshake is None:
        conn.ready.set_result(None)
        return conn
    conn.transport.write(handshake)
    try:
        await asyncio.wait_for(asyncio.shield(conn.ready), config.connect_timeout)
    except asyncio.TimeoutError:
        conn.transport.abort()
        raise UnreachableError(f"client {index}: no answer to the handshake within "
                               f"{config.connect_timeout:g} s") from None
    except (UnreachableError, RefusedError):
        conn.transport.abort()
        raise
    if role == "stalled":
        conn.transport.pause_reading()  # never read again: the server must cope
    return conn


async def plain_refusal(config: BenchConfig, host: str, port: int) -> str | None:
    """After a failed TLS handshake: whether the server refuses connections outright now
    (its plain `!!! reason` line, e.g. past --max-per-address), and why."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), config.connect_timeout)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        # a chatkit server that admits us greets after its 0.5 s sniff, never with `!!! `
        line = await asyncio.wait_for(reader.readline(), 2.0)
    except (OSError, asyncio.TimeoutError, ValueError):
        line = b""
    finally:
        writer.close()
    return wire.refusal_reason(line) if line.startswith(REFUSAL_PREFIX) else None
