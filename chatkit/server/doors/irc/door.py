"""The IRC door: a port speaking IRC (`--irc-port`, `--irc-tls-port`), beside the line door.

It is the line door's acceptor and admission (chatkit/server/doors/line/door.py) with its own
connection (`IrcConnection`) and reader (`IrcReader`), admitting against the same counts, so
the server's limits hold whichever door a client uses. On the TLS port a client must start
TLS; on the plain port it may (the first byte says).
"""

from __future__ import annotations

import socket
import ssl

from chatkit.errors import ChatkitError
from chatkit.protocol import irc
from chatkit.server.config import ServerConfig
from chatkit.server.doors.flusher import Flusher
from chatkit.server.doors.irc.connection import IrcConnection, IrcReader
from chatkit.server.doors.line.connection import LineConnection
from chatkit.server.doors.line.door import LineDoor
from chatkit.server.doors.reader import SocketReader
from chatkit.server.hub.hub import Hub


class IrcDoor(LineDoor):
    """See the module docstring."""

    ACCEPTOR = "chatkit-irc-acceptor"

    def __init__(self, hub: Hub, config: ServerConfig, flusher: Flusher,
                 tls_context: ssl.SSLContext | None, *, port: int, tls_only: bool,
                 share: LineDoor | None = None) -> None:
        super().__init__(hub, config, flusher, tls_context, port=port, share=share)
        self.tls_only = tls_only
        self.server_name = irc.server_name(hub.name)

    def start(self) -> None:
        try:
            super().start()
        except ChatkitError as exc:  # the line door's wording names --port
            if exc.remedy != "choose_port":
                raise
            flag = "choose_irc_tls_port" if self.tls_only else "choose_irc_port"
            raise ChatkitError(str(exc).replace("(another chatkit serve?)", "(another IRC "
                                                "server?)"), remedy=flag) from None

    def new_connection(self, sock: socket.socket, peer: str) -> LineConnection:
        return IrcConnection(sock, peer, self.flusher, self.config.max_backlog,
                             self.server_name)

    def reader_for(self, conn: LineConnection) -> SocketReader:
        assert isinstance(conn, IrcConnection)
        return IrcReader(self, conn)

    def refusal(self, reason: str) -> bytes:
        return irc.wire(irc.line("ERROR", f"Closing link: {reason}", trailing=True))
