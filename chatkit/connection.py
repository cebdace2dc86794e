"""A blocking JSON-mode connection to a chatkit server: connect, handshake, send, receive.

Used by `chatkit send`, the interactive client and anything else that speaks JSON mode.
Failures become ChatkitError subclasses with one-line messages.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator

from chatkit import __version__
from chatkit.errors import ProtocolError, RefusedError, UnreachableError
from chatkit.protocol import (
    DEFAULT_PORT,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    LineSplitter,
    decode,
    encode,
)

CONNECT_TIMEOUT = 5.0


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[v6]:PORT` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """One JSON-mode session. `recv` is for one reader thread; `send` is thread-safe."""

    def __init__(self, sock: socket.socket, host: str, port: int) -> None:
        self.sock = sock
        self.host = host
        self.port = port
        self.welcome: Frame = {}
        self._splitter = LineSplitter()
        self._pending: list[Frame] = []
        self._send_lock = threading.Lock()
        self._refs = itertools.count(1)
        self.closed = False

    # ------------------------------------------------------------------ set-up

    @classmethod
    def open(cls, host: str, port: int, nick: str, room: str | None = "lobby",
             timeout: float = CONNECT_TIMEOUT) -> Connection:
        """Connect and complete the handshake; return a registered connection."""
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
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(sock, host, port)
        try:
            conn.handshake(nick, room, timeout)
        except BaseException:
            conn.close()
            raise
        sock.settimeout(None)
        return conn

    def handshake(self, nick: str, room: str | None, timeout: float) -> Frame:
        self.send({"type": "hello", "version": PROTOCOL_VERSION, "nick": nick, "room": room,
                   "client": f"chatkit {__version__}"})
        while True:
            frame = self.recv(timeout, skip_garbage=True)
            if frame is None:
                raise UnreachableError(f"{self.address} closed the connection during the handshake")
            if frame["type"] == "welcome":
                self.welcome = frame
                return frame
            if frame["type"] == "error":
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
            for item in self._splitter.feed(data):
                if isinstance(item, FrameError):
                    raise ProtocolError(f"{self.address}: {item.message}")
                if not item.strip():
                    continue
                try:
                    self._pending.append(decode(item))
                except FrameError as exc:
                    if skip_garbage and not self.welcome:
                        continue  # a text-mode greeting sent before our hello arrived
                    raise ProtocolError(
                        f"{self.address} does not speak the chatkit protocol ({exc.message})"
                    ) from None
        return self._pending.pop(0)

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


def raise_for_error(frame: Frame) -> None:
    """Turn an `error` frame into the matching ChatkitError."""
    code = str(frame.get("code", "error"))
    message = str(frame.get("message", "error"))
    if code == "unsupported_version":
        raise ProtocolError(f"protocol mismatch: {message}")
    raise RefusedError(message, code)


def send_messages(host: str, port: int, nick: str, room: str, lines: Iterator[str] | list[str],
                  timeout: float = CONNECT_TIMEOUT) -> int:
    """Connect as `nick`, join an existing `room`, send each non-empty line, wait until the
    server has accepted every one (its echo), then quit. Returns the number sent."""
    conn = Connection.open(host, port, nick, room=None, timeout=timeout)
    sent = 0
    try:
        conn.request({"type": "join", "room": room, "create": False, "history": 0}, timeout)
        for line in lines:
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            conn.request({"type": "msg", "room": room, "text": text}, timeout)
            sent += 1
    except TimeoutError as exc:
        raise UnreachableError(str(exc)) from None
    finally:
        conn.quit()
    return sent
