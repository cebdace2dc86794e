"""A chat session that survives connection loss: what the interactive and piped clients use.

Owns: turning typed lines into frames (`send_text`, `send_command`) and the one `on_event`
callback the UI sets. The work is done by two parts it wires together: the reconnecting
`chatkit.client.link.Link` (connection, backoff, resume, rejoin, queued lines) and the pure
`chatkit.client.model.ChatModel` (rooms, members, known nicks and rooms, last ids), updated
from the link's reader thread under the link's lock.

Every server frame and every local status change is handed to `on_event` from the reader
thread; the UI decides how to show it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from typing import cast

from chatkit.client.connection import Connection
from chatkit.client.link import QUIET, Link, LinkHooks, LinkOptions, Refused, SessionEnded
from chatkit.client.model import ChatModel, Room
from chatkit.protocol import DEFAULT_ROOM, CommandSpec, Frame, FrameError, name_key, parse_command
from chatkit.protocol.events import MsgRequest, WelcomeFrame

__all__ = ["QUIET", "ChatSession", "EventCallback", "Refused", "Room", "SessionEnded"]

log = logging.getLogger("chatkit.client")

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
        queue_limit: int = 1000,
        rng: random.Random | None = None,
        tls: bool = True,
        insecure: bool = False,
        password: str | None = None,
        expected_fingerprint: str | None = None,
        history: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.initial_room = room
        self.on_event: EventCallback = on_event or (lambda frame: None)
        self.model = ChatModel(nick)
        options = LinkOptions(
            host, port, tls=tls, insecure=insecure, password=password,
            expected_fingerprint=expected_fingerprint, connect_timeout=connect_timeout,
            backoff_initial=backoff_initial, backoff_max=backoff_max,
            max_attempts=max_attempts, queue_limit=queue_limit, history=history)
        self.history = history  # stored messages a join asks for (None: the server's default)
        hooks = LinkHooks(nick=lambda: self.model.nick, welcomed=self._welcomed,
                          frame=self._apply, rejoin_frames=self._rejoin_frames,
                          emit=self._emit)
        self.link = Link(options, hooks, rng)
        self._login: tuple[str, str] | None = None  # sent with send_login, not yet answered

    # ------------------------------------------------------------------ life cycle

    @property
    def address(self) -> str:
        return self.link.address

    def connect(self) -> None:
        """First connection and handshake, then the reader thread. Raises ChatkitError."""
        conn = self.link.connect(self.initial_room)
        with self.link.lock:
            # The server joins the hello's room right after `welcome`; lines typed before its
            # `joined` frame arrives belong there too.
            self.model.current_room = self.initial_room
        # The resume token is a credential for this connection: nothing to show or log.
        self._emit({k: v for k, v in conn.welcome.items() if k != "resume"})
        self.link.start(conn)

    def use_password(self, password: str | None) -> None:
        """The password for the next connection (after the server asked for one)."""
        self.link.options = dataclasses.replace(self.link.options, password=password)

    def use_account(self, account: tuple[str, str] | None) -> None:
        """The account (name, password) to log in with from the next connection on."""
        self.link.options = dataclasses.replace(self.link.options, account=account)

    @property
    def account(self) -> tuple[str, str] | None:
        """The account (name, password) every (re)connection logs in with, if any."""
        return self.link.options.account

    def send_login(self, frame: Frame, *, wait: bool = False) -> str:
        """Send `register`, `identify`, `passwd` or `unregister` with its `password`; once
        the server says yes (`account`), every reconnect logs in with it (client/accounts)."""
        with self.link.lock:
            self._login = None if frame["type"] == "unregister" else \
                (str(frame.get("account") or self.model.nick), str(frame["password"]))
        return self.submit(frame, wait=wait)

    def _apply(self, frame: Frame, quiet: bool) -> None:
        """A server frame into the model (with the link's lock held); an `account` or `help`
        frame also brings the login to keep and the commands for this client's roles."""
        self.model.apply(frame, quiet)
        kind = frame["type"]
        if kind in ("account", "help") and frame.get("commands"):
            self.model.commands = [CommandSpec(c["name"], c["usage"], c["help"],
                                               str(c.get("role", "")))
                                   for c in frame["commands"] if c.get("name")]
        if kind != "account":
            return
        if frame.get("event") == "unregistered":
            self.use_account(None)
        elif self._login is not None and frame.get("event") in (
                "registered", "identified", "password_changed"):
            self.use_account((str(frame.get("account") or self._login[0]), self._login[1]))
            self._login = None

    def reconnect_now(self) -> str:
        """Try again now (/reconnect): "reconnecting", "retrying" or "connected"."""
        return self.link.reconnect_now()

    def quit(self, reason: str | None = None, timeout: float = 2.0) -> None:
        """Leave politely (quit, wait briefly for `bye`), stop reconnecting, end the thread."""
        self.link.quit(reason, timeout)

    # ------------------------------------------------------------------ sending

    def send_text(self, text: str, *, wait: bool = False) -> str:
        """Send a line of text to the current room; returns "sent", "paced" or "queued"."""
        room = self.current_room
        if room is None:
            raise Refused("you are in no room; /join ROOM first")
        msg: MsgRequest = {"type": "msg", "room": room, "text": text}
        return self.submit(dict(msg), wait=wait)

    def send_command(self, line: str, *, wait: bool = False) -> str:
        """Send a `/command` line the server understands; unknown ones are forwarded as-is."""
        try:
            frame = parse_command(line, self.current_room)
        except FrameError as exc:
            if exc.code != "unknown_command":
                raise Refused(exc.message) from None
            # The server may advertise commands this client does not know yet.
            frame = {"type": "command", "line": line}
        if frame.get("type") == "join" and "history" not in frame:
            with self.link.lock:
                here = name_key(str(frame.get("room", ""))) in self.model.rooms
            # Re-joining a room we are in only makes it current: what it said was seen live.
            if here:
                frame["history"] = 0
            elif self.history is not None:
                frame["history"] = self.history
        return self.submit(frame, wait=wait)

    def submit(self, frame: Frame, *, wait: bool = False) -> str:
        """Send `frame` with a fresh ref, or keep it until it may go: "sent", "paced" (the
        server's rate says wait a moment) or "queued" (after reconnecting); Refused when the
        queue is full (unless `wait`: then it waits for room), SessionEnded once the session
        has ended."""
        return self.link.submit(frame, wait=wait)

    def queued(self) -> int:
        return self.link.queued()

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every submitted frame was answered and nothing is queued; False after
        `timeout` seconds without progress, and at once when the session has ended with lines
        unanswered or has given up (its queue was dropped then: nothing will ever settle)."""
        return self.link.wait_settled(timeout)

    # ------------------------------------------------------------------ the link's state

    @property
    def state(self) -> str:
        """offline | connected | reconnecting | connecting | closed (quit) | failed (gave up)"""
        return self.link.state

    @property
    def retry_at(self) -> float | None:
        """time.monotonic() of the next reconnecting attempt, while waiting for it."""
        return self.link.retry_at

    @property
    def failure(self) -> str | None:
        """Why reconnecting was given up (state "failed")."""
        return self.link.failure

    @property
    def tls(self) -> str | None:
        """"TLS" / "TLS (unverified)" / "plain", for the toolbar."""
        return self.link.tls

    # ------------------------------------------------------------------ what we know

    @property
    def nick(self) -> str:
        return self.model.nick

    @property
    def server_name(self) -> str:
        return self.model.server_name

    @property
    def commands(self) -> list[CommandSpec]:
        return self.model.commands

    @property
    def current_room(self) -> str | None:
        return self.model.current_room

    @property
    def rooms(self) -> dict[str, Room]:
        return self.model.rooms

    @property
    def last_message_ids(self) -> dict[str, int]:
        return self.model.last_message_ids

    def set_current_room(self, room: str) -> bool:
        """Make `room`, one we are in, the current room (where plain lines go) without asking
        the server anything: a GUI's room list. False when we are not in it."""
        with self.link.lock:
            state = self.model.rooms.get(name_key(room))
            if state is None:
                return False
            self.model.current_room = state.name
            return True

    def members(self, room: str | None = None) -> list[str]:
        with self.link.lock:
            return self.model.members(room)

    def member_count(self, room: str | None = None) -> int:
        """People in `room` as the server counts them (more than `members` in a crowd)."""
        with self.link.lock:
            return self.model.member_count(room)

    def members_complete(self, room: str | None = None) -> bool:
        with self.link.lock:
            return self.model.members_complete(room)

    def room_names(self) -> list[str]:
        """Rooms worth completing after /join: every room we know of."""
        with self.link.lock:
            return self.model.room_names()

    def joined_rooms(self) -> list[str]:
        with self.link.lock:
            return self.model.joined_rooms()

    def nicks(self) -> list[str]:
        """Everyone we know of except ourselves, for completion."""
        with self.link.lock:
            return self.model.nicks()

    # ------------------------------------------------------------------ hooks for the link

    def _welcomed(self, conn: Connection) -> None:
        self.model.welcomed(cast(WelcomeFrame, conn.welcome))

    def _rejoin_frames(self) -> list[Frame]:
        return [dict(self.model.rejoin_frame(room)) for room in self.model.joined_rooms()]

    def _emit(self, frame: Frame) -> None:
        try:
            self.on_event(frame)
        except Exception:  # a UI bug must not kill the connection
            log.exception("event handler failed for %s", frame.get("type"))
