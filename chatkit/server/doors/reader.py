"""What every socket door's reader thread does, whatever it speaks: one thread per connection
reads bytes (TLS when the client starts it), splits lines, waits while the client is over its
rate (`Throttle`: nothing is dropped; only a client with over 1 MiB of lines waiting is cut off
as a flooder), pings a client gone quiet when it said it answers, and hands each line to the
door's own `handle_line`. The line door (doors/line/reader.py) and the IRC door
(doors/irc/connection.py) are its two subclasses."""

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

from chatkit.net.sockets import tune_tcp
from chatkit.protocol import FrameError, LineSplitter, TelnetFilter
from chatkit.ratelimit import TokenBucket
from chatkit.tls import TLS_RECORD_START, TlsChannel

if TYPE_CHECKING:
    from chatkit.server.doors.line.connection import LineConnection
    from chatkit.server.doors.line.door import LineDoor

log = logging.getLogger("chatkit.server")

#: a TLS handshake gets at most this long, within the registration deadline
TLS_HANDSHAKE_SECONDS = 10.0
#: bytes asked of one recv(): while the client is quiet, and while it fills them
RECV_SMALL, RECV_LARGE = 4096, 65536
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


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


class SocketReader:
    """Runs one connection's reader thread (see the module docstring); a door's subclass
    implements `_run` (what happens before the lines: sniffing, greeting) and `handle_line`."""

    #: the error sent to a client that did not register in time
    TIMEOUT_MESSAGE = "no nickname/hello in time; disconnecting"

    def __init__(self, door: LineDoor, conn: LineConnection) -> None:
        self.door = door
        self.hub = door.hub
        self.conn = conn
        self.config = door.config
        self.throttle: Throttle | None = None
        #: the client answers server pings (a chatkit hello said so; every IRC client does)
        self.pings = False
        self.pings_sent = 0
        self.dispatch = door.hub.requests.dispatch  # Hub.dispatch, one call less per line
        self._recv_size = RECV_SMALL

    def run(self) -> None:
        try:
            # Here, not in the accept loop: in a join storm every connection waits for that
            # one thread, and each system call there is a wait for the GIL.
            try:
                self.conn.sock.setblocking(True)
                tune_tcp(self.conn.sock, self.config.dead_peer_seconds)
            except OSError:  # gone already
                self.conn.note_end("connection lost")
                return
            self._run()
        except Exception:  # a bug must cost one connection, never the server
            log.exception("internal error in connection %s", self.conn.label)
        finally:
            try:
                self.door.disconnect(self.conn)
            finally:
                self.conn.finished.set()

    def _run(self) -> None:
        raise NotImplementedError

    def handle_line(self, line: bytes) -> None:
        """One complete input line from the client."""
        raise NotImplementedError

    def read_lines(self, first: bytes, deadline: float, telnet: TelnetFilter | None,
                   splitter: LineSplitter) -> None:
        """Lines to `handle_line` until the connection ends; registration by `deadline`."""
        conn = self.conn
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
                    self.hub.refuse(conn, "timeout", self.TIMEOUT_MESSAGE)
                    return
            if self.pings and conn.nick is not None and not self._still_there():
                return
            received = self._receive()
            if received is None:
                conn.note_end("connection closed")
                return
            data = received

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

    def _open(self, wait: float, deadline: float, tls_only: bool) -> bytes | None:
        """The connection's first plaintext: read within `wait` seconds (b'' if the client
        waits), after a TLS handshake when the client starts one (done by `deadline`). None
        when the connection ended, or when it spoke plain text and `tls_only` (after
        `refuse_plain` told it)."""
        first = self._read_within(wait)
        if first is None:
            return None
        if first[:1] == bytes([TLS_RECORD_START]):
            return self._start_tls(first, deadline)
        if tls_only:
            self.refuse_plain()
            return None
        return first

    def refuse_plain(self) -> None:
        """Tell a plain-text client of a TLS-only port why it is turned away (the door's
        words) and set the connection's quit reason."""
        raise NotImplementedError

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
