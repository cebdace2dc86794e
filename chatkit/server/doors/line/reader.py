"""The line door's reader thread, one per connection: sniff the mode from the first byte, run
TLS if the client starts it, register (password, nickname or `hello`), then turn each line into
a hub request until the connection ends. Lines over the rate limit are dropped with a warning;
a client that keeps flooding is cut off."""

from __future__ import annotations

import logging
import select
import ssl
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
from chatkit.ratelimit import TokenBucket
from chatkit.server.doors.line.connection import LineConnection
from chatkit.server.doors.line.formats import JSON
from chatkit.tls import TLS_RECORD_START, TlsChannel

if TYPE_CHECKING:
    from chatkit.server.doors.line.door import LineDoor

log = logging.getLogger("chatkit.server")

#: a TLS handshake gets at most this long, within the registration deadline
TLS_HANDSHAKE_SECONDS = 10.0
#: telnet IAC WILL ECHO / IAC WONT ECHO: the password prompt is not echoed by telnet clients
TELNET_ECHO_OFF = bytes([255, 251, 1])
TELNET_ECHO_ON = bytes([255, 252, 1])


class FloodGuard:
    """A token bucket per client: lines over the rate are dropped (with a warning now and then),
    and a client that keeps flooding collects strikes until it is disconnected."""

    WARN_EVERY = 2.0

    def __init__(self, rate: float, burst: int) -> None:
        now = time.monotonic()
        self.bucket = TokenBucket(rate, burst, now)
        self.burst = burst
        self.strikes = 0.0
        self.warned_at = -self.WARN_EVERY

    def check(self) -> str:
        """'ok', 'drop', 'warn' (drop and tell the client) or 'disconnect'."""
        now = time.monotonic()
        elapsed = now - self.bucket.last
        self.strikes = max(0.0, self.strikes - elapsed)
        if self.bucket.take(now):
            return "ok"
        self.strikes += 1
        if self.strikes > 2 * self.burst:
            return "disconnect"
        if now - self.warned_at >= self.WARN_EVERY:
            self.warned_at = now
            return "warn"
        return "drop"


class LineReader:
    """Runs one connection's reader thread (see the module docstring)."""

    def __init__(self, door: LineDoor, conn: LineConnection) -> None:
        self.door = door
        self.hub = door.hub
        self.conn = conn
        self.config = door.config
        self.flood: FloodGuard | None = None
        self.dispatch = door.hub.requests.dispatch  # Hub.dispatch, one call less per line

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bug must cost one connection, never the server
            log.exception("internal error in connection %s", self.conn.label)
        finally:
            self.door.disconnect(self.conn)

    def _run(self) -> None:
        conn, config = self.conn, self.config
        deadline = time.monotonic() + config.handshake_timeout
        first = self._read_within(config.sniff_seconds)
        if first is None:
            return
        if first[:1] == bytes([TLS_RECORD_START]):
            first = self._start_tls(first, deadline)
            if first is None:
                return
        elif config.require_tls:
            conn.deliver(b"!!! this server accepts TLS connections only: use `chatkit join`\r\n")
            conn.quit_reason = "plain connection to a TLS-only server"
            return
        if first.startswith(b"{"):
            conn.use_json()
        else:
            conn.send_text(f"chatkit server {self.hub.name} - welcome!",
                           "Type /quit to leave at any time.")
            conn.deliver(self._prompt_bytes())
        telnet = TelnetFilter() if conn.mode == "text" else None
        splitter = LineSplitter()
        data = first
        output = conn.output  # `output.dead`, not the property: checked once per line
        while not output.dead:
            if telnet is not None:
                data = telnet.feed(data)
            for item in splitter.feed(data):
                if isinstance(item, FrameError):
                    self.hub.refuse(conn, item.code, item.message)
                    continue
                if not item.strip() or not self._admit_line():
                    continue
                self.handle_line(item)
                if output.dead:
                    return
            if output.dead:
                return
            if conn.nick is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    conn.quit_reason = "handshake timeout"
                    self.hub.refuse(conn, "timeout", "no nickname/hello in time; disconnecting")
                    return
            received = self._receive()
            if received is None:
                conn.note_end("connection closed")
                return
            data = received

    # ------------------------------------------------------------------ lines

    def _admit_line(self) -> bool:
        """Apply the per-client rate limit to one incoming line; False drops it."""
        conn, config = self.conn, self.config
        if conn.output.dead:
            return False  # cut off: the rest of its last chunk is dropped, not logged line by line
        if config.rate_limit <= 0:
            return True
        if self.flood is None:
            self.flood = FloodGuard(config.rate_limit, config.rate_burst)
        verdict = self.flood.check()
        if verdict == "ok":
            return True
        if verdict == "warn":
            self.hub.refuse(conn, "rate_limited", f"you are sending too fast (limit "
                            f"{config.rate_limit:g} per second): lines are being dropped")
        elif verdict == "disconnect":
            log.warning("disconnecting %s: flooding", conn.label)
            self.hub.refuse(conn, "flooding", "disconnected for flooding")
            conn.end("disconnected for flooding")
        return False

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
            else:
                parsed = self._text_to_frame(line)
                if parsed is None:
                    return
                frame = parsed
            self.dispatch(conn, frame)
        except FrameError as exc:
            log.debug("%s: %s", conn.label, exc.message)
            self.hub.refuse(conn, exc.code, exc.message, ref)
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
        if conn.nick is None:
            if text.lower() in ("/quit", "/exit"):
                return {"type": "quit"}
            if not conn.authenticated and self.hub.gate.required:
                conn.deliver(TELNET_ECHO_ON + b"\r\n")  # the typed line end was not echoed
                self.hub.check_password(conn, text)
                conn.deliver(self._prompt_bytes())
                return None
            return {"type": "hello", "version": PROTOCOL_VERSION, "nick": text}
        current = conn.current_room
        if text.startswith("/") and not text.startswith("//"):
            return protocol.parse_command(text, current.name if current else None)
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
        return b"Nickname: "

    # ------------------------------------------------------------------ bytes

    def _read_within(self, seconds: float) -> bytes | None:
        """The first bytes the client sends within `seconds` (b'' if it waits), None if gone."""
        if not self._wait_readable(seconds):
            return b""
        try:
            return self.conn.sock.recv(65536) or None
        except OSError:
            return None

    def _start_tls(self, first: bytes, deadline: float) -> bytes | None:
        """Handshake, then the first plaintext (b'' if the client waits), None on failure."""
        conn = self.conn
        context = self.door.tls_context
        if context is None:
            log.info("%s attempted TLS, which this server does not offer", conn.peer)
            return None
        channel = TlsChannel(context, server_side=True)
        try:
            plaintext = channel.handshake(
                conn.sock, min(deadline, time.monotonic() + TLS_HANDSHAKE_SECONDS), first)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.info("%s: TLS handshake failed: %s", conn.peer, exc)
            return None
        conn.output.tls = channel
        if plaintext:
            return plaintext
        if not self._wait_readable(self.config.sniff_seconds):
            return b""
        return self._receive()

    def _receive(self) -> bytes | None:
        """The next plaintext bytes (maybe b'' when only TLS housekeeping arrived), None at
        the end of the connection."""
        conn = self.conn
        try:
            data = conn.sock.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        tls = conn.output.tls
        if tls is None:
            return data
        try:
            plaintext, reply = tls.decrypt(data)
        except ssl.SSLError as exc:
            log.info("%s: TLS error: %s", conn.label, exc)
            return None
        if reply:
            conn.output.send_raw(reply)
        return plaintext

    def _wait_readable(self, seconds: float) -> bool:
        # poll() instead of a socket timeout: a timeout would make the non-blocking sends of
        # other threads wait, and select() cannot watch descriptors above 1023.
        poller = select.poll()
        poller.register(self.conn.sock, select.POLLIN)
        return bool(poller.poll(max(0, int(seconds * 1000))))
