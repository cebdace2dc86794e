"""The line door's reader thread, one per connection: sniff the mode from the first byte, run
TLS if the client starts it, register (password, nickname or `hello`), then turn each line into
a hub request until the connection ends. Reading, TLS, the rate (`Throttle`: lines over it
wait, nothing is dropped) and pings are every socket door's: chatkit/server/doors/reader.py."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from chatkit import protocol
from chatkit.protocol import (
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    LineSplitter,
    TelnetFilter,
    decode,
)
from chatkit.server.doors.line.formats import JSON
from chatkit.server.doors.reader import SocketReader

if TYPE_CHECKING:
    from chatkit.server.doors.line.connection import LineConnection
    from chatkit.server.doors.line.door import LineDoor

log = logging.getLogger("chatkit.server")

#: telnet IAC WILL ECHO / IAC WONT ECHO: the password prompt is not echoed by telnet clients
TELNET_ECHO_OFF = bytes([255, 251, 1])
TELNET_ECHO_ON = bytes([255, 252, 1])


class LineReader(SocketReader):
    """Runs one connection's reader thread (see the module docstring)."""

    def __init__(self, door: LineDoor, conn: LineConnection) -> None:
        super().__init__(door, conn)
        #: text mode: the registered nickname whose password is asked for next
        self.pending_nick: str | None = None
        #: text mode: the account request (/register...) whose password is the next line
        self.asking: Frame | None = None

    def _run(self) -> None:
        conn, config = self.conn, self.config
        deadline = time.monotonic() + config.handshake_timeout
        first = self._open(config.sniff_seconds, deadline, tls_only=config.require_tls)
        if first is None:
            return
        if first.startswith(b"{"):
            conn.use_json()
        else:
            conn.send_text(f"chatkit server {self.hub.name} - welcome!",
                           "Type /quit to leave at any time.")
            conn.deliver(self._prompt_bytes())
        telnet = TelnetFilter() if conn.mode == "text" else None
        self.read_lines(first, deadline, telnet, LineSplitter())

    def refuse_plain(self) -> None:
        self.conn.deliver(b"!!! this server accepts TLS connections only: use `chatkit join`"
                          b"\r\n")
        self.conn.quit_reason = "plain connection to a TLS-only server"

    def handle_line(self, line: bytes) -> None:
        """One complete input line from the client, in its mode."""
        conn = self.conn
        ref = None
        json_mode = conn.format is JSON
        if not json_mode and conn.nick is None and line.lstrip().startswith(b"{"):
            # docs/protocol.md: a program whose hello arrives after the text greeting is still
            # switched to JSON mode (nicknames never start with "{")
            conn.use_json()
            json_mode = True
        try:
            if json_mode:
                frame = decode(line)
                ref = frame.get("ref")
                kind = frame.get("type")
                if kind == "pong":
                    return  # the answer to a server ping: arriving at all was its purpose
                if kind == "hello" and frame.get("pings") is True:
                    self.pings = True
            else:
                parsed = self._text_to_frame(line)
                if parsed is None:
                    return
                frame = parsed
            self.dispatch(conn, frame)
        except FrameError as exc:
            log.debug("%s: %s", conn.label, exc.message)
            self.hub.refuse(conn, exc.code, exc.message, ref)
            if exc.code == "nick_registered" and not json_mode and conn.nick is None:
                self.pending_nick = _nick_of(line)
            if conn.mode == "text" and conn.nick is None and not conn.dead:
                conn.deliver(self._prompt_bytes())

    def _text_to_frame(self, line: bytes) -> Frame | None:
        """A line typed by an nc/telnet user as the request it means."""
        conn = self.conn
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("bad_utf8", "that line was not UTF-8 and was ignored; "
                                         "set your terminal to UTF-8") from None
        text = text.strip()
        if not text:
            return None
        if self.asking is not None:  # the password of /register, /identify...
            frame, self.asking = self.asking, None
            conn.deliver(TELNET_ECHO_ON + b"\r\n")
            return {**frame, "password": text}
        if conn.nick is None:
            if text.lower() in ("/quit", "/exit"):
                return {"type": "quit"}
            if self.pending_nick is not None:  # the password of a registered nickname
                nick, self.pending_nick = self.pending_nick, None
                conn.deliver(TELNET_ECHO_ON + b"\r\n")
                if text.lower() == "/cancel":
                    conn.deliver(self._prompt_bytes())
                    return None
                return {"type": "hello", "version": PROTOCOL_VERSION, "nick": nick,
                        "identify": text}
            if not conn.authenticated and self.hub.gate.required:
                conn.deliver(TELNET_ECHO_ON + b"\r\n")  # the typed line end was not echoed
                self.hub.check_password(conn, text)
                conn.deliver(self._prompt_bytes())
                return None
            return {"type": "hello", "version": PROTOCOL_VERSION, "nick": text}
        current = conn.current_room
        if text.startswith("/") and not text.startswith("//"):
            frame = protocol.parse_command(text, current.name if current else None)
            if frame["type"] in protocol.PASSWORD_REQUESTS:  # asked for, never typed inline
                self.asking = frame
                word = "New password" if frame["type"] in ("register", "passwd") \
                    else "Password"
                conn.deliver(TELNET_ECHO_OFF + f"{word}: ".encode())
                return None
            return frame
        if text.startswith("//"):
            text = text[1:]
        if current is None:
            raise FrameError("not_in_room", "you are in no room; /join ROOM first")
        return {"type": "msg", "room": current.name, "text": text}

    def _prompt_bytes(self) -> bytes:
        """What a text-mode user is asked next while registering. Before `Password: ` the
        server offers to echo (telnet WILL ECHO), so a telnet client stops echoing what is
        typed; TELNET_ECHO_ON hands echo back once the line is in. The client's answers are
        stripped by the TelnetFilter."""
        if self.hub.gate.required and not self.conn.authenticated:
            return TELNET_ECHO_OFF + b"Password: "
        if self.pending_nick is not None:
            return TELNET_ECHO_OFF + (f"Password for {self.pending_nick} (/cancel: choose "
                                      "another nickname): ").encode()
        return b"Nickname: "



def _nick_of(line: bytes) -> str:
    """The nickname a text-mode user typed (already accepted by the hub as a name)."""
    return line.decode("utf-8", "replace").strip()
