"""A chat session that survives connection loss: the client's model of the conversation.

Owns: the JSON-mode connection (`chatkit.connection.Connection`) and its reader thread; what the
client knows about the server (name, advertised commands), its nick, its rooms and their
members, the current room, known rooms and users, and the last message id seen in each room (so
rejoining asks for what was missed); reconnecting with exponential backoff and jitter under the
same nick and rejoining the rooms; lines submitted while disconnected are queued (bounded) and
sent after reconnecting, or refused visibly. Once the session has ended (the user quit, or
reconnecting was given up) every line is refused at once with `SessionEnded`.

Every server frame and every local status change is handed to `on_event` from the reader
thread; the UI decides how to show it. Frames sent with a `q:` ref are the session's own
book-keeping (rejoin, room and user lists) and are not handed on.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chatkit.connection import Connection, pinned_note
from chatkit.errors import ChatkitError, ProtocolError, RefusedError
from chatkit.net.addresses import format_address
from chatkit.protocol import (
    COMMANDS,
    DEFAULT_ROOM,
    CommandSpec,
    Frame,
    FrameError,
    name_key,
    parse_command,
)
from chatkit.tls import TrustError

log = logging.getLogger("chatkit.client")

QUIET = "q:"  # prefix of refs for frames whose answers the user did not ask to see


class Refused(ChatkitError):
    """A line that cannot be sent now (queue full, no room, bad command); the message says why."""


class SessionEnded(Refused):
    """A line refused because the session is over for good (quit, or reconnecting given up)."""


@dataclass
class Room:
    name: str
    topic: str | None = None
    members: dict[str, str] = field(default_factory=dict)  # name_key -> nick as spelled

    def add(self, nick: str) -> None:
        self.members[name_key(nick)] = nick

    def remove(self, nick: str) -> None:
        self.members.pop(name_key(nick), None)


EventCallback = Callable[[Frame], None]


class ChatSession:
    """A reconnecting JSON-mode session; thread-safe for one UI thread plus its reader thread.

    `connect()` makes the first connection and raises ChatkitError when it fails (the caller
    reports it and exits); after that, losses are healed in the background until `quit()`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        room: str | None = DEFAULT_ROOM,
        *,
        on_event: EventCallback | None = None,
        connect_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_attempts: int = 2000,
        queue_limit: int = 100,
        rng: random.Random | None = None,
        tls: bool = True,
        insecure: bool = False,
        password: str | None = None,
        expected_fingerprint: str | None = None,
    ) -> None:
        self.host = host
        self.use_tls = tls
        self.insecure = insecure
        self.password = password
        self.expected_fingerprint = expected_fingerprint
        self.port = port
        self.nick = nick
        self.initial_room = room
        self.on_event: EventCallback = on_event or (lambda frame: None)
        self.connect_timeout = connect_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.queue_limit = queue_limit
        self._rng = rng or random.Random()

        # offline | connected | reconnecting | connecting | closed (quit) | failed (gave up)
        self.state = "offline"
        self.retry_at: float | None = None  # time.monotonic() of the next attempt
        self.failure: str | None = None  # why reconnecting was given up (state "failed")
        self.server_name = ""
        self._resume_token: str | None = None  # from the last welcome (see _welcomed)
        self.commands: list[CommandSpec] = list(COMMANDS)
        self.rooms: dict[str, Room] = {}  # name_key -> Room, the rooms we are in
        self.current_room: str | None = None
        self.known_rooms: dict[str, str] = {}  # name_key -> name, from /rooms and joins
        self.users: dict[str, str] = {}  # name_key -> nick, everyone we have heard of
        self.last_message_ids: dict[str, int] = {}  # name_key(room) -> id of its last message
        self.tls: str | None = None  # "TLS" / "TLS (unverified)" / "plain", for the toolbar

        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        self._conn: Connection | None = None
        self._queue: deque[Frame] = deque()
        self._pending: dict[str, Frame] = {}  # ref -> frame sent but not yet answered
        self._refs = itertools.count(1)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def connect(self) -> None:
        """First connection and handshake, then the reader thread. Raises ChatkitError."""
        self.state = "connecting"
        try:
            conn = self._open(self.nick, self.initial_room)
        except BaseException:
            self.state = "offline"
            raise
        with self._lock:
            self._conn = conn
            self._welcomed(conn)
            self.state = "connected"
            # The server joins the hello's room right after `welcome`; lines typed before its
            # `joined` frame arrives belong there too.
            self.current_room = self.initial_room
        self._send_quiet(conn, {"type": "rooms"})
        self._send_quiet(conn, {"type": "who"})
        # The resume token is a credential for this connection: nothing to show or log.
        self._emit({k: v for k, v in conn.welcome.items() if k != "resume"})
        self._thread = threading.Thread(target=self._run, args=(conn,), name="chatkit-reader",
                                        daemon=True)
        self._thread.start()

    def quit(self, reason: str | None = None, timeout: float = 2.0) -> None:
        """Leave politely (quit, wait briefly for `bye`), stop reconnecting, end the thread."""
        self._stopping.set()
        with self._lock:
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

    # ------------------------------------------------------------------ sending

    def send_text(self, text: str) -> str:
        """Send a line of text to the current room; returns "sent" or "queued"."""
        room = self.current_room
        if room is None:
            raise Refused("you are in no room; /join ROOM first")
        return self.submit({"type": "msg", "room": room, "text": text})

    def send_command(self, line: str) -> str:
        """Send a `/command` line the server understands; unknown ones are forwarded as-is."""
        try:
            frame = parse_command(line, self.current_room)
        except FrameError as exc:
            if exc.code != "unknown_command":
                raise Refused(exc.message) from None
            # The server may advertise commands this client does not know yet.
            frame = {"type": "command", "line": line}
        return self.submit(frame)

    def submit(self, frame: Frame) -> str:
        """Send `frame` with a fresh ref, or queue it while disconnected.

        Returns "sent" or "queued"; raises Refused when the queue is full, SessionEnded when
        we have left or given up (queueing then would only delay the bad news).
        """
        with self._lock:
            if self.state == "closed":
                raise SessionEnded("not connected: the session has ended")
            if self.state == "failed":
                raise SessionEnded(f"not sent: {self.failure}")
            frame = {**frame, "ref": f"u{next(self._refs)}"}
            if self.state == "connected" and self._conn is not None:
                try:
                    self._conn.send(frame)
                except ChatkitError:
                    pass  # the reader thread notices the loss; keep the line for later
                else:
                    self._pending[frame["ref"]] = frame
                    return "sent"
            if len(self._queue) >= self.queue_limit:
                raise Refused(f"not sent: {len(self._queue)} lines are already waiting "
                              "for the connection to come back")
            self._queue.append(frame)
            return "queued"

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every submitted frame was answered and nothing is queued; False at the
        timeout, and at once when the session has ended with lines unanswered or has given up
        (its queue was dropped then: nothing will ever settle)."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while True:
                if self.state == "failed":
                    return False
                if not (self._pending or self._queue):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.state == "closed":
                    return False
                self._settled.wait(min(remaining, 0.5))

    # ------------------------------------------------------------------ what we know

    def members(self, room: str | None = None) -> list[str]:
        room = room if room is not None else self.current_room
        with self._lock:
            state = self.rooms.get(name_key(room)) if room else None
            return sorted(state.members.values(), key=name_key) if state else []

    def room_names(self) -> list[str]:
        """Rooms worth completing after /join: every room we know of."""
        with self._lock:
            names = dict(self.known_rooms)
            names.update({key: room.name for key, room in self.rooms.items()})
        return sorted(names.values(), key=name_key)

    def joined_rooms(self) -> list[str]:
        with self._lock:
            return [room.name for room in self.rooms.values()]

    def nicks(self) -> list[str]:
        """Everyone we know of except ourselves, for completion."""
        with self._lock:
            names = dict(self.users)
            for room in self.rooms.values():
                names.update(room.members)
            names.pop(name_key(self.nick), None)
        return sorted(names.values(), key=name_key)

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

    def _lost(self, reason: str) -> None:
        with self._lock:
            self._conn = None
            self.state = "reconnecting"
            # Lines sent but never answered may not have reached anyone: send them again
            # rather than lose them silently.
            unanswered = [frame for frame in self._pending.values()]
            self._pending.clear()
            self._queue.extendleft(reversed(unanswered))
        text = f"connection to {self.address} lost: {reason}"
        if unanswered:
            text += f" ({len(unanswered)} unconfirmed line(s) will be sent again)"
        self._status(text, level="error")

    def _open(self, nick: str, room: str | None) -> Connection:
        conn = Connection.open(
            self.host, self.port, nick, room, timeout=self.connect_timeout, tls=self.use_tls,
            insecure=self.insecure, password=self.password,
            expected_fingerprint=self.expected_fingerprint,
            on_pin=lambda c: self._status(pinned_note(c), level="security"),
            resume=self._resume_token if nick == self.nick else None)
        if not self.use_tls:
            self.tls = "plain"
        else:
            self.tls = "TLS (unverified)" if self.insecure else "TLS"
        return conn

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(attempt - 1, 30))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # "equal jitter"

    def _reconnect(self) -> Connection | None:
        for attempt in range(1, self.max_attempts + 1):
            delay = self._backoff(attempt)
            with self._lock:
                self.state = "reconnecting"
                self.retry_at = time.monotonic() + delay
            self._status(f"reconnecting in {delay:.1f} s (attempt {attempt})", quiet_ui=True)
            if self._stopping.wait(delay):
                return None
            with self._lock:
                self.state = "connecting"
                self.retry_at = None
                nick = self.nick
            try:
                conn = self._open(nick, None)
            except TrustError as exc:  # never retry into a server that changed identity
                self._status(f"giving up: {exc}", level="error")
                break
            except RefusedError as exc:
                # Usually our old connection has not timed out on the server yet.
                self._status(f"server refused {nick!r} ({exc}); trying again", level="error")
                continue
            except ProtocolError as exc:
                self._status(f"giving up: {exc}", level="error")
                break
            except ChatkitError:
                continue
            if not self._resume(conn):
                return None
            return conn
        with self._lock:
            if self._stopping.is_set():
                return None  # the user quit meanwhile: the session is closed, not failed
            self.state = "failed"
            self.retry_at = None
            self.failure = f"gave up reconnecting to {self.address}"
            dropped = len(self._queue)
            self._queue.clear()
            self._settled.notify_all()
        self._status(self.failure
                     + (f"; {dropped} queued line(s) were not sent" if dropped else ""),
                     level="error")
        return None

    def _resume(self, conn: Connection) -> bool:
        """After reconnecting: rejoin the rooms, catch up, then send what was queued.

        False (and the connection closed) when the user quit meanwhile: checked under the lock
        that `quit()` takes, so a quit can never be followed by a revived session.
        """
        with self._lock:
            if self._stopping.is_set():
                conn.close()
                return False
            self._conn = conn
            self._welcomed(conn)
            rooms = [room.name for room in self.rooms.values()]
            for room in rooms:
                self._send_quiet(conn, self._rejoin_frame(room), tag="rejoin")
            self._send_quiet(conn, {"type": "rooms"})
            self._send_quiet(conn, {"type": "who"})
            flushed = 0
            while self._queue:
                frame = self._queue.popleft()
                try:
                    conn.send(frame)
                except ChatkitError:
                    self._queue.appendleft(frame)
                    break
                self._pending[frame["ref"]] = frame
                flushed += 1
            self.state = "connected"
        text = f"reconnected to {self.server_name or self.address} as {conn.nick}"
        if rooms:
            text += "; rejoined " + ", ".join(rooms)
        if flushed:
            text += f"; sent {flushed} queued line(s)"
        self._status(text)
        return True

    def _rejoin_frame(self, room: str) -> Frame:
        """Rejoin `room` asking only for what was missed since the last message seen there.

        `after` makes a server with history replay the gap (as `message` frames marked
        `history`); without a known id, `history: 0` avoids replaying what is on screen.
        Servers without history ignore both fields.
        """
        last = self.last_message_ids.get(name_key(room))
        if last is None:
            return {"type": "join", "room": room, "history": 0}
        return {"type": "join", "room": room, "after": last}

    def _welcomed(self, conn: Connection) -> None:
        welcome = conn.welcome
        self.nick = conn.nick or self.nick
        token = welcome.get("resume")
        # Lets the next connection take the nickname back from this one if it lingers on the
        # server after a network drop, instead of being refused until it times out.
        self._resume_token = token if isinstance(token, str) else None
        self.server_name = str(welcome.get("server") or "")
        commands = welcome.get("commands")
        if isinstance(commands, list):
            specs = [CommandSpec(str(c.get("name", "")), str(c.get("usage", "")),
                                 str(c.get("help", "")))
                     for c in commands if isinstance(c, dict) and c.get("name")]
            if specs:
                self.commands = specs

    def _send_quiet(self, conn: Connection, frame: Frame, tag: str = "") -> None:
        ref = f"{QUIET}{tag or frame['type']}:{next(self._refs)}"
        try:
            conn.send({**frame, "ref": ref})
        except ChatkitError:
            pass  # the reader thread will notice the loss

    # ------------------------------------------------------------------ frames

    def _handle(self, frame: Frame) -> None:
        ref = frame.get("ref")
        quiet = isinstance(ref, str) and ref.startswith(QUIET)
        with self._lock:
            if ref is not None and not quiet:
                if self._pending.pop(str(ref), None) is not None:
                    self._settled.notify_all()
            try:
                self._update(frame, quiet)
            except (KeyError, TypeError, AttributeError) as exc:
                log.debug("malformed %s frame: %s", frame.get("type"), exc)
        if quiet:
            if frame.get("type") == "error" and str(ref).startswith(QUIET + "rejoin"):
                self._status(f"could not rejoin: {frame.get('message')}", level="error")
            return
        self._emit(frame)

    def _update(self, frame: Frame, quiet: bool) -> None:
        kind = frame.get("type")
        me = name_key(self.nick)
        if kind == "message":
            self.last_message_ids[name_key(frame["room"])] = frame["id"]
            self.users[name_key(frame["nick"])] = frame["nick"]
        elif kind == "joined":
            room = Room(frame["room"], frame.get("topic"))
            for nick in frame.get("members") or []:
                room.add(nick)
                self.users[name_key(nick)] = nick
            self.rooms[name_key(room.name)] = room
            self.known_rooms[name_key(room.name)] = room.name
            if not quiet or self.current_room is None:
                self.current_room = room.name
        elif kind == "join":
            room = self.rooms.get(name_key(frame["room"]))
            if room is not None:
                room.add(frame["nick"])
            self.users[name_key(frame["nick"])] = frame["nick"]
        elif kind == "part":
            key = name_key(frame["room"])
            if name_key(frame["nick"]) == me:
                self.rooms.pop(key, None)
                if self.current_room is not None and name_key(self.current_room) == key:
                    remaining = [room.name for room in self.rooms.values()]
                    self.current_room = remaining[-1] if remaining else None
            elif key in self.rooms:
                self.rooms[key].remove(frame["nick"])
        elif kind == "quit":
            for room in self.rooms.values():
                room.remove(frame["nick"])
            self.users.pop(name_key(frame["nick"]), None)
        elif kind == "nick":
            old, new = frame["old"], frame["new"]
            for room in self.rooms.values():
                if name_key(old) in room.members:
                    room.remove(old)
                    room.add(new)
            self.users.pop(name_key(old), None)
            self.users[name_key(new)] = new
            if name_key(old) == me:
                self.nick = new
        elif kind == "topic":
            room = self.rooms.get(name_key(frame["room"]))
            if room is not None and frame.get("nick") is not None:
                room.topic = frame.get("text")
        elif kind == "who":
            users = frame.get("users") or []
            if frame.get("room") is None:
                self.users = {name_key(u["nick"]): u["nick"] for u in users}
            else:
                room = self.rooms.get(name_key(frame["room"]))
                if room is not None:
                    room.members = {name_key(u["nick"]): u["nick"] for u in users}
        elif kind == "rooms":
            self.known_rooms = {name_key(r["name"]): r["name"] for r in frame.get("rooms") or []}

    def _emit(self, frame: Frame) -> None:
        try:
            self.on_event(frame)
        except Exception:  # a UI bug must not kill the connection
            log.exception("event handler failed for %s", frame.get("type"))

    def _status(self, text: str, level: str = "info", quiet_ui: bool = False) -> None:
        """A local event: the client telling the user about the connection."""
        self._emit({"type": "status", "level": level, "text": text, "state": self.state,
                    "transient": quiet_ui, "ts": time.time()})
