"""The chatkit server: accepts connections, runs sessions, rooms and fan-out.

Threads, by design: one acceptor thread, one reader thread per connection, and one flusher
thread. Delivery never blocks the sender: each message is encoded once and written to each
recipient with a non-blocking send; what a recipient's socket cannot take at once is kept in
that recipient's bounded backlog, which the flusher drains when the socket becomes writable.
A recipient whose backlog overflows is disconnected; nobody else waits for it.

All chat state (nicknames, rooms, membership) is guarded by one lock. Events for other people
(messages, joins, parts, renames, quits) get their id under that lock and are queued, in id
order, to the publisher thread, which writes the storable ones to the message log in one
transaction per batch and only then delivers the batch, one send per recipient. So a message
is on disk before anyone sees it (the sender's echo means "accepted"), every client receives
events in id order, and a burst costs one syscall per recipient rather than one per message.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import queue
import secrets
import select
import selectors
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chatkit import protocol
from chatkit.errors import ChatkitError
from chatkit.net.addresses import format_address, host_of
from chatkit.net.sockets import tune_tcp
from chatkit.protocol import (
    DEFAULT_PORT,
    DEFAULT_ROOM,
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    LineSplitter,
    TelnetFilter,
    clean_text,
    decode,
    encode,
    encode_with_ref,
    name_key,
    normalize_nick,
    normalize_room,
    render_text,
)
from chatkit.store import MessageStore, StoredMessage, StoreError
from chatkit.tls import TLS_RECORD_START, TlsChannel

log = logging.getLogger("chatkit.server")

# Not on Windows; there a send could block, so the server is supported on POSIX systems only.
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


@dataclass
class ServerConfig:
    """Everything `chatkit serve` can be told. Defaults are the documented ones."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    name: str = field(default_factory=socket.gethostname)
    discovery: bool = True
    discovery_port: int = DEFAULT_PORT
    max_clients: int = 4096
    #: bytes a client may fall behind before it is disconnected as a non-reader
    max_backlog: int = 1 << 20
    #: seconds to complete TLS, password and nickname (text mode) or `hello` (JSON mode)
    handshake_timeout: float = 60.0
    max_per_address: int = 32  # connections from one IP address; 0 = no limit
    max_rooms_per_client: int = 20
    #: per-client frames per second (token bucket) and burst; rate 0 = no limit
    rate_limit: float = 5.0
    rate_burst: int = 20
    tls: bool = True
    tls_cert: str | None = None  # default: a self-signed one made in the config directory
    tls_key: str | None = None
    require_tls: bool = False
    password: str | None = None
    sniff_seconds: float = protocol.SNIFF_SECONDS
    #: the message log; None keeps history in memory only (lost at exit)
    db: str | None = None
    fsync: str = "normal"
    log_private: bool = False
    history_on_join: int = 50
    retain_days: float | None = None
    max_messages: int | None = None
    #: seconds between two retention passes of the publisher
    prune_every: float = 60.0


class RateLimiter:
    """A token bucket: frames over the rate are dropped (with a warning now and then), and a
    client that keeps flooding collects strikes until it is disconnected."""

    WARN_EVERY = 2.0

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.strikes = 0.0
        self.last = time.monotonic()
        self.warned_at = -self.WARN_EVERY

    def check(self) -> str:
        """'ok', 'drop', 'warn' (drop and tell the client) or 'disconnect'."""
        now = time.monotonic()
        elapsed = now - self.last
        self.last = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.strikes = max(0.0, self.strikes - elapsed)
        if self.tokens >= 1:
            self.tokens -= 1
            return "ok"
        self.strikes += 1
        if self.strikes > 2 * self.burst:
            return "disconnect"
        if now - self.warned_at >= self.WARN_EVERY:
            self.warned_at = now
            return "warn"
        return "drop"


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, Session] = {}  # by nick key, in joining order
        self.topic: str | None = None
        self.topic_by: str | None = None


class Session:
    """One connected client: its socket, identity, rooms and outbound backlog."""

    def __init__(self, server: Server, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.mode = "unknown"  # "json" or "text" once sniffed
        self.nick: str | None = None
        self.rooms: dict[str, Room] = {}  # by room key; the last one is the current room
        self.backlog = bytearray()
        self.out_lock = threading.Lock()
        self.dead = False
        self.quit_reason: str | None = None
        self.quitting = False  # left with /quit: its reason (maybe none) is shown as given
        self.tls: TlsChannel | None = None
        self.authenticated = False  # gave the server password (or none is needed)
        #: proves, on a later connection, that it comes from this client (see on_hello)
        self.resume_token = secrets.token_urlsafe(18)
        self.retired = False  # nickname and rooms given up (see Server._retire)
        self.limiter: RateLimiter | None = None
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ output

    @property
    def current_room(self) -> Room | None:
        return next(reversed(self.rooms.values()), None) if self.rooms else None

    def deliver(self, data: bytes) -> None:
        """Queue bytes for this client without ever blocking the caller."""
        with self.out_lock:
            if self.tls is not None and not self.dead:
                data = self.tls.encrypt(data)  # under out_lock: ciphertext keeps its order
            self._send_locked(data)

    def _send_locked(self, data: bytes) -> None:
        """Send now what the socket takes, keep the rest (caller holds out_lock)."""
        if self.dead:
            return
        if self.backlog:
            if len(self.backlog) + len(data) > self.server.config.max_backlog:
                self._overflow()
            else:
                self.backlog += data
            return
        try:
            sent = self.sock.send(data, _DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._kill("connection lost")
            return
        if sent < len(data):
            if len(data) - sent > self.server.config.max_backlog:
                self._overflow()
                return
            self.backlog += memoryview(data)[sent:]
            self.server.flusher.watch(self)

    def flush(self) -> bool:
        """Send what the socket takes now; True when the backlog is empty (flusher thread)."""
        with self.out_lock:
            if self.dead:
                return True
            try:
                sent = self.sock.send(self.backlog, _DONTWAIT)
            except BlockingIOError:
                return False
            except OSError:
                self._kill("connection lost")
                return True
            del self.backlog[:sent]
            return not self.backlog

    def _overflow(self) -> None:
        log.warning("disconnecting %s: output backlog over %d bytes (not reading)",
                    self.label, self.server.config.max_backlog)
        self._kill("too slow: stopped reading messages")

    def _kill(self, reason: str | None) -> None:
        """Mark dead and wake the reader thread, which does the cleanup (caller holds out_lock)."""
        self.dead = True
        self.quit_reason = self.quit_reason or reason
        self.backlog.clear()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_frame(self, frame: Frame) -> None:
        """One frame to this client alone, encoded for its mode."""
        self.deliver(self.server.encode_for(self, frame))

    def error(self, code: str, message: str, ref: object = None) -> None:
        frame = self.server.frame("error", code=code, message=message)
        if ref is not None:
            frame["ref"] = ref
        self.send_frame(frame)

    @property
    def label(self) -> str:
        return f"{self.nick or '?'}@{self.peer}"

    # ------------------------------------------------------------------ input

    def run(self) -> None:
        """The reader thread: sniff the mode, register, then handle lines until the end."""
        try:
            self._run()
        except Exception:  # a bug must cost one connection, never the server
            log.exception("internal error in session %s", self.label)
        finally:
            self.server.disconnect(self)

    def _run(self) -> None:
        config = self.server.config
        deadline = time.monotonic() + config.handshake_timeout
        first = self._read_within(config.sniff_seconds)
        if first is None:
            return
        if first[:1] == bytes([TLS_RECORD_START]):
            first = self._start_tls(first, deadline)
            if first is None:
                return
        elif config.require_tls:
            self.deliver(b"!!! this server accepts TLS connections only: use `chatkit join`\r\n")
            self.quit_reason = "plain connection to a TLS-only server"
            return
        self.mode = "json" if first.startswith(b"{") else "text"
        if self.mode == "text":
            greeting = [f"chatkit server {self.server.name} - welcome!",
                        "Type /quit to leave at any time."]
            self._send_text(greeting, prompt=self.server.prompt_for(self))
        telnet = TelnetFilter() if self.mode == "text" else None
        splitter = LineSplitter()
        data = first
        while not self.dead:
            if telnet is not None:
                data = telnet.feed(data)
            for item in splitter.feed(data):
                if isinstance(item, FrameError):
                    self.error(item.code, item.message)
                    continue
                if not item.strip():
                    continue
                if not self.server.admit_frame(self):
                    continue
                self.server.handle_line(self, item)
                if self.dead:
                    return
            if self.dead:
                return
            if self.nick is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait_readable(remaining):
                    self.quit_reason = "handshake timeout"
                    self.error("timeout", "no nickname/hello in time; disconnecting")
                    return
            received = self._receive()
            if received is None:
                self.quit_reason = self.quit_reason or "connection closed"
                return
            data = received

    def _read_within(self, seconds: float) -> bytes | None:
        """The first bytes the client sends within `seconds` (b'' if it waits), None if gone."""
        if not self._wait_readable(seconds):
            return b""
        try:
            return self.sock.recv(65536) or None
        except OSError:
            return None

    def _start_tls(self, first: bytes, deadline: float) -> bytes | None:
        """Handshake, then the first plaintext (b'' if the client waits), None on failure."""
        context = self.server.tls_context
        if context is None:
            log.info("%s attempted TLS, which this server does not offer (--no-tls)", self.peer)
            return None
        channel = TlsChannel(context, server_side=True)
        try:
            plaintext = channel.handshake(self.sock, min(deadline, time.monotonic() + 10), first)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.info("%s: TLS handshake failed: %s", self.peer, exc)
            return None
        self.tls = channel
        if plaintext:
            return plaintext
        if not self._wait_readable(self.server.config.sniff_seconds):
            return b""
        return self._receive()

    def _receive(self) -> bytes | None:
        """The next plaintext bytes (maybe b'' when only TLS housekeeping arrived), None at
        the end of the connection."""
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        if self.tls is None:
            return data
        try:
            plaintext, reply = self.tls.decrypt(data)
        except ssl.SSLError as exc:
            log.info("%s: TLS error: %s", self.label, exc)
            return None
        if reply:
            with self.out_lock:
                self._send_locked(reply)
        return plaintext

    def _wait_readable(self, seconds: float) -> bool:
        # poll() instead of a socket timeout: a timeout would make the non-blocking sends of
        # other threads wait, and select() cannot watch descriptors above 1023.
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(max(0, int(seconds * 1000))))

    def _send_text(self, lines: Iterable[str], prompt: str = "") -> None:
        self.deliver(("".join(line + "\r\n" for line in lines) + prompt).encode())


class Flusher:
    """One thread that drains the backlogs of clients whose sockets were full."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._new: list[Session] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="chatkit-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, session: Session) -> None:
        with self._lock:
            self._new.append(session)
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # already a wake-up pending

    def stop(self) -> None:
        self._stopping = True
        self.watch_nothing()
        self._thread.join(5)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def watch_nothing(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                session: Session = key.data
                if session.flush():
                    self._selector.unregister(session.sock)
            with self._lock:
                new, self._new = self._new, []
            for session in new:
                self._register(session)

    def _register(self, session: Session) -> None:
        try:
            self._selector.register(session.sock, selectors.EVENT_WRITE, session)
        except KeyError:
            # Registered already: by this session (fine), or by a session that died with
            # output pending and whose closed descriptor number the new socket now reuses.
            stale = self._selector.get_key(session.sock)
            if stale.data is not session:
                self._selector.unregister(session.sock)
                self._register(session)
        except (ValueError, OSError):
            pass  # closed meanwhile


@dataclass
class Pending:
    """An event accepted under the server lock, waiting for the publisher."""

    event: Frame
    #: deliver to the room's members at publish time (so a joiner in between gets it live) ...
    room: Room | None = None
    #: ... or to exactly these sessions
    recipients: list[Session] | None = None
    sender: Session | None = None
    ref: object = None
    exclude: Session | None = None
    row: StoredMessage | None = None


AUTH_DELAY = 1.0  # seconds before answering a wrong password
AUTH_WINDOW = 60.0
AUTH_MAX_FAILURES = 5  # per address within AUTH_WINDOW; then connections are refused

_STOP = object()
MAX_HISTORY = 1000  # stored messages sent for one request; `more` says when there are others
_MAX_BATCH = 512


class Publisher:
    """The one thread that stores accepted events, then delivers them, batch by batch."""

    def __init__(self, server: Server, store: MessageStore) -> None:
        self.server = server
        self.store = store
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: the highest id delivered; history reads stop here so a joiner gets nothing twice
        self.published_id = 0
        self._thread = threading.Thread(target=self._run, name="chatkit-publisher", daemon=True)
        self._next_prune = time.monotonic() + server.config.prune_every

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Publish everything already accepted, then end the thread."""
        self.queue.put(_STOP)
        self._thread.join(30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self.queue.get(timeout=self.server.config.prune_every)
            except queue.Empty:
                first = None
            batch: list[Pending] = []
            item = first
            while item is not None:
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= _MAX_BATCH:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                try:
                    self._publish(batch)
                except Exception:  # never lose the thread: later messages still need it
                    log.exception("internal error publishing %d events", len(batch))
            self._maybe_prune()

    def _publish(self, batch: list[Pending]) -> None:
        stored = True
        rows = [p.row for p in batch if p.row is not None]
        try:
            self.store.append(rows)
        except StoreError as exc:
            log.error("%s", exc)
            stored = False
        server = self.server
        out: dict[Session, list[bytes]] = {}
        with server.lock:
            # Consecutive events for the same room go to the same members (membership cannot
            # change while we hold the lock), so they are fanned out together as one run.
            run: list[Pending] = []
            run_room: Room | None = None

            def flush_run() -> None:
                if run and run_room is not None:
                    server._fanout_run(run, run_room.members.values(), out)
                run.clear()

            for pending in batch:
                if pending.row is not None and not stored:
                    if pending.sender is not None:
                        pending.sender.error("store_failed", "message not accepted: the server "
                                             "could not store it; try again later", pending.ref)
                    continue
                sender = pending.sender
                # The room of that name now (None if it is gone): emptied and made again since
                # the event was accepted, it is another object, and its members are the ones
                # who will find the event in the room's history, so they get it live.
                room: Room | None = None
                sender_in_room = True  # an event for a room: is its sender a member now?
                if pending.room is not None:
                    key = name_key(pending.room.name)
                    room = server.rooms.get(key)
                    sender_in_room = sender is None or (
                        room is not None and sender.rooms.get(key) is room)
                if room is not None and pending.exclude is None and sender_in_room:
                    if run_room is not room:
                        flush_run()
                    run_room = room
                    run.append(pending)
                    continue
                flush_run()
                targets: Iterable[Session]
                if pending.room is not None:
                    targets = room.members.values() if room is not None else []
                    if pending.exclude is not None:
                        targets = [m for m in targets if m is not pending.exclude]
                    if not sender_in_room:
                        targets = [*targets, sender]  # left meanwhile: still gets its echo
                else:
                    targets = pending.recipients or []
                server._fanout(pending.event, targets, sender, pending.ref, out)
            flush_run()
            self.published_id = batch[-1].event["id"]
        # Outside the lock, so readers queueing new messages do not wait for the sends. Order
        # holds: only this thread delivers events, batch after batch; and a joiner that takes
        # the lock from here on is not among these recipients but gets the batch as history.
        for session, chunks in out.items():
            session.deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _maybe_prune(self) -> None:
        config = self.server.config
        if (config.retain_days is None and config.max_messages is None) \
                or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + config.prune_every
        try:
            deleted = self.store.prune(retain_days=config.retain_days,
                                       max_messages=config.max_messages)
        except StoreError as exc:
            log.error("retention: %s", exc)
            return
        if deleted:
            log.info("retention: deleted %d old messages", deleted)
            self._next_prune = time.monotonic() + 1.0  # more to do: continue soon


class Server:
    """A running chat server. `start()` binds and returns; `stop()` shuts down gracefully."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.name = protocol.sanitize_text(self.config.name)[:64] or "chatkit"
        self.instance = secrets.token_hex(8)
        self.lock = threading.RLock()
        self.sessions: set[Session] = set()
        self.nicks: dict[str, Session] = {}
        self.rooms: dict[str, Room] = {DEFAULT_ROOM: Room(DEFAULT_ROOM)}
        self.flusher = Flusher()
        self.store = MessageStore(self.config.db or ":memory:", fsync=self.config.fsync,
                                  log_private=self.config.log_private)
        self.publisher = Publisher(self, self.store)
        last_id = self.store.last_id()
        self.publisher.published_id = last_id  # everything stored before a restart is history
        self._ids = itertools.count(last_id + 1)
        self._listeners: list[socket.socket] = []
        self._acceptor: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self.started = threading.Event()
        self.discovery: object | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.fingerprint: str | None = None
        self.per_address: dict[str, int] = {}
        self.auth_failures: dict[str, list[float]] = {}
        self.handlers: dict[str, Callable[[Session, Frame], None]] = {
            "msg": self.on_msg, "me": self.on_me, "privmsg": self.on_privmsg,
            "join": self.on_join, "part": self.on_part, "nick": self.on_nick,
            "who": self.on_who, "rooms": self.on_rooms, "topic": self.on_topic,
            "help": self.on_help, "command": self.on_command, "ping": self.on_ping,
            "quit": self.on_quit, "history": self.on_history,
        }

    # ------------------------------------------------------------------ life cycle

    @property
    def port(self) -> int:
        return self._listeners[0].getsockname()[1]

    @property
    def bound_host(self) -> str:
        return self._listeners[0].getsockname()[0]

    def start(self) -> None:
        try:
            if self.config.tls:
                self._setup_tls()
            self._listeners = [_listen(self.config.host, self.config.port)]
        except ChatkitError:
            self.store.close()
            raise
        self.flusher.start()
        self.publisher.start()
        self._acceptor = threading.Thread(target=self._accept_loop, name="chatkit-acceptor",
                                          daemon=True)
        self._acceptor.start()
        if self.config.discovery:
            self._start_discovery()
        self.started.set()
        log.info("server %s listening on %s", self.name, ", ".join(self.addresses()))

    def _setup_tls(self) -> None:
        from chatkit import tls
        from chatkit.net.interfaces import interface_addresses
        from chatkit.paths import server_cert_file, server_key_file

        config = self.config
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ChatkitError("give both --tls-cert and --tls-key, or neither")
        if config.tls_cert is None:
            cert, key = server_cert_file(), server_key_file()
            try:
                tls.ensure_certificate(cert, key, socket.gethostname(),
                                       interface_addresses(include_ipv6=True))
            except OSError as exc:
                raise ChatkitError(f"cannot create the TLS certificate in {cert.parent}: "
                                   f"{exc.strerror or exc}") from None
        else:
            cert, key = Path(config.tls_cert), Path(str(config.tls_key))
        self.tls_context, self.fingerprint = tls.server_context(cert, key)

    def prompt_for(self, session: Session) -> str:
        """What a text-mode user is asked next while registering."""
        if self.config.password is not None and not session.authenticated:
            return "Password: "
        return "Nickname: "

    def admit_frame(self, session: Session) -> bool:
        """Apply the per-client rate limit to one incoming line; False drops it."""
        if session.dead:
            return False  # cut off: the rest of its last chunk is dropped, not logged line by line
        if self.config.rate_limit <= 0:
            return True
        if session.limiter is None:
            session.limiter = RateLimiter(self.config.rate_limit, self.config.rate_burst)
        verdict = session.limiter.check()
        if verdict == "ok":
            return True
        if verdict == "warn":
            session.error("rate_limited", f"you are sending too fast (limit "
                          f"{self.config.rate_limit:g} per second): lines are being dropped")
        elif verdict == "disconnect":
            log.warning("disconnecting %s: flooding", session.label)
            session.error("flooding", "disconnected for flooding")
            with session.out_lock:
                session._kill("disconnected for flooding")
        return False

    def check_password(self, session: Session, given: object) -> None:
        """Accept the session or raise FrameError(bad_password) after a delay."""
        expected = self.config.password
        if expected is None:
            session.authenticated = True
            return
        ip = host_of(session.peer)
        now = time.monotonic()
        with self.lock:
            if len(self.auth_failures) > 1024:  # bounded memory: forget stale addresses
                self.auth_failures = {a: ts for a, ts in self.auth_failures.items()
                                      if ts and now - ts[-1] < AUTH_WINDOW}
            recent = [t for t in self.auth_failures.get(ip, []) if now - t < AUTH_WINDOW]
            # A throttled address gets no comparison at all (connections opened before the
            # limit was reached cannot keep guessing), and an attempt counts as a failure
            # until it has succeeded (parallel guesses cannot outrun the limit).
            throttled = len(recent) >= AUTH_MAX_FAILURES
            if not throttled:
                recent.append(now)
            self.auth_failures[ip] = recent
        ok = not throttled and isinstance(given, str) and hmac.compare_digest(
            hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())
        if ok:
            with self.lock:
                current = self.auth_failures.get(ip, [])
                if now in current:
                    current.remove(now)
                if not current:
                    self.auth_failures.pop(ip, None)
            session.authenticated = True
            return
        log.warning("%s: wrong password (%d in the last minute)", session.peer, len(recent))
        time.sleep(AUTH_DELAY)  # only this client's thread waits: slows guessing, nobody else
        if len(recent) >= AUTH_MAX_FAILURES:
            session.error("bad_password", "wrong password; too many attempts, disconnecting")
            with session.out_lock:
                session._kill("too many wrong passwords")
            raise FrameError("bad_password", "wrong password")
        raise FrameError("bad_password", "wrong password")

    def _throttled(self, ip: str) -> bool:
        now = time.monotonic()
        failures = [t for t in self.auth_failures.get(ip, []) if now - t < AUTH_WINDOW]
        return len(failures) >= AUTH_MAX_FAILURES

    def _start_discovery(self) -> None:
        from chatkit import discovery

        responder = discovery.DiscoveryResponder(
            bind_host=self.config.host, chat_port=self.port,
            discovery_port=self.config.discovery_port, info=self.info)
        responder.start()
        self.discovery = responder

    def info(self) -> dict[str, object]:
        """What discovery announces about this server."""
        with self.lock:
            users = sum(1 for s in self.sessions if s.nick and not s.retired)
            rooms = len(self.rooms)
        return {"name": self.name, "instance": self.instance, "port": self.port,
                "addresses": self.addresses(with_port=False), "version": PROTOCOL_VERSION,
                "tls": self.tls_context is not None, "fingerprint": self.fingerprint,
                "users": users, "rooms": rooms}

    def addresses(self, with_port: bool = True) -> list[str]:
        """Every address a client can use to reach this server."""
        from chatkit.net.interfaces import reachable_addresses

        hosts = reachable_addresses(self.bound_host)
        if not with_port:
            return hosts
        return [format_address(host, self.port) for host in hosts]

    def stop(self, reason: str = "server shutting down") -> None:
        """Tell every client, close every socket, join every thread."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self.discovery is not None:
            self.discovery.stop()  # type: ignore[attr-defined]
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        if self._acceptor is not None:
            self._acceptor.join(5)
        for listener in self._listeners:
            listener.close()
        self.publisher.stop()  # everything accepted is stored and delivered before the notice
        with self.lock:
            sessions = list(self.sessions)
            for session in sessions:
                session.quit_reason = reason
                session.send_frame(self.frame("notice", text=reason))
                session.send_frame(self.frame("bye", reason=reason))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and any(s.backlog for s in sessions):
            time.sleep(0.01)  # bounded: give the flusher a moment to deliver the notice
        for session in sessions:
            with session.out_lock:
                session._kill(reason)
        for session in sessions:
            if session.thread is not None:
                session.thread.join(5)
        self.flusher.stop()
        self.store.close()
        self._wake_r.close()
        self._wake_w.close()
        log.info("server %s stopped", self.name)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, address = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError as exc:
                        log.warning("accept failed: %s", exc)
                        continue
                    self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(True)
        tune_tcp(sock)
        peer = format_address(address[0], address[1])
        session = Session(self, sock, peer)
        ip = address[0]
        with self.lock:
            refusal = None
            if len(self.sessions) >= self.config.max_clients:
                refusal = f"server full ({len(self.sessions)} clients)"
            elif self.config.max_per_address and \
                    self.per_address.get(ip, 0) >= self.config.max_per_address:
                refusal = f"too many connections from {ip}"
            elif self._throttled(ip):
                refusal = f"too many wrong passwords from {ip}; wait a minute"
            if refusal is not None:
                log.warning("refusing %s: %s", peer, refusal)
                try:
                    sock.send(f"!!! {refusal}\r\n".encode(), _DONTWAIT)
                except OSError:
                    pass
                sock.close()
                return
            self.per_address[ip] = self.per_address.get(ip, 0) + 1
            self.sessions.add(session)
        session.thread = threading.Thread(target=session.run, name=f"chatkit-{peer}",
                                          daemon=True)
        session.thread.start()

    def disconnect(self, session: Session) -> None:
        """Remove a session everywhere, tell the people who shared a room, close the socket."""
        with self.lock:
            if session not in self.sessions:
                return
            self.sessions.discard(session)
            ip = host_of(session.peer)
            self.per_address[ip] -= 1
            if not self.per_address[ip]:
                del self.per_address[ip]
            reason = session.quit_reason if session.quitting \
                else session.quit_reason or "connection closed"
            self._retire(session, reason)
        with session.out_lock:
            session._kill(reason)
        session.sock.close()

    @staticmethod
    def _check_current(session: Session) -> None:
        """Refuse to register anything for a session a newer connection replaced (a line it
        sent just before may still be in its reader thread); the caller holds the lock."""
        if session.retired:
            raise FrameError("replaced", "this connection was replaced by a newer one")

    def _retire(self, session: Session, reason: str | None) -> None:
        """Free a session's nickname and rooms and tell those who shared a room; once only.

        Called under the lock, by `disconnect` or when a client's new connection replaces its
        old one (the old reader thread then only closes the socket)."""
        if session.nick is None or session.retired:
            return
        session.retired = True
        if self.nicks.get(name_key(session.nick)) is session:
            del self.nicks[name_key(session.nick)]
        audience = self._co_members(session)
        for room in list(session.rooms.values()):
            self._leave(session, room)
        if not self._stopping.is_set():
            self._queue(self.frame("quit", nick=session.nick, reason=reason),
                        recipients=audience)
        log.info("%s disconnected (%s)", session.label, reason or "quit")

    # ------------------------------------------------------------------ frames

    def frame(self, kind: str, **fields: object) -> Frame:
        """A server frame with the next id and the current time."""
        return {"type": kind, **fields, "id": next(self._ids), "ts": round(time.time(), 3)}

    def encode_for(self, session: Session, frame: Frame) -> bytes:
        if session.mode == "json":
            return encode(frame)
        return "".join(line + "\r\n" for line in render_text(frame, session.nick)).encode()

    def _fanout(self, frame: Frame, recipients: Iterable[Session], sender: Session | None,
                ref: object, out: dict[Session, list[bytes]]) -> None:
        """Add one frame to each recipient's output, encoding it once per mode.

        A JSON sender gets its own copy carrying `ref`; a text sender of a message gets none
        (its terminal already shows what it typed). Called by the publisher under the lock.
        """
        as_json: bytes | None = None
        as_text: bytes | None = None
        for member in recipients:
            if member is sender:
                if member.mode == "json":
                    as_json = as_json or encode(frame)
                    data = as_json if ref is None else encode_with_ref(as_json, ref)
                elif frame["type"] not in ("message", "private"):
                    data = self.encode_for(member, frame)
                else:
                    continue
            elif member.mode == "json":
                data = as_json = as_json or encode(frame)
            else:
                data = as_text = as_text or self.encode_for(member, frame)
            chunks = out.get(member)
            if chunks is None:
                out[member] = [data]
            else:
                chunks.append(data)

    def _fanout_run(self, run: list[Pending], members: Iterable[Session],
                    out: dict[Session, list[bytes]]) -> None:
        """Consecutive events for one room, each member getting all of them as one chunk.

        Under load a batch holds many messages to the same room; joining their encodings once
        and handing every member the same bytes makes the per-member work one append per
        batch instead of one per message. Senders get their own copy of the run, where their
        messages carry `ref` (JSON) or are left out (text mode, as in `_fanout`). Called by the
        publisher under the lock, with the members of the room every event of the run is for.
        """
        if len(run) == 1:
            self._fanout(run[0].event, members, run[0].sender, run[0].ref, out)
            return
        as_json = [encode(p.event) for p in run]
        shared_json = b"".join(as_json)
        shared_text: bytes | None = None
        senders = {p.sender for p in run if p.sender is not None}
        for member in members:
            chunks = out.get(member)
            if chunks is None:
                chunks = out[member] = []
            if member in senders:
                # Parts, not one joined copy: the bytes stay shared with everyone else's and
                # are joined at delivery, outside the lock (many senders x a long run of big
                # messages would otherwise build that many full copies under the lock).
                chunks.extend(self._own_copy(member, run, as_json))
            elif member.mode == "json":
                chunks.append(shared_json)
            else:
                if shared_text is None:
                    shared_text = b"".join(self.encode_for(member, p.event) for p in run)
                chunks.append(shared_text)

    def _own_copy(self, member: Session, run: list[Pending], as_json: list[bytes]
                  ) -> list[bytes]:
        """The run as `member`, who sent some of it, receives it (see `_fanout`)."""
        parts: list[bytes] = []
        for pending, encoded in zip(run, as_json, strict=True):
            if pending.sender is not member:
                parts.append(encoded if member.mode == "json"
                             else self.encode_for(member, pending.event))
            elif member.mode == "json":
                parts.append(encoded if pending.ref is None
                             else encode_with_ref(encoded, pending.ref))
            elif pending.event["type"] not in ("message", "private"):
                parts.append(self.encode_for(member, pending.event))
        return parts

    def _queue(self, event: Frame, *, room: Room | None = None,
               recipients: list[Session] | None = None, sender: Session | None = None,
               ref: object = None, exclude: Session | None = None,
               row: StoredMessage | None = None) -> None:
        """Hand an event to the publisher; the caller holds the lock, so ids stay in order."""
        self.publisher.queue.put(Pending(event, room, recipients, sender, ref, exclude, row))

    def handle_line(self, session: Session, line: bytes) -> None:
        """One complete input line from a client, in its mode."""
        ref = None
        if session.mode == "text" and session.nick is None and line.lstrip().startswith(b"{"):
            # docs/protocol.md: a program whose hello arrives after the text greeting is still
            # switched to JSON mode (nicknames never start with "{")
            session.mode = "json"
        try:
            if session.mode == "json":
                frame = decode(line)
                ref = frame.get("ref")
            else:
                frame = self._text_to_frame(session, line)
                if frame is None:
                    return
            self.dispatch(session, frame)
        except FrameError as exc:
            log.debug("%s: %s", session.label, exc.message)
            session.error(exc.code, exc.message, ref)
            if session.mode == "text" and session.nick is None and not session.dead:
                session.deliver(self.prompt_for(session).encode())

    def _text_to_frame(self, session: Session, line: bytes) -> Frame | None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("bad_utf8", "that line was not UTF-8 and was ignored; "
                                         "set your terminal to UTF-8") from None
        text = text.strip()
        if not text:
            return None
        if session.nick is None:
            if text.lower() in ("/quit", "/exit"):
                return {"type": "quit"}
            if not session.authenticated and self.config.password is not None:
                self.check_password(session, text)
                session.deliver(self.prompt_for(session).encode())
                return None
            return {"type": "hello", "version": PROTOCOL_VERSION, "nick": text}
        current = session.current_room
        if text.startswith("/") and not text.startswith("//"):
            return protocol.parse_command(text, current.name if current else None)
        if text.startswith("//"):
            text = text[1:]
        if current is None:
            raise FrameError("not_in_room", "you are in no room; /join ROOM first")
        return {"type": "msg", "room": current.name, "text": text}

    def dispatch(self, session: Session, frame: Frame) -> None:
        kind = frame["type"]
        if kind == "hello":
            self.on_hello(session, frame)
            return
        if session.nick is None:
            if kind == "quit":
                self.on_quit(session, frame)
                return
            raise FrameError("not_registered", "send 'hello' first")
        handler = self.handlers.get(kind)
        if handler is None:
            raise FrameError("unknown_type", f"unknown frame type {kind!r}")
        handler(session, frame)

    def _reply(self, session: Session, frame: Frame, request: Frame) -> None:
        if request.get("ref") is not None:
            frame["ref"] = request["ref"]
        session.send_frame(frame)

    # ------------------------------------------------------------------ handlers

    def on_hello(self, session: Session, frame: Frame) -> None:
        if session.nick is not None:
            raise FrameError("bad_frame", "already registered")
        version = protocol.field(frame, "version", int)
        if version != PROTOCOL_VERSION:
            session.error("unsupported_version",
                          f"server speaks protocol {PROTOCOL_VERSION}, client {version}",
                          frame.get("ref"))
            session.quit_reason = "unsupported protocol version"
            with session.out_lock:
                session._kill(session.quit_reason)
            return
        if not session.authenticated:
            self.check_password(session, frame.get("password"))
        nick = normalize_nick(protocol.field(frame, "nick", str))
        room_name = frame.get("room", DEFAULT_ROOM) if "room" in frame else DEFAULT_ROOM
        if session.mode == "text":
            room_name = DEFAULT_ROOM
        room_name = protocol.field({"room": room_name}, "room", str, required=False)
        if room_name is not None:
            room_name = normalize_room(room_name)
        resume = frame.get("resume")
        with self.lock:
            holder = self.nicks.get(name_key(nick))
            if holder is not None:
                if not (isinstance(resume, str) and hmac.compare_digest(
                        resume.encode(), holder.resume_token.encode())):
                    raise FrameError("nick_taken", f"nickname {nick} is taken; choose another")
                # The same client again, while its old connection has not timed out yet
                # (Wi-Fi gone, laptop asleep): that connection is a ghost; end it now.
                log.info("%s reconnected from %s; ending the old connection",
                         holder.label, session.peer)
                self._retire(holder, "reconnected")
                with holder.out_lock:
                    holder._kill("reconnected")
            session.nick = nick
            self.nicks[name_key(nick)] = session
            log.info("%s connected (%s mode)", session.label, session.mode)
            welcome = self.frame(
                "welcome", version=PROTOCOL_VERSION, server=self.name, nick=nick,
                commands=protocol.command_list(),
                limits={"max_frame": protocol.MAX_FRAME, "max_text": protocol.MAX_TEXT,
                        "max_nick": protocol.MAX_NICK, "max_room": protocol.MAX_ROOM})
            if session.mode == "json":
                welcome["resume"] = session.resume_token
            self._reply(session, welcome, frame)
            if room_name is not None:
                self._join(session, room_name, create=True, request=None)

    def _room(self, name: str) -> Room:
        name = normalize_room(name)  # the checked form: the raw one may carry controls
        room = self.rooms.get(name_key(name))
        if room is None:
            raise FrameError("no_such_room", f"no such room: {name}")
        return room

    def _member_room(self, session: Session, name: str) -> Room:
        room = session.rooms.get(name_key(name))
        if room is not None and room.name == name:
            return room  # exactly a checked name: no need to normalise it again (hot path)
        name = normalize_room(name)  # the checked form: the raw one may carry controls
        room = session.rooms.get(name_key(name))
        if room is None:
            raise FrameError("not_in_room", f"you are not in {name}; /join {name} first")
        return room

    def on_msg(self, session: Session, frame: Frame, action: bool = False) -> None:
        text = clean_text(protocol.field(frame, "text", str), "message")
        with self.lock:
            room = self._member_room(session, protocol.field(frame, "room", str))
            event = self.frame("message", room=room.name, nick=session.nick, text=text,
                               action=action)
            row = StoredMessage(event["id"], room.name, "action" if action else "message",
                                session.nick or "", None, text, event["ts"])
            self._queue(event, room=room, sender=session, ref=frame.get("ref"), row=row)

    def on_me(self, session: Session, frame: Frame) -> None:
        self.on_msg(session, frame, action=True)

    def on_privmsg(self, session: Session, frame: Frame) -> None:
        to = protocol.field(frame, "to", str)
        text = clean_text(protocol.field(frame, "text", str), "message")
        with self.lock:
            self._check_current(session)  # sent just as a newer connection replaced this one
            target = self.nicks.get(name_key(unicodedata.normalize("NFKC", to.strip())))
            if target is None:
                raise FrameError("no_such_nick", f"no such nick: {protocol.sanitize_text(to)}")
            event = self.frame("private", **{"from": session.nick, "to": target.nick,
                                             "text": text})
            recipients = [target] if target is session else [target, session]
            row = StoredMessage(event["id"], None, "private", session.nick or "", target.nick,
                                text, event["ts"]) if self.store.log_private else None
            self._queue(event, recipients=recipients, sender=session, ref=frame.get("ref"),
                        row=row)

    def on_join(self, session: Session, frame: Frame) -> None:
        name = normalize_room(protocol.field(frame, "room", str))
        create = protocol.field(frame, "create", bool, required=False, default=True)
        history = protocol.field(frame, "history", int, required=False,
                                 default=self.config.history_on_join)
        after = protocol.field(frame, "after", int, required=False)
        with self.lock:
            self._join(session, name, create=create, request=frame, history=history,
                       after=after)

    def _join(self, session: Session, name: str, *, create: bool, request: Frame | None,
              history: int | None = None, after: int | None = None) -> None:
        self._check_current(session)
        key = name_key(name)
        room = self.rooms.get(key)
        if room is None:
            if not create:
                raise FrameError("no_such_room", f"no such room: {name}")
        if key not in session.rooms and len(session.rooms) >= self.config.max_rooms_per_client:
            raise FrameError("too_many_rooms", f"you are in {len(session.rooms)} rooms, the "
                             "most allowed; /part one first")
        if room is None:
            room = self.rooms[key] = Room(name)
        if key in session.rooms:
            session.rooms.pop(key)  # re-inserted below: it becomes the current room
        else:
            room.members[name_key(session.nick or "")] = session
            self._queue(self.frame("join", room=room.name, nick=session.nick), room=room,
                        exclude=session)
            log.info("%s joined %s", session.nick, room.name)
        session.rooms[key] = room
        joined = self.frame("joined", room=room.name, topic=room.topic,
                            members=[m.nick for m in room.members.values()])
        if request is not None:
            self._reply(session, joined, request)
        else:
            session.send_frame(joined)
        if history is None:
            history = self.config.history_on_join
        # Always ends with history_end (maybe count 0), so a client knows the join is complete.
        self._send_history(session, room, history if after is None else MAX_HISTORY, after,
                           request.get("ref") if request else None)

    def _send_history(self, session: Session, room: Room, limit: int, after: int | None,
                      ref: object) -> None:
        """Stored messages of `room` up to the last published one (caller holds the lock):
        anything newer reaches the session live, so nothing arrives twice or not at all."""
        rows = self.store.room_history(room.name, limit=min(limit, MAX_HISTORY), after=after,
                                       up_to=self.publisher.published_id) if limit > 0 else []
        data = b"".join(self.encode_for(session, row.as_frame()) for row in rows)
        end = self.frame("history_end", room=room.name, count=len(rows),
                         more=after is not None and len(rows) >= MAX_HISTORY)
        if ref is not None:
            end["ref"] = ref
        session.deliver(data + self.encode_for(session, end))

    def on_history(self, session: Session, frame: Frame) -> None:
        limit = protocol.field(frame, "limit", int, required=False, default=50)
        after = protocol.field(frame, "after", int, required=False)
        if limit < 1:
            raise FrameError("bad_frame", "'limit' must be at least 1")
        with self.lock:
            room = self._member_room(session, protocol.field(frame, "room", str))
            self._send_history(session, room, limit, after, frame.get("ref"))

    def on_part(self, session: Session, frame: Frame) -> None:
        reason = self._optional_text(frame, "reason")
        with self.lock:
            room = self._member_room(session, protocol.field(frame, "room", str))
            event = self.frame("part", room=room.name, nick=session.nick, reason=reason)
            self._queue(event, recipients=list(room.members.values()), sender=session,
                        ref=frame.get("ref"))
            self._leave(session, room)
            log.info("%s left %s", session.nick, room.name)

    def _leave(self, session: Session, room: Room) -> None:
        session.rooms.pop(name_key(room.name), None)
        if room.members.get(name_key(session.nick or "")) is session:
            del room.members[name_key(session.nick or "")]
        if not room.members and name_key(room.name) != DEFAULT_ROOM:
            self.rooms.pop(name_key(room.name), None)

    def _co_members(self, session: Session) -> list[Session]:
        """Everyone who shares at least one room with `session` (itself excluded), once."""
        seen: dict[int, Session] = {}
        for room in session.rooms.values():
            for member in room.members.values():
                if member is not session:
                    seen[id(member)] = member
        return list(seen.values())

    def on_nick(self, session: Session, frame: Frame) -> None:
        new = normalize_nick(protocol.field(frame, "nick", str))
        with self.lock:
            self._check_current(session)
            old = session.nick or ""
            holder = self.nicks.get(name_key(new))
            if holder is not None and holder is not session:
                raise FrameError("nick_taken", f"nickname {new} is taken; choose another")
            if new == old:
                raise FrameError("bad_nick", f"you are already {new}")
            del self.nicks[name_key(old)]
            self.nicks[name_key(new)] = session
            for room in session.rooms.values():
                room.members = {
                    (name_key(new) if member is session else key): member
                    for key, member in room.members.items()
                }
            session.nick = new
            event = self.frame("nick", old=old, new=new)
            self._queue(event, recipients=[session, *self._co_members(session)],
                        sender=session, ref=frame.get("ref"))
            log.info("%s is now known as %s", old, new)

    def on_who(self, session: Session, frame: Frame) -> None:
        room_name = protocol.field(frame, "room", str, required=False)
        with self.lock:
            if room_name:
                room = self._room(room_name)
                members = list(room.members.values())
            else:
                room = None
                members = sorted((s for s in self.sessions if s.nick and not s.retired),
                                 key=lambda s: name_key(s.nick or ""))
            users = [{"nick": m.nick, "rooms": [r.name for r in m.rooms.values()]}
                     for m in members]
            self._reply(session, self.frame("who", room=room.name if room else None,
                                            users=users), frame)

    def on_rooms(self, session: Session, frame: Frame) -> None:
        with self.lock:
            rooms = [{"name": r.name, "members": len(r.members), "topic": r.topic}
                     for r in sorted(self.rooms.values(), key=lambda r: name_key(r.name))]
            self._reply(session, self.frame("rooms", rooms=rooms), frame)

    def on_topic(self, session: Session, frame: Frame) -> None:
        text = frame.get("text")
        with self.lock:
            room = self._member_room(session, protocol.field(frame, "room", str))
            if text is None:
                self._reply(session, self.frame("topic", room=room.name, text=room.topic,
                                                nick=None), frame)
                return
            if not isinstance(text, str):
                raise FrameError("bad_frame", "field 'text' must be str")
            room.topic = clean_text(text, "topic", allow_empty=True) or None
            room.topic_by = session.nick
            event = self.frame("topic", room=room.name, text=room.topic, nick=session.nick)
            row = StoredMessage(event["id"], room.name, "topic", session.nick or "", None,
                                room.topic, event["ts"])
            self._queue(event, room=room, sender=session, ref=frame.get("ref"), row=row)

    def on_help(self, session: Session, frame: Frame) -> None:
        self._reply(session, self.frame("help", commands=protocol.command_list()), frame)

    def on_command(self, session: Session, frame: Frame) -> None:
        line = protocol.field(frame, "line", str).strip()
        if not line.startswith("/"):
            raise FrameError("bad_frame", "'command' line must start with /")
        current = session.current_room
        parsed = protocol.parse_command(line, current.name if current else None)
        if frame.get("ref") is not None:
            parsed["ref"] = frame["ref"]
        self.dispatch(session, parsed)

    @staticmethod
    def _optional_text(frame: Frame, name: str) -> str | None:
        value = protocol.field(frame, name, str, required=False)
        return clean_text(value, name, allow_empty=True) or None if value is not None else None

    def on_ping(self, session: Session, frame: Frame) -> None:
        self._reply(session, self.frame("pong"), frame)

    def on_quit(self, session: Session, frame: Frame) -> None:
        session.quitting = True
        session.quit_reason = self._optional_text(frame, "reason")
        self._reply(session, self.frame("bye", reason="goodbye"), frame)
        # Close our side only after the bye is out, so the client sees it.
        deadline = time.monotonic() + 2.0
        while session.backlog and time.monotonic() < deadline:
            time.sleep(0.01)
        with session.out_lock:
            session.dead = True
        try:
            session.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; `::` also takes IPv4 where the system allows."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ChatkitError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    dualstack = family == socket.AF_INET6 and address[0] == "::" \
        and socket.has_dualstack_ipv6()
    try:
        return socket.create_server(address, family=family, backlog=1024,
                                    dualstack_ipv6=dualstack)
    except OSError as exc:
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ChatkitError(f"port {port} is already in use on {host} "
                               "(another chatkit serve?); choose another with --port") from None
        if exc.errno in (99, 49):  # EADDRNOTAVAIL
            raise ChatkitError(f"cannot listen on {where}: no interface has address "
                               f"{host}") from None
        if exc.errno == 13:
            raise ChatkitError(f"cannot listen on {where}: permission denied "
                               "(ports below 1024 need privileges)") from None
        raise ChatkitError(f"cannot listen on {where}: {exc.strerror or exc}") from None


__all__ = ["Server", "ServerConfig", "Session", "Room"]
