"""IRCv3 SASL on the IRC door (ircv3.net/specs/extensions/sasl-3.1), mechanism PLAIN only:
`AUTHENTICATE PLAIN`, the server's `AUTHENTICATE +`, then base64 of
`authzid NUL authcid NUL password` in pieces of 400 bytes (a last piece of exactly 400 is
followed by `AUTHENTICATE +`).

Owns the exchange's state on the connection (`IrcConnection.sasl`) and its numerics (900, 903,
904-908). The password is checked by the hub's account book (`Hub.accounts.identify`: the one
password check, with its throttling and its delay after a wrong password), and never logged.
A login is kept as the member's `pending_login`, which the registration's `hello` logs in to
(chatkit/server/hub/account_requests.py). Only before registration: afterwards a logged-in
client is told 907, a guest 904.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import TYPE_CHECKING

from chatkit.protocol import FrameError, irc, name_key, sanitize_text
from chatkit.protocol.irc import Message
from chatkit.server.doors.irc.formats import prefix

if TYPE_CHECKING:
    from chatkit.server.doors.irc.connection import IrcConnection, IrcReader

log = logging.getLogger("chatkit.server")

MECHANISMS = ("PLAIN",)
#: bytes of base64 in one AUTHENTICATE line
CHUNK = 400
#: base64 bytes of a whole PLAIN answer: names of 64 and a password of 256 characters fit
#: with room to spare; more is refused (905)
MAX_PAYLOAD = 4 * CHUNK
#: the longest account name looked up
MAX_NAME = 64


def authenticate(reader: IrcReader, message: Message) -> None:
    """One AUTHENTICATE line (see the module docstring)."""
    conn = reader.irc
    if conn.nick is not None or conn.pending_login is not None:
        if conn.account is not None or conn.pending_login is not None:
            conn.numeric(irc.ERR_SASLALREADY, "You have already authenticated using SASL")
        else:
            _fail(conn, "SASL is only available before registration")
        return
    if not message.params or not message.params[0]:
        conn.numeric(irc.ERR_NEEDMOREPARAMS, "AUTHENTICATE", "Not enough parameters")
        return
    if "sasl" not in conn.caps:
        _fail(conn, "request the sasl capability first (CAP REQ sasl)")
        return
    arg = message.params[0]
    if arg == "*":
        conn.sasl = None
        conn.numeric(irc.ERR_SASLABORTED, "SASL authentication aborted")
        return
    if conn.sasl is None:  # the first line names the mechanism
        if arg.upper() not in MECHANISMS:
            conn.numeric(irc.RPL_SASLMECHS, ",".join(MECHANISMS),
                         "are available SASL mechanisms")
            _fail(conn, f"unknown mechanism {arg[:32]}")
            return
        conn.sasl = ""
        conn.send_lines(irc.line("AUTHENTICATE", "+"))
        return
    if len(arg.encode()) > CHUNK or len(conn.sasl) + len(arg) > MAX_PAYLOAD:
        conn.sasl = None
        conn.numeric(irc.ERR_SASLTOOLONG, "SASL message too long")
        return
    if arg != "+":
        conn.sasl += arg
        if len(arg) == CHUNK:
            return  # more to come
    payload, conn.sasl = conn.sasl, None
    _plain(reader, payload)


def abort(conn: IrcConnection) -> None:
    """Registration ends an exchange still open (CAP END in the middle of it): 906."""
    if conn.sasl is not None:
        conn.sasl = None
        conn.numeric(irc.ERR_SASLABORTED, "SASL authentication aborted")


def _plain(reader: IrcReader, payload: str) -> None:
    conn = reader.irc
    try:
        authzid, authcid, password = base64.b64decode(payload, validate=True).decode(
            "utf-8").split("\0")
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        _fail(conn, "not a PLAIN answer (base64 of authzid NUL authcid NUL password)")
        return
    name = sanitize_text(authcid)[:MAX_NAME]
    if not name:
        _fail(conn, "no account name")
        return
    if authzid and name_key(authzid) != name_key(authcid):
        _fail(conn, "logging in on behalf of another account is not supported")
        return
    try:  # slow (a password hash, a delay when wrong): this reader's thread alone waits
        login = reader.hub.accounts.identify(conn.peer, name, password)
    except FrameError as exc:
        _fail(conn, exc.message)
        return
    with reader.hub.lock:
        conn.pending_login = login
    log.info("%s: SASL login to account %s", conn.peer, login.name)
    me = conn.me
    conn.numeric(irc.RPL_LOGGEDIN, prefix(conn.wanted_nick or me), login.name,
                 f"You are now logged in as {login.name}")
    conn.numeric(irc.RPL_SASLSUCCESS, "SASL authentication successful")


def _fail(conn: IrcConnection, reason: str) -> None:
    conn.numeric(irc.ERR_SASLFAIL, f"SASL authentication failed: {reason}")
