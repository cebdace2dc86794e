"""What `chatkit gui` was asked to do, and where to connect: plain data, no Qt.

Owns: `GuiOptions` (the command line's choices, built by `chatkit.cli.gui`) and `Target` (one
server to connect to, typed in or found by discovery, with what discovery said about it).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatkit.net.addresses import format_address
from chatkit.protocol import DEFAULT_PORT, DEFAULT_ROOM


@dataclass(frozen=True)
class Target:
    """A server to connect to. `announced`: the fingerprint discovery announced (the
    presented certificate must match it); `name`/`instance`: what discovery called it."""

    host: str
    port: int
    tls: bool = True
    name: str = ""
    instance: str = ""
    announced: str | None = None
    password_needed: bool | None = None

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)


@dataclass(frozen=True)
class GuiOptions:
    """The command line of `chatkit gui`: with `host` and `nick` it connects at once."""

    host: str | None = None
    port: int = DEFAULT_PORT
    nick: str | None = None
    room: str = DEFAULT_ROOM
    tls: bool = True
    insecure: bool = False
    password: str | None = None
    server_name: str | None = None
    broadcast: tuple[str, ...] = ()
    discovery_port: int = DEFAULT_PORT
    history: int | None = None
