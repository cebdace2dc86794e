"""Registration on the IRC door: capability negotiation (CAP LS 302, REQ, END), PASS, NICK and
USER, then the hub's `hello`. Until then a client's lines go to `registering`; after, to
`commands.registered` (the reader's `handler` is its state).

The password is the server's (`PASS`), checked by the hub's gate like every door's; an
account's password comes by SASL PLAIN (`AUTHENTICATE`, chatkit/server/doors/irc/sasl.py),
whose login the same `hello` takes up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chatkit.protocol import PROTOCOL_VERSION, Frame, FrameError, irc
from chatkit.protocol.irc import Message
from chatkit.server.doors.irc.replies import CAPABILITIES, CAPABILITY_VALUES
from chatkit.server.doors.irc.sasl import abort, authenticate

if TYPE_CHECKING:
    from chatkit.server.doors.irc.connection import IrcReader

log = logging.getLogger("chatkit.server")


def registering(reader: IrcReader, message: Message) -> None:
    """The handler of a client's lines until it is registered."""
    conn = reader.irc
    command = message.command
    if command == "CAP":
        if message.params:
            cap(reader, message)
        else:
            conn.numeric(irc.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters")
    elif command == "PASS":
        if message.params:
            conn.password = message.params[0]
        else:
            conn.numeric(irc.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
    elif command == "NICK":
        if not message.params or not message.params[0]:
            conn.numeric(irc.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        conn.wanted_nick = message.params[0]
        try_register(reader)
    elif command == "USER":
        if len(message.params) < 4:
            conn.numeric(irc.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        conn.user = message.params[0]
        try_register(reader)
    elif command == "AUTHENTICATE":
        authenticate(reader, message)
    elif command == "PING":
        from chatkit.server.doors.irc.commands import ping

        ping(reader, message)
    elif command == "PONG":
        return
    elif command == "QUIT":
        reader.request({"type": "quit"})
    else:
        conn.numeric(irc.ERR_NOTREGISTERED, "You have not registered")


def try_register(reader: IrcReader) -> None:
    """Register once NICK and USER are in and no CAP negotiation is open."""
    conn = reader.irc
    if conn.wanted_nick is None or conn.user is None or conn.negotiating:
        return
    nick = conn.wanted_nick
    hello: Frame = {"type": "hello", "version": PROTOCOL_VERSION, "nick": nick, "room": None,
                    "client": "irc", "ref": f"NICK {nick[:48]}"}
    if conn.password is not None:
        hello["password"] = conn.password
    try:
        reader.dispatch(conn, hello)
    except FrameError as exc:
        reader.hub.refuse(conn, exc.code, exc.message, hello["ref"])
        if exc.code == "bad_password":  # IRC clients do not ask again: say so and close
            conn.send_lines(irc.line("ERROR", "Closing link: bad password", trailing=True))
            conn.end("bad password")
        return
    if conn.nick is not None:
        from chatkit.server.doors.irc.commands import registered

        reader.handler = registered
        reader.door.registered(conn)


def cap(reader: IrcReader, message: Message) -> None:
    """CAP LS [302], LIST, REQ, END (IRCv3 capability negotiation)."""
    conn = reader.irc
    sub = message.params[0].upper()
    me = conn.me
    server = conn.server
    if sub == "LS":
        if conn.nick is None:
            conn.negotiating = True
        # CAP LS 302 (or later) gets the values (`sasl=PLAIN`), older clients the names
        values = message.param(1).isdigit() and int(message.param(1)) >= 302
        listed = [f"{cap}={CAPABILITY_VALUES[cap]}" if values and cap in CAPABILITY_VALUES
                  else cap for cap in CAPABILITIES]
        conn.send_lines(irc.line("CAP", me, "LS", " ".join(listed), source=server,
                                 trailing=True))
    elif sub == "LIST":
        conn.send_lines(irc.line("CAP", me, "LIST", " ".join(sorted(conn.caps)), source=server,
                                 trailing=True))
    elif sub == "REQ":
        if conn.nick is None:
            conn.negotiating = True
        asked = message.param(1).split()
        # All or nothing (IRCv3): one unknown capability refuses the whole request.
        ok = bool(asked) and all(item.removeprefix("-") in CAPABILITIES for item in asked)
        if ok:
            caps = set(conn.caps)
            for item in asked:
                (caps.discard if item.startswith("-") else caps.add)(item.removeprefix("-"))
            with reader.hub.lock:
                conn.set_caps(caps)
        conn.send_lines(irc.line("CAP", me, "ACK" if ok else "NAK", message.param(1),
                                 source=server, trailing=True))
    elif sub == "END":
        if conn.nick is None:
            conn.negotiating = False
            abort(conn)  # a SASL exchange still open ends with registration
            try_register(reader)
    else:
        conn.numeric(irc.ERR_INVALIDCAPCMD, sub[:32], "Invalid CAP command")
