"""A JSON-mode connection that heals itself: the transport under `chatkit join`.

Owns: the current `Connection` and its reader thread; the link's state (connecting, connected,
reconnecting, closed, failed) and when the next attempt is due; reconnecting with exponential
backoff and jitter under the same nick (with the last welcome's resume token), then rejoining
the rooms the model lists and asking only for what was missed; frames submitted while
disconnected are queued (bounded: `chatkit.client.outbox`) and sent after reconnecting, frames
sent but unanswered are sent again after a loss, and once the link has ended (quit, or
reconnecting given up) every frame is refused at once with `SessionEnded`.

It knows nothing of rooms or members: `LinkHooks` connect it to the session, which owns the
model (`chatkit.client.model`) and the UI's callback. Frames sent with a `q:` ref are the
link's own book-keeping (rejoin, room and user lists); their answers update the model but
are not handed on as events.
"""

from __future__ import annotations

import functools
import itertools
import random
import secrets
import threading
import time

from chatkit.client.cluster import Failover, Target
from chatkit.client.connection import Connection, pinned_note
from chatkit.client.link_options import LinkHooks, LinkOptions, backoff_delay
from chatkit.client.outbox import Outbox, Refused, SessionEnded
from chatkit.client.pacing import Pacer
from chatkit.errors import ChatkitError, ProtocolError, RefusedError
from chatkit.net.addresses import format_address
from chatkit.protocol import Frame, name_key
from chatkit.tls import TrustError

__all__ = ["QUIET", "Link", "LinkHooks", "LinkOptions", "Refused", "SessionEnded",
           "backoff_delay"]

QUIET = "q:"  # prefix of refs for frames whose answers the user did not ask to see
#: frames that carry a `tag`: lines the server must store once, however often they are sent
TAGGED = frozenset({"msg", "me", "privmsg"})


class Link:
    """A reconnecting connection; thread-safe for one UI thread plus its reader thread.

    `lock` is shared with the owner: hold it to read the owner's model consistently.

    Slightly over 250 lines, on purpose: connect, lose, back off, resume and quit share one
    lock and one state, and their ordering (e.g. a quit is never followed by a revived link)
    is easiest to check in one place. The queue already lives apart (`Outbox`).
    """

    def __init__(self, options: LinkOptions, hooks: LinkHooks,
                 rng: random.Random | None = None) -> None:
        self.options = options
        self.hooks = hooks
        self._rng = rng or random.Random()
        # offline | connected | reconnecting | connecting | closed (quit) | failed (gave up)
        self.state = "offline"
        self.retry_at: float | None = None  # time.monotonic() of the next attempt
        self.failure: str | None = None  # why reconnecting was given up (state "failed")
        self.tls: str | None = None  # "TLS" / "TLS (unverified)" / "plain", for the toolbar
        self.lock = threading.RLock()
        self._settled = threading.Condition(self.lock)
        self._resume_token: str | None = None  # from the last welcome
        self._conn: Connection | None = None
        self._outbox = Outbox(options.queue_limit, self._settled)
        self._refs = itertools.count(1)
        # Names this client across its connections: a line sent again after a reconnect
        # carries the same tag, and the server answers it instead of storing it twice.
        self.client_id = secrets.token_hex(16)
        self._tags = itertools.count(1)
        self._pacer: Pacer | None = None  # the server's announced rate, from the last welcome
        self.failover = Failover()  # the cluster's live nodes, from the last welcome
        self._stopping = threading.Event()
        self._retry_now = threading.Event()  # cuts a backoff wait short (/reconnect, quit)
        self._bye_reason: str | None = None  # the server's `bye` on the current connection
        self._thread: threading.Thread | None = None
        self._sender: threading.Thread | None = None

    @property
    def address(self) -> str:
        return format_address(self.options.host, self.options.port)

    # ------------------------------------------------------------------ life cycle

    def connect(self, room: str | None) -> Connection:
        """First connection and handshake (joining `room`), then the reader thread. Raises
        ChatkitError. Returns the connection, whose `welcome` the owner may show."""
        self.state = "connecting"
        try:
            conn = self._open(self.hooks.nick(), room)
        except BaseException:
            self.state = "offline"
            raise
        with self.lock:
            self._conn = conn
            self._welcomed(conn)
            self.state = "connected"
        self._send_quiet(conn, {"type": "rooms"})
        self._send_quiet(conn, {"type": "who"})
        return conn

    def start(self, conn: Connection) -> None:
        """Start reading (and healing) in the background, and sending what waits."""
        self._thread = threading.Thread(target=self._run, args=(conn,), name="chatkit-reader",
                                        daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send_waiting, name="chatkit-sender",
                                        daemon=True)
        self._sender.start()

    def quit(self, reason: str | None = None, timeout: float = 2.0) -> None:
        """Leave politely (quit, wait briefly for `bye`), stop reconnecting, end the thread."""
        self._stopping.set()
        self._retry_now.set()
        with self.lock:
            conn = self._conn
            self.state = "closed"
            self.retry_at = None
        if conn is not None and not conn.closed:
            try:
                conn.send({"type": "quit", "reason": reason, "ref": QUIET + "quit"})
            except ChatkitError:
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if conn is not None:
            conn.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._settled:
            self._settled.notify_all()
        sender = self._sender
        if sender is not None and sender is not threading.current_thread():
            sender.join(timeout)

    def reconnect_now(self) -> str:
        """The user asks to try again (/reconnect), e.g. after fixing trust: a link that gave
        up starts over; one waiting for its next attempt tries at once. Returns what happens:
        "reconnecting", "retrying" or "connected" (nothing to do). SessionEnded after a quit."""
        with self.lock:
            if self.state == "closed":
                raise SessionEnded("not connected: the session has ended")
            if self.state == "failed":
                self.state = "reconnecting"
                self.failure = None
                self._retry_now.set()  # the first attempt without a backoff wait
                self._thread = threading.Thread(target=self._revive, name="chatkit-reader",
                                                daemon=True)
                self._thread.start()
                return "reconnecting"
            if self.state in ("reconnecting", "connecting"):
                self._retry_now.set()
                return "retrying"
            return "connected"

    def _revive(self) -> None:
        conn = self._reconnect()
        if conn is not None:
            self._run(conn)
        else:
            with self._settled:
                self._settled.notify_all()

    # ------------------------------------------------------------------ sending

    def submit(self, frame: Frame, *, wait: bool = False) -> str:
        """Send `frame` with a fresh ref, or keep it until it may go.

        Returns "sent", "paced" (connected, but the server's rate says wait: it goes within
        seconds, in order) or "queued" (not connected: it goes after reconnecting). Raises
        Refused when the queue is full, unless `wait`: then it waits for room (a pipe faster
        than the server's rate is slowed down, not refused). Raises SessionEnded when we have
        left or given up (queueing then would only delay the bad news).
        """
        with self.lock:
            while wait and self._outbox.full() and self.state not in ("closed", "failed"):
                self._settled.wait(0.5)
            if self.state == "closed":
                raise SessionEnded("not connected: the session has ended")
            if self.state == "failed":
                raise SessionEnded(f"not sent: {self.failure}")
            frame = {**frame, "ref": f"u{next(self._refs)}"}
            if frame["type"] in TAGGED:
                frame["tag"] = next(self._tags)
            connected = self.state == "connected" and self._conn is not None
            if connected and not self._outbox.queue and \
                    (self._pacer is None or self._pacer.delay() == 0):
                assert self._conn is not None
                try:
                    self._conn.send(frame)
                except ChatkitError:
                    pass  # the reader thread notices the loss; keep the line for later
                else:
                    self._outbox.sent(frame)
                    return "sent"
            self._outbox.hold(frame)
            self._settled.notify_all()  # the sender thread
            return "paced" if connected else "queued"

    def queued(self) -> int:
        with self.lock:
            return len(self._outbox.queue)

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every submitted frame was answered and nothing is queued; False after
        `timeout` seconds without progress (no answer, nothing sent), and at once when the
        link has ended with frames unanswered or has given up (its queue was dropped then:
        nothing will ever settle). A long paced queue keeps the wait alive line by line."""
        deadline = time.monotonic() + timeout
        with self._settled:
            progress = (self._outbox.answers, len(self._outbox.queue))
            while True:
                if self.state == "failed":
                    return False
                if self._outbox.empty():
                    return True
                now = (self._outbox.answers, len(self._outbox.queue))
                if now != progress:
                    progress, deadline = now, time.monotonic() + timeout
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.state == "closed":
                    return False
                self._settled.wait(min(remaining, 0.5))

    def _send_waiting(self) -> None:
        """The sender thread: sends queued frames, in order, as fast as the server's announced
        rate allows, whenever connected."""
        while not self._stopping.is_set():
            with self._settled:
                conn = self._conn
                if self.state != "connected" or conn is None or not self._outbox.queue:
                    self._settled.wait(0.5)
                    continue
                delay = self._pacer.delay() if self._pacer is not None else 0.0
                if delay == 0:
                    frame = self._outbox.queue.popleft()
                    try:
                        conn.send(frame)
                    except ChatkitError:
                        self._outbox.queue.appendleft(frame)  # the reader notices the loss
                        self._settled.wait(0.5)
                        continue
                    self._outbox.sent(frame)
                    self._settled.notify_all()  # progress, and room in the queue
                    continue
            self._stopping.wait(delay)

    # ------------------------------------------------------------------ reader thread

    def _run(self, conn: Connection) -> None:
        current: Connection | None = conn
        while current is not None and not self._stopping.is_set():
            reason = "the server closed the connection"
            try:
                for frame in current.frames():
                    self._handle(frame)
            except ChatkitError as exc:
                reason = str(exc)
            current.close()
            if self._stopping.is_set():
                break
            self._lost(reason)
            current = self._reconnect()
        with self._settled:
            self._settled.notify_all()

    def _handle(self, frame: Frame) -> None:
        ref = frame.get("ref")
        quiet = isinstance(ref, str) and ref.startswith(QUIET)
        with self.lock:
            if ref is not None and not quiet:
                sent = self._outbox.answered(str(ref))
                if frame["type"] == "error" and sent is not None and \
                        isinstance(sent.get("text"), str):
                    # refused by its content: the UI names the line, which is never re-sent
                    frame = {**frame, "line": sent["text"]}
            self.hooks.frame(frame, quiet)
        if frame["type"] == "bye" and not self._stopping.is_set():
            # The server is ending the connection: said once, by `_lost`, with this reason.
            self._bye_reason = frame.get("reason") or "disconnected"
            return
        if quiet:
            if frame["type"] == "error" and str(ref).startswith(QUIET + "rejoin"):
                self.status(f"could not rejoin: {frame['message']}", level="error")
            return
        self.hooks.emit(frame)

    def _lost(self, reason: str) -> None:
        with self.lock:
            self._conn = None
            self.state = "reconnecting"
            unanswered = self._outbox.requeue_unanswered()
        bye, self._bye_reason = self._bye_reason, None
        text = (f"{self.address} ended the connection: {bye}" if bye
                else f"connection to {self.address} lost: {reason}")
        if unanswered:
            text += f" ({unanswered} unconfirmed line(s) will be sent again)"
        self.status(text, level="error")

    def _open(self, nick: str, room: str | None, target: Target | None = None) -> Connection:
        """Connect to our server, or to `target` (another node of its cluster)."""
        options = self.options
        host, port, expected = (options.host, options.port, options.expected_fingerprint) \
            if target is None else (target.host, target.port, target.fingerprint)
        conn = Connection.open(
            host, port, nick, room, timeout=options.connect_timeout,
            tls=options.tls, insecure=options.insecure, password=options.password,
            expected_fingerprint=expected,
            on_pin=lambda c: self.status(pinned_note(c) if expected is None or target is None
                                         else f"pinned the certificate of cluster node "
                                         f"{c.address}, {expected}, as its cluster named it",
                                         level="security"),
            resume=self._resume_token if nick == self.hooks.nick() else None,
            client_id=self.client_id, history=options.history,
            identify=options.account[1] if options.account is not None
            and name_key(options.account[0]) == name_key(nick) else None)
        conn.on_skipped = lambda note: self.status(note, level="error")
        if not options.tls:
            self.tls = "plain"
        else:
            self.tls = "TLS (unverified)" if options.insecure else "TLS"
        return conn

    def _reconnect(self) -> Connection | None:
        options = self.options
        for attempt in range(1, options.max_attempts + 1):
            delay = backoff_delay(attempt, options.backoff_initial, options.backoff_max,
                                  self._rng)
            with self.lock:
                self.state = "reconnecting"
                self.retry_at = time.monotonic() + delay
            self.status(f"reconnecting in {delay:.1f} s (attempt {attempt})", transient=True)
            self._retry_now.wait(delay)
            self._retry_now.clear()
            if self._stopping.is_set():
                return None
            with self.lock:
                self.state = "connecting"
                self.retry_at = None
                nick = self.hooks.nick()
            try:
                conn = self._open(nick, None)
            except TrustError as exc:  # never retry into a server that changed identity
                self.status(f"giving up: {exc} (then type /reconnect)", level="error")
                break
            except RefusedError as exc:
                # Usually our old connection has not timed out on the server yet.
                self.status(f"server refused {nick!r} ({exc}); trying again", level="error")
                continue
            except ProtocolError as exc:
                self.status(f"giving up: {exc}", level="error")
                break
            except ChatkitError:  # the node is gone: another of its cluster, if any answers
                moved = self.failover.move(
                    self.options, functools.partial(self._open, nick, None),
                    lambda text: self.status(text, level="error"), self._stopping.is_set)
                if moved is None:
                    continue
                gone, cluster = self.address, self.failover.name
                conn, self.options = moved  # our address is the new node's from now on
                note = f"node {gone} is gone; moved to {self.address} (cluster {cluster})"
                return conn if self._resume(conn, note) else None
            if not self._resume(conn):
                return None
            return conn
        with self.lock:
            if self._stopping.is_set():
                return None  # the user quit meanwhile: the link is closed, not failed
            self.state = "failed"
            self.retry_at = None
            self.failure = f"gave up reconnecting to {self.address}"
            dropped = self._outbox.drop()
        self.status(self.failure
                    + (f"; {dropped} queued line(s) were not sent" if dropped else ""),
                    level="error")
        return None

    def _resume(self, conn: Connection, moved: str | None = None) -> bool:
        """After reconnecting: rejoin the rooms, catch up, then send what was queued.

        False (and the connection closed) when the user quit meanwhile: checked under the lock
        that `quit()` takes, so a quit can never be followed by a revived link.
        """
        with self.lock:
            if self._stopping.is_set():
                conn.close()
                return False
            self._conn = conn
            self._welcomed(conn)
            rejoins = self.hooks.rejoin_frames()
            for frame in rejoins:
                self._send_quiet(conn, frame, tag="rejoin")
            self._send_quiet(conn, {"type": "rooms"})
            self._send_quiet(conn, {"type": "who"})
            waiting = len(self._outbox.queue)
            self.state = "connected"
            self._settled.notify_all()  # the sender thread sends what waited, paced
            server = str(conn.welcome["server"])
        text = f"reconnected to {server or self.address} as {conn.nick}"
        if moved is not None:  # another node of the cluster took us in
            text = moved
        if rejoins:
            text += "; rejoined " + ", ".join(str(frame["room"]) for frame in rejoins)
        if waiting:
            text += f"; sending {waiting} queued line(s)"
        self.status(text)
        return True

    def _welcomed(self, conn: Connection) -> None:
        limits = conn.rate_limits()
        self._pacer = Pacer(*limits) if limits is not None else None
        token = conn.welcome.get("resume")
        # Lets the next connection take the nickname back from this one if it lingers on the
        # server after a network drop, instead of being refused until it times out.
        self._resume_token = token if isinstance(token, str) else None
        self.failover.welcomed(conn.welcome)
        self.hooks.welcomed(conn)

    def _send_quiet(self, conn: Connection, frame: Frame, tag: str = "") -> None:
        ref = f"{QUIET}{tag or frame['type']}:{next(self._refs)}"
        try:
            conn.send({**frame, "ref": ref})
        except ChatkitError:
            pass  # the reader thread will notice the loss

    def status(self, text: str, level: str = "info", transient: bool = False) -> None:
        """A local event: the client telling the user about the connection."""
        self.hooks.emit({"type": "status", "level": level, "text": text, "state": self.state,
                         "transient": transient, "ts": time.time()})
