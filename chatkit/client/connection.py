"""A blocking JSON-mode connection to a chatkit server: connect, handshake, send, receive.

Owns: one TCP (optionally TLS) connection, the handshake (`hello` -> `welcome`), framing in
both directions, and the one gate every server frame passes on arrival: decoded, sanitised,
then checked against its typed definition (`chatkit.protocol.check_server_frame`). A malformed
frame of a known type is dropped there (logged at debug level), so nothing above this module
has to survive a missing or mistyped field. Used by `chatkit send` (`chatkit.client.send`) and
by the reconnecting link of `chatkit join` (`chatkit.client.link`). Failures become ChatkitError
subclasses with one-line messages that say what is wrong (never which flag fixes it).
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

from chatkit import __version__
from chatkit.client.passwords import PasswordError
from chatkit.errors import (
    REFUSAL_PREFIX,
    ProtocolError,
    RefusedError,
    ServerRefusal,
    UnreachableError,
)
from chatkit.net.addresses import format_address
from chatkit.net.sockets import tune_tcp
from chatkit.paths import known_servers_file
from chatkit.protocol import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    LineSplitter,
    check_server_frame,
    decode,
    encode,
    sanitize_frame,
    sanitize_text,
)
from chatkit.tls import KnownServers, TlsChannel, fingerprint_hex, open_client_channel
from chatkit.tls.channel import no_answer

log = logging.getLogger("chatkit.client")

CONNECT_TIMEOUT = 5.0
#: The longest line the client reads: the protocol's MAX_FRAME (which a server keeps to) with
#: a wide margin, for servers from before every frame was bounded. A longer line is skipped.
READ_LIMIT = 4 * MAX_FRAME


class Connection:
    """One JSON-mode session. `recv` is for one reader thread; `send` is thread-safe."""

    def __init__(self, sock: socket.socket, host: str, port: int,
                 tls: TlsChannel | None = None) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self.tls = tls
        #: the server's certificate fingerprint (TLS only), and whether it was pinned just now
        self.fingerprint: str | None = None
        self.newly_pinned = False
        #: where a new server's certificate is pinned once it answered `welcome`
        self._pin_to: KnownServers | None = None
        self.welcome: Frame = {}
        self._splitter = LineSplitter(READ_LIMIT)
        #: told (once) when a line the client cannot use is skipped after `welcome`
        self.on_skipped: Callable[[str], None] | None = None
        self.skipped = 0  # lines skipped after `welcome`: too long or not a frame
        self._welcomed = False  # a `welcome` arrived (maybe still pending): lines may be skipped
        self._skip_note = ""
        self._pending: list[Frame] = []
        self._send_lock = threading.Lock()
        self._refs = itertools.count(1)
        self._garbage: list[str] = []  # non-JSON lines before `welcome`, for error messages
        self.closed = False

    # ------------------------------------------------------------------ set-up

    @classmethod
    def open(cls, host: str, port: int, nick: str, room: str | None = "lobby",
             timeout: float = CONNECT_TIMEOUT, *, tls: bool = True, insecure: bool = False,
             password: str | None = None, expected_fingerprint: str | None = None,
             known_servers: KnownServers | None = None,
             on_pin: Callable[[Connection], None] | None = None,
             resume: str | None = None, client_id: str | None = None,
             history: int | None = None, quiet: bool = False,
             identify: str | None = None) -> Connection:
        """Connect and complete the handshake; return a registered connection.

        With `tls` (the default) the server's certificate is checked against the pinned one
        (trust on first use; `insecure` skips the check, the link is still encrypted).
        A new server's certificate is pinned only once it answered with a valid `welcome`
        (it proved to speak chatkit); `on_pin` is told then. `resume` is the token of this
        client's previous
        connection (its `welcome`'s `resume`): if that connection still holds the nickname,
        the server ends it instead of refusing the nickname. `client_id` names this client
        process across its connections, so the lines it sends again after a reconnect (same
        `tag`) are recognised by the server instead of stored twice. `history` asks for that
        many stored messages of `room` (None: the server's default); `quiet` registers a
        script sender whose joins and quit nobody is told about (servers that do not know
        these fields ignore them).
        """
        conn = cls.dial(host, port, timeout, tls=tls, insecure=insecure,
                        expected_fingerprint=expected_fingerprint, known_servers=known_servers)
        try:
            conn.handshake(nick, room, timeout, password, resume, client_id, history=history,
                           quiet=quiet, identify=identify)
            if conn._pin_to is not None and conn.fingerprint is not None:
                conn._pin_to.pin(conn.address, conn.fingerprint)
                conn._pin_to, conn.newly_pinned = None, True
                if on_pin is not None:
                    on_pin(conn)
        except BaseException:
            conn.close()
            raise
        conn.sock.settimeout(None)
        return conn

    @classmethod
    def dial(cls, host: str, port: int, timeout: float = CONNECT_TIMEOUT, *, tls: bool = True,
             insecure: bool = False, expected_fingerprint: str | None = None,
             known_servers: KnownServers | None = None) -> Connection:
        """Connect, and with `tls` complete the TLS handshake and check the certificate
        against its pin; no `hello` yet, and a new server is not pinned (`open` pins it after
        `welcome`). `open` is this and the handshake; alone, it tells whether the server is
        there (`chatkit join` checks that before asking for a nickname)."""
        address = format_address(host, port)
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.gaierror as exc:
            raise UnreachableError(f"cannot resolve {host!r}: {exc.strerror}") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UnreachableError(
                f"cannot connect to {address}: {reason} (is `chatkit serve` running there?)"
            ) from None
        tune_tcp(sock)
        conn = cls(sock, host, port)
        try:
            if tls:
                conn.start_tls(timeout, insecure=insecure, expected=expected_fingerprint,
                               known=known_servers)
        except BaseException:
            conn.close()
            raise
        return conn

    def rate_limits(self) -> tuple[float, int] | None:
        """(lines per second, burst) the server announced in `welcome`, None for no limit
        (or a server too old to announce one)."""
        limits = self.welcome.get("limits")
        if not isinstance(limits, dict):
            return None
        rate, burst = limits.get("rate"), limits.get("burst")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not 0 < rate < 1e6 or isinstance(burst, bool) or not isinstance(burst, int):
            return None
        return float(rate), max(1, min(burst, 10_000))

    def start_tls(self, timeout: float, *, insecure: bool = False, expected: str | None = None,
                  known: KnownServers | None = None) -> None:
        self.tls = open_client_channel(self.sock, self.host, timeout, self.address)
        self.fingerprint = self.tls.server_fingerprint()
        if insecure or self.fingerprint is None:
            return
        known = known or KnownServers(known_servers_file())
        # Checked here, before any `hello` (and password) is sent; a new server is pinned
        # only after its `welcome` (`open`), so another TLS service never gets pinned.
        if known.check(self.address, self.fingerprint, expected):
            self._pin_to = known

    def handshake(self, nick: str, room: str | None, timeout: float,
                  password: str | None = None, resume: str | None = None,
                  client_id: str | None = None, *, history: int | None = None,
                  quiet: bool = False, identify: str | None = None) -> Frame:
        hello: Frame = {"type": "hello", "version": PROTOCOL_VERSION, "nick": nick,
                        "room": room, "client": f"chatkit {__version__}", "pings": True}
        if history is not None and room is not None:
            hello["history"] = history
        if quiet:
            hello["quiet"] = True
        if password is not None:
            hello["password"] = password
        if resume is not None:
            hello["resume"] = resume
        if client_id is not None:
            hello["client_id"] = client_id
        if identify is not None:  # the password of the account named `nick`
            hello["identify"] = identify
        self.send(hello)
        while True:
            try:
                frame = self.recv(timeout, skip_garbage=True)
            except TimeoutError:
                raise UnreachableError(no_answer(self.address, timeout, "`hello`")) from None
            if frame is None:
                if self._garbage and not self._garbage[0].startswith("chatkit server"):
                    raise ProtocolError(f"{self.address} does not speak the chatkit protocol "
                                        f"(it answered {self._garbage[0]!r})")
                said = f" (it said: {self._garbage[-1]})" if self._garbage else ""
                raise UnreachableError(
                    f"{self.address} closed the connection during the handshake{said}")
            if frame["type"] == "welcome":
                self.welcome = frame
                return frame
            if frame["type"] == "error":
                if frame.get("code") == "bad_password":
                    raise PasswordError(missing=password is None)
                raise_for_error(frame)

    # ------------------------------------------------------------------ I/O

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def nick(self) -> str:
        return str(self.welcome.get("nick", ""))

    def next_ref(self) -> str:
        return f"r{next(self._refs)}"

    def send(self, frame: Frame) -> None:
        data = encode(frame)
        with self._send_lock:
            if self.tls is not None:
                data = self.tls.encrypt(data)
            try:
                self.sock.sendall(data)
            except OSError as exc:
                raise UnreachableError(f"connection to {self.address} lost: {exc}") from None

    def recv(self, timeout: float | None = None, *, skip_garbage: bool = False) -> Frame | None:
        """The next frame, None at end of stream; raises TimeoutError after `timeout` seconds."""
        self.sock.settimeout(timeout)
        while not self._pending:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError(f"no answer from {self.address} within {timeout} s") from None
            except OSError as exc:
                if self.closed:
                    return None
                raise UnreachableError(f"connection to {self.address} lost: {exc}") from None
            if not data:
                return None
            if self.tls is not None:
                try:
                    data, reply = self.tls.decrypt(data)
                except ssl.SSLError as exc:
                    raise UnreachableError(f"TLS error from {self.address}: {exc}") from None
                if reply:
                    with self._send_lock:
                        self.sock.sendall(reply)
            for item in self._splitter.feed(data):
                if isinstance(item, FrameError):
                    if not self._welcomed:
                        raise ProtocolError(f"{self.address}: {item.message}")
                    self._skip(item.message)
                    continue
                if not item.strip():
                    continue
                frame = self._accept(item, skip_garbage)
                if frame is not None:
                    self._pending.append(frame)
        self._tell_skipped()
        return self._pending.pop(0)

    def _accept(self, item: bytes, skip_garbage: bool) -> Frame | None:
        """One received line as a frame that is safe to use, or None when it is dropped."""
        try:
            # Sanitised once here, on arrival: nothing a server (or a peer through it) sends
            # reaches a terminal, a log or a JSON consumer with control characters.
            frame: Frame = sanitize_frame(decode(item))
        except (RecursionError, FrameError) as exc:  # RecursionError: deeper than Python
            why = exc.message if isinstance(exc, FrameError) else "a frame nested too deeply"
            if self._welcomed:  # one bad line is no reason to reconnect (and meet it again)
                self._skip(why)
                return None
            if skip_garbage and isinstance(exc, FrameError):
                if item.startswith(REFUSAL_PREFIX):  # the server refused the connection
                    raise refusal(item) from None
                # a text-mode greeting sent before our hello arrived
                self._garbage.append(sanitize_text(item.decode("utf-8", "replace"))[:200])
                return None
            raise ProtocolError(f"{self.address} does not speak the chatkit protocol ({why})"
                                ) from None
        if frame["type"] == "ping":
            # the server checking that we are still here (we said `pings` in the hello):
            # answered at once, never shown
            self.send({"type": "pong", "id": frame.get("id")})
            return None
        try:
            # Checked once here: a known frame type missing a field, or with a mistyped one,
            # never reaches the session, the model or a renderer.
            check_server_frame(frame)
        except FrameError as exc:
            if frame["type"] == "welcome" and not self.welcome:
                # the handshake cannot go on without it; waiting would only end in a timeout
                raise ProtocolError(f"{self.address} does not speak the chatkit protocol "
                                    f"({exc.message})") from None
            log.debug("dropped a malformed frame from %s: %s", self.address, exc.message)
            return None
        if frame["type"] == "welcome":
            self._welcomed = True
        return frame

    def _skip(self, why: str) -> None:
        """A line after `welcome` that cannot be used: skipped, the connection kept (closing
        would reconnect into the same line, a stored one replayed, in a loop). The first is
        told to `on_skipped` by the next `recv` (it may be set after `open`)."""
        self.skipped += 1
        log.debug("skipped a line from %s: %s", self.address, why)
        if self.skipped == 1:
            self._skip_note = (f"skipped a line from {self.address} that is not a usable "
                               f"frame ({why}); further ones are skipped silently")

    def _tell_skipped(self) -> None:
        if self._skip_note and self.on_skipped is not None:
            note, self._skip_note = self._skip_note, ""
            self.on_skipped(note)

    def frames(self) -> Iterator[Frame]:
        """Every frame until the server closes the connection."""
        while (frame := self.recv()) is not None:
            yield frame

    def request(self, frame: Frame, timeout: float = CONNECT_TIMEOUT) -> Frame:
        """Send a frame with a fresh `ref` and return the answer carrying that ref.

        Frames that arrive meanwhile without our ref are kept for later `recv` calls.
        """
        ref = self.next_ref()
        self.send({**frame, "ref": ref})
        skipped: list[Frame] = []
        try:
            while True:
                answer = self.recv(timeout)
                if answer is None:
                    raise UnreachableError(f"{self.address} closed the connection")
                if answer.get("ref") == ref:
                    if answer["type"] == "error":
                        raise_for_error(answer)
                    return answer
                skipped.append(answer)
        finally:
            self._pending[:0] = skipped

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def quit(self, reason: str | None = None) -> None:
        """Leave politely: send quit, wait briefly for `bye`, close."""
        try:
            self.send({"type": "quit", "reason": reason})
            deadline_frames = 0
            while deadline_frames < 10_000:
                frame = self.recv(2.0)
                if frame is None or frame["type"] == "bye":
                    break
                deadline_frames += 1
        except (TimeoutError, UnreachableError, ProtocolError):
            pass
        finally:
            self.close()


def pinned_note(conn: Connection) -> str:
    """What a user is told when a server's certificate was pinned on first use: both forms of
    the fingerprint, chatkit's and openssl's, to compare with what the server printed."""
    value = conn.fingerprint or ""
    return (f"first connection to {conn.address}: pinned its certificate {value} "
            f"(openssl form {fingerprint_hex(value)}); compare with the fingerprint "
            "`chatkit serve` printed")


def refusal(line: bytes) -> ServerRefusal:
    """The server's plain `!!! reason` refusal line as the error a user sees."""
    reason = sanitize_text(line[len(REFUSAL_PREFIX):].decode("utf-8", "replace")).strip()
    if "TLS connections only" in reason:  # what a --require-tls server says to plain clients
        return ServerRefusal("it accepts TLS connections only", remedy="drop_no_tls")
    return ServerRefusal(reason[:200] or "no reason given")


def raise_for_error(frame: Frame) -> None:
    """Turn an `error` frame into the matching ChatkitError."""
    code = str(frame.get("code", "error"))
    message = str(frame.get("message", "error"))
    if code == "unsupported_version":
        raise ProtocolError(f"protocol mismatch: {message}")
    raise RefusedError(message, code)
