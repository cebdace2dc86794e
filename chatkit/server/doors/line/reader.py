"""The line door's reader thread, one per connection: sniff the mode from the first byte, run
TLS if the client starts it, register (password, nickname or `hello`), then turn each line into
a hub request until the connection ends. Lines over the rate limit wait (`Throttle`): nothing
is dropped; only a client with over 1 MiB of lines waiting is cut off as a flooder."""

from __future__ import annotations

import array
import fcntl
import logging
import select
import socket
import ssl
import termios
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
#: bytes asked of one recv(): while the client is quiet, and while it fills them
RECV_SMALL, RECV_LARGE = 4096, 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
#: telnet IAC WILL ECHO / IAC WONT ECHO: the password prompt is not echoed by telnet clients
TELNET_ECHO_OFF = bytes([255, 251, 1])
TELNET_ECHO_ON = bytes([255, 252, 1])


#: A client with more input than this waiting to be read is not pasting or piping a file:
#: it is flooding, and is cut off (chatkit's own clients pace themselves and never get near).
#: Where the kernel keeps less than this for an unread socket, `ServerConfig.flood_seconds`
#: (throttled without a break for that long) is what ends a flood.
FLOOD_BYTES = 1 << 20
#: The longest single sleep of a throttled reader, so a stopped server is not kept waiting.
_NAP = 0.25


class Throttle:
    """Fakelag, as IRC servers do it: a token bucket per client, and a line over the rate is
    not dropped but waited for. The reader thread does not read on meanwhile, so TCP slows
    the sender down; nothing the client sent is lost, and nobody else waits."""

    def __init__(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(rate, max(1, burst), time.monotonic())
        #: since when every line of this client has had to wait (None: the last one did not)
        self.behind_since: float | None = None

    def wait(self, now: float) -> float:
        """Seconds until the next line may be handled; 0 means now (and it is counted)."""
        return self.bucket.delay(now)

    def behind_for(self, now: float) -> float:
        """How long this client has been sending faster than its rate, without a break."""
        if self.behind_since is None:
            self.behind_since = now
        return now - self.behind_since


def unread_bytes(sock: socket.socket) -> int:
    """What the client sent that this side has not read yet (0 where the system cannot say)."""
    try:
        buffer = array.array("i", [0])
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, buffer)
    except (OSError, ValueError):
        return 0
    return buffer[0]


class LineReader:
    """Runs one connection's reader thread (see the module docstring)."""

    def __init__(self, door: LineDoor, conn: LineConnection) -> None:
        self.door = door
        self.hub = door.hub
        self.conn = conn
        self.config = door.config
        self.throttle: Throttle | None = None
        #: the client said in its hello that it answers server pings (docs/protocol.md)
        self.pings = False
        self.pings_sent = 0
        self.dispatch = door.hub.requests.dispatch  # Hub.dispatch, one call less per line
        self._recv_size = RECV_SMALL
        #: text mode: the registered nickname whose password is asked for next
        self.pending_nick: str | None = None
        #: text mode: the account request (/register...) whose password is the next line
        self.asking: Frame | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bug must cost one connection, never the server
            log.exception("internal error in connection %s", self.conn.label)
        finally:
            try:
                self.door.disconnect(self.conn)
            finally:
                self.conn.finished.set()

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
        after_text = False  # the last line had text: an empty one next may be its CRLF's LF
        while not output.dead:
            if telnet is not None:
                data = telnet.feed(data)
            for item in splitter.feed(data):
                # Every line and every over-long one counts against the rate (empty and
                # blank ones too: they cost a wake-up each); only the empty line that CR LF
                # leaves after a line with text is free, so CRLF lines are not counted twice.
                free = item == b"" and after_text
                after_text = isinstance(item, bytes) and item != b""
                if not free and not self._admit_line():
                    continue
                if isinstance(item, FrameError):
                    self.hub.refuse(conn, item.code, item.message)
                    continue
                if not item.strip():
                    continue
                self.handle_line(item)
                if conn.registering and conn.nick is not None:
                    self.door.registered(conn)
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
            if self.pings and conn.nick is not None and not self._still_there():
                return
            received = self._receive()
            if received is None:
                conn.note_end("connection closed")
                return
            data = received

    # ------------------------------------------------------------------ lines

    def _admit_line(self) -> bool:
        """Wait until the client's rate allows its next line; False when the connection ended
        meanwhile (or was cut off for flooding)."""
        conn, config = self.conn, self.config
        output = conn.output
        if output.dead:
            return False  # cut off: the rest of its last chunk is dropped, not logged line by line
        if config.rate_limit <= 0:
            return True
        throttle = self.throttle
        if throttle is None:
            throttle = self.throttle = Throttle(config.rate_limit, config.rate_burst)
        now = time.monotonic()
        wait = throttle.wait(now)
        if wait <= 0:
            throttle.behind_since = None  # this line did not have to wait: no backlog
            return True
        while wait > 0:
            behind = throttle.behind_for(now)
            if behind > config.flood_seconds or unread_bytes(conn.sock) > FLOOD_BYTES:
                log.warning("disconnecting %s: flooding (faster than %g lines per second "
                            "for %.0f s)", conn.label, config.rate_limit, behind)
                self.hub.refuse(conn, "flooding", "disconnected for flooding: lines faster "
                                f"than {config.rate_limit:g} per second for {behind:.0f} s; "
                                "the rest was not read")
                conn.end("disconnected for flooding")
                return False
            time.sleep(min(wait, _NAP))
            if output.dead:
                return False
            now = time.monotonic()
            wait = throttle.wait(now)
        return True

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

    def _still_there(self) -> bool:
        """For a client that answers pings: True as soon as it sends something. After
        `ping_idle` seconds of silence it is sent a `ping`; when `ping_deadline` more pass
        without a byte, it is gone (vanished, or frozen): False, and the connection ends."""
        conn, config = self.conn, self.config
        if config.ping_idle <= 0 or self._wait_readable(config.ping_idle):
            return True
        self.pings_sent += 1
        conn.send_frame({"type": "ping", "id": f"s{self.pings_sent}"})
        if self._wait_readable(config.ping_deadline) or conn.dead:
            return True  # data, or an end the next read reports
        log.info("disconnecting %s: no answer to a ping within %g s", conn.label,
                 config.ping_deadline)
        conn.end(f"no answer to a ping within {config.ping_deadline:g} s")
        return False

    # ------------------------------------------------------------------ bytes

    def _read_within(self, seconds: float) -> bytes | None:
        """The first bytes the client sends within `seconds` (b'' if it waits), None if gone."""
        try:
            # Mostly there already (a client speaks first): then no poll() is needed, one
            # system call (and one wait for the GIL after it) less per connection.
            return self.conn.sock.recv(65536, _DONTWAIT) or None
        except BlockingIOError:
            pass
        except OSError:
            return None
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
        except ssl.SSLError as exc:
            # A client that refuses the certificate says so with a TLS alert ("bad
            # certificate", "unknown ca"): worth a line, the operator may have changed it.
            alert = "rejected this server's certificate" if "alert" in str(exc).lower() \
                else "TLS handshake failed"
            log.warning("%s %s: %s", conn.peer, alert, getattr(exc, "reason", None) or exc)
            return None
        except (OSError, TimeoutError) as exc:
            log.info("%s: TLS handshake failed: %s", conn.peer, exc)
            return None
        conn.output.tls = channel
        if plaintext:
            return plaintext
        if not self._wait_readable(self.config.sniff_seconds):
            return b""
        received = self._receive()
        if received is None:
            # chatkit clients check the pinned fingerprint after the handshake and leave
            # without a word when it differs: say what that most likely was.
            log.warning("%s closed the connection right after the TLS handshake (did it "
                        "refuse this server's certificate? a client that pinned another "
                        "one does)", conn.peer)
        return received

    def _receive(self) -> bytes | None:
        """The next plaintext bytes (maybe b'' when only TLS housekeeping arrived), None at
        the end of the connection."""
        conn = self.conn
        size = self._recv_size
        try:
            data = conn.sock.recv(size)
        except OSError:
            return None
        if not data:
            return None
        # recv(n) holds an n-byte buffer while it waits: 10,000 idle readers with 64 KiB
        # each kept 30% more memory resident. Small while the client is quiet, large while
        # it fills the buffer (a paste, a bench sender).
        self._recv_size = RECV_LARGE if len(data) == size else RECV_SMALL
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


def _nick_of(line: bytes) -> str:
    """The nickname a text-mode user typed (already accepted by the hub as a name)."""
    return line.decode("utf-8", "replace").strip()
