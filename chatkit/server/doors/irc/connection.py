"""One IRC client: `IrcConnection` (the Member the hub knows, with what IRC adds: capabilities,
USER, PASS, away) and `IrcReader`, its reader thread.

The reader's registration state is which handler its lines go to (`handler`), as in miniircd:
`commands.registering` until NICK and USER are in and capability negotiation is over, then
`commands.registered`. Reading, TLS, the rate (lines over it wait, never dropped) and pings
are every socket door's (chatkit/server/doors/reader.py).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatkit.protocol import Frame, FrameError, LineSplitter, irc
from chatkit.server.doors.irc.formats import IrcFormat, irc_format
from chatkit.server.doors.line.connection import LineConnection
from chatkit.server.doors.reader import SocketReader

if TYPE_CHECKING:
    from chatkit.server.doors.flusher import Flusher
    from chatkit.server.doors.irc.door import IrcDoor

log = logging.getLogger("chatkit.server")


class IrcConnection(LineConnection):
    """A connection to the IRC door."""

    def __init__(self, sock: socket.socket, peer: str, flusher: Flusher, max_backlog: int,
                 server: str) -> None:
        super().__init__(sock, peer, flusher, max_backlog)
        self.server = server  # the IRC server name, the source of numerics
        self.caps: set[str] = set()
        #: `format`, typed as what it is (the hub sees a WireFormat)
        self.fmt: IrcFormat = irc_format(server, self.caps)
        self.format = self.fmt
        #: CAP LS or REQ before registration holds it until CAP END
        self.negotiating = False
        self.wanted_nick: str | None = None  # NICK before registration
        self.user: str | None = None  # USER's user name (shown nowhere: prefixes are nick@chatkit)
        self.password: str | None = None  # PASS, checked at registration
        #: the base64 of an open SASL exchange so far; None when none is open (irc/sasl.py)
        self.sasl: str | None = None
        self.away: str | None = None  # AWAY's message; IRC-only state
        self.umodes: set[str] = set()

    @property
    def me(self) -> str:
        """The nickname numerics are addressed to: `*` until there is one."""
        return self.nick or "*"

    def send_lines(self, *lines: str) -> None:
        self.deliver(irc.wire(*lines))

    def numeric(self, number: str, *params: str) -> None:
        self.send_lines(self.fmt.numeric(number, self.me, *params))

    def notice(self, text: str) -> None:
        self.send_lines(*self.fmt.notice(self.me, text))

    def set_caps(self, caps: set[str]) -> None:
        """What the client negotiated: its format changes with it (under the hub's lock, which
        the caller holds, so a batch being fanned out sees one or the other)."""
        self.caps = caps
        self.fmt = irc_format(self.server, caps)
        self.format = self.fmt


class IrcReader(SocketReader):
    """Runs one IRC connection's reader thread (see the module docstring)."""

    TIMEOUT_MESSAGE = "registration timed out (no NICK and USER in time)"

    def __init__(self, door: IrcDoor, conn: IrcConnection) -> None:
        super().__init__(door, conn)
        from chatkit.server.doors.irc import commands

        self.irc_door = door
        self.irc = conn
        self.pings = True  # every IRC client answers PING
        self.handler: Callable[[IrcReader, irc.Message], None] = commands.registering

    def _run(self) -> None:
        config = self.config
        deadline = time.monotonic() + config.handshake_timeout
        first = self._open(config.handshake_timeout, deadline,
                           tls_only=self.irc_door.tls_only or config.require_tls)
        if first is None:
            return
        self.read_lines(first, deadline, None, LineSplitter(irc.MAX_CLIENT_LINE))

    def refuse_plain(self) -> None:
        self.irc.send_lines(irc.line("ERROR", "Closing link: this port speaks TLS only",
                                     trailing=True))
        self.irc.quit_reason = "plain connection to a TLS-only port"

    def handle_line(self, line: bytes) -> None:
        conn = self.irc
        try:
            message = irc.parse(line)
        except irc.IrcError as exc:
            if exc.code == "too_long":
                conn.numeric(irc.ERR_INPUTTOOLONG, "Input line was too long")
            elif exc.code == "bad_utf8":
                conn.notice(exc.message)
            return
        self.handler(self, message)

    def request(self, frame: Frame) -> bool:
        """Hand a request to the hub; an error is answered (as a numeric, by its `ref`)."""
        try:
            self.dispatch(self.conn, frame)
        except FrameError as exc:
            log.debug("%s: %s", self.conn.label, exc.message)
            self.hub.refuse(self.conn, exc.code, exc.message, frame.get("ref"))
            return False
        return True
