"""The hub: the conversation itself. Nicknames, rooms, membership, topics, ids and order, and
who may do what. It knows no sockets and no wire format: doors hand it requests from their
members (`dispatch`, chatkit/server/hub/requests.py) and it hands accepted events to the bus.

All of its state is guarded by one lock (`lock`). Events for other people get their id under
that lock and go to the bus in id order; replies to a member's own request go straight to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatkit.protocol import DEFAULT_ROOM, Frame, FrameError, fit_text, name_key
from chatkit.protocol.constants import DEFAULT_CROWD_SIZE
from chatkit.protocol.events import (
    ByeFrame,
    ErrorFrame,
    Event,
    HistoryEnd,
    JoinEvent,
    NoticeFrame,
    PresenceEvent,
    QuitEvent,
    ServerFrame,
)
from chatkit.server.hub.account_requests import account_reply
from chatkit.server.hub.accounts import AccountBook
from chatkit.server.hub.auth import PasswordGate
from chatkit.server.hub.crowds import Crowds
from chatkit.server.hub.history import history_frame
from chatkit.server.hub.member import Member
from chatkit.server.hub.moderation import Moderation
from chatkit.server.hub.pages import paged
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.ports import Bus
from chatkit.server.hub.repeats import SentLine, SentLines
from chatkit.server.hub.rooms import Room
from chatkit.store import Records, SavedTopic, StoredMessage

log = logging.getLogger("chatkit.server")

#: characters of an error frame's message: it may quote what the client sent
MAX_MESSAGE = 500
MAX_HISTORY = 1000  # stored messages sent for one request; `more` says when there are others


@dataclass
class HubRules:
    """What the hub enforces, from the server's configuration."""

    history_on_join: int = 50
    max_rooms_per_client: int = 20
    password: str | None = None
    log_private: bool = False
    #: announced in `welcome` (the doors enforce them): lines per second, and burst
    rate_limit: float = 0.0
    rate_burst: int = 0
    #: above this many members a room is a crowd (hub/crowds.py); 0 = never
    crowd_size: int = DEFAULT_CROWD_SIZE
    #: accounts named server admins (`serve --admin`), by account key
    admins: frozenset[str] = frozenset()
    #: guests may only register or log in (`serve --require-account`)
    require_account: bool = False
    #: the message of the day, line by line (`serve --motd`; re-read on SIGHUP)
    motd: list[str] = field(default_factory=list)


class Hub:
    """See the module docstring. Thread-safe: every door's reader threads call in at once."""

    def __init__(self, name: str, bus: Bus, rules: HubRules | None = None,
                 records: Records | None = None) -> None:
        self.name = name
        self.bus = bus
        self.rules = rules or HubRules()
        self.gate = PasswordGate(self.rules.password)
        records = records or Records.memory()
        self.accounts = AccountBook(records, self.rules.admins)  # hub/accounts.py
        self.moderation = Moderation(records)  # hub/moderation.py: roles, bans, mutes
        self.lock = threading.RLock()
        self.nicks: dict[str, Member] = {}  # registered members by nick key
        # Topics outlive their rooms: a room's last topic comes back when the room is next
        # created, after it emptied or after a restart (the store keeps them).
        self.topics: dict[str, SavedTopic] = bus.topics()
        self.rooms: dict[str, Room] = {}
        self.crowds = Crowds(self.rules.crowd_size)
        self.new_room(DEFAULT_ROOM)
        self.sent_lines = SentLines()  # lines a client may send again after a reconnect
        self.stopping = False  # no quit events while the server shuts down
        from chatkit.server.hub.requests import Requests  # the handlers need the Hub class

        self.requests = Requests(self)
        bus.attach(self)

    # ------------------------------------------------------------------ frames

    def stamp(self) -> tuple[int, float]:
        """The next id and the current time, which every server frame carries (frames are
        built as typed literals of chatkit/protocol/events.py, keys in wire order)."""
        return self.bus.next_id(), round(time.time(), 3)

    def reply(self, member: Member, frame: ServerFrame, request: Frame | None) -> None:
        """A reply to `member`'s request, carrying the request's `ref`."""
        if request is not None and request.get("ref") is not None:
            frame["ref"] = request["ref"]
        member.send_frame(frame)

    def refuse(self, member: Member, code: str, message: str, ref: object = None) -> None:
        """An error frame to `member`, caused by a request with `ref`."""
        id_, ts = self.stamp()
        # bounded: a message may quote what the client sent (the frame must fit in MAX_FRAME)
        frame: ErrorFrame = {"type": "error", "code": code, "message": message[:MAX_MESSAGE],
                             "id": id_,
                             "ts": ts}
        if isinstance(ref, (str, int)):  # decode admits nothing else
            frame["ref"] = ref
        member.send_frame(frame)

    def notice(self, text: str) -> NoticeFrame:
        id_, ts = self.stamp()
        return {"type": "notice", "text": text, "id": id_, "ts": ts}

    def bye(self, reason: str | None) -> ByeFrame:
        id_, ts = self.stamp()
        return {"type": "bye", "reason": reason, "id": id_, "ts": ts}

    def publish(self, event: Event, *, room: Room | None = None,
                recipients: list[Member] | None = None, sender: Member | None = None,
                ref: object = None, exclude: Member | None = None,
                row: StoredMessage | None = None,
                apply: Callable[[], None] | None = None, line: SentLine | None = None,
                again: bool = False) -> None:
        """Hand an event to the bus; the caller holds the lock, so ids stay in order. `apply`
        makes the change the event announces, once it is stored (see Pending)."""
        self.bus.submit(Pending(event, room, recipients, sender, ref, exclude, row, apply,
                                line, again))

    def dispatch(self, member: Member, frame: Frame) -> None:
        """One request from a door; raises FrameError for anything refused."""
        self.requests.dispatch(member, frame)

    # ------------------------------------------------------------------ who is here

    def members(self) -> list[Member]:
        """Everyone registered, by nick."""
        with self.lock:
            return sorted(self.nicks.values(), key=lambda m: name_key(m.nick or ""))

    def counts(self) -> tuple[int, int]:
        """(registered members, rooms), for discovery."""
        with self.lock:
            return len(self.nicks), len(self.rooms)

    def check_password(self, member: Member, given: object) -> None:
        """Let `member` in, or raise FrameError(bad_password) (ending it after too many)."""
        verdict = self.gate.attempt(member.peer, given)
        if verdict == "ok":
            member.authenticated = True
            return
        if verdict == "missing":
            raise FrameError("bad_password", "this server needs a password")
        if verdict == "busy":
            self.refuse(member, "bad_password", "too many password attempts on this server "
                        "right now; try again in a minute")
            member.end("too many password attempts on the server")
            raise FrameError("bad_password", "password not checked")
        if verdict == "locked_out":
            self.refuse(member, "bad_password", "wrong password; too many attempts, "
                        "disconnecting")
            member.end("too many wrong passwords")
        raise FrameError("bad_password", "wrong password")

    @staticmethod
    def check_current(member: Member) -> None:
        """Refuse to register anything for a member a newer connection replaced (a line it sent
        just before may still be in its reader thread); the caller holds the lock."""
        if member.retired:
            raise FrameError("replaced", "this connection was replaced by a newer one")

    def retire(self, member: Member, reason: str | None, *, announce: bool = True) -> None:
        """Free a member's nickname and rooms and tell those who shared a room (unless not
        `announce`: it lives on, on another node of a cluster); once only.

        Called under the lock, when its connection ends or when a client's new connection
        replaces its old one (the old reader thread then only closes the socket)."""
        if member.nick is None or member.retired:
            return
        member.retired = True
        if self.nicks.get(name_key(member.nick)) is member:
            del self.nicks[name_key(member.nick)]
        # Crowds hear of it in their next presence summary (hub/crowds.py); the quit event
        # goes to the people of the other rooms.
        audience = self.co_members(member, crowds=False) if announce else []
        for room in list(member.rooms.values()):
            if announce:
                self.announce_departure(member, room)
            self.leave(member, room)
        if audience and not self.stopping and not member.quiet:
            id_, ts = self.stamp()
            quit_event: QuitEvent = {"type": "quit", "nick": member.nick, "reason": reason,
                                     "id": id_, "ts": ts}
            self.publish(quit_event, recipients=audience)
        self.bus.member_changed(member)  # gone: its nickname is free on every node
        log.info("%s disconnected (%s)", member.label, reason or "quit")

    def co_members(self, member: Member, crowds: bool = True) -> list[Member]:
        """Everyone who shares at least one room with `member` (itself excluded), once;
        without `crowds`, leaving out the rooms that are crowds."""
        seen: dict[int, Member] = {}
        for room in member.rooms.values():
            if not crowds and self.crowds.is_crowd(len(room.members)):
                continue
            for other in room.members.values():
                if other is not member:
                    seen[id(other)] = other
        return list(seen.values())

    # ------------------------------------------------------------------ rooms

    def new_room(self, name: str) -> Room:
        """Create room `name` with its saved topic, if it had one; the caller holds the lock."""
        room = self.rooms[name_key(name)] = Room(name)
        saved = self.topics.get(name_key(name))
        if saved is not None:  # cut to the byte bound if stored before it existed
            room.topic, room.topic_by = fit_text(saved.text), saved.nick
        return room

    def set_topic(self, room: Room, text: str | None, nick: str, ts: float) -> None:
        """Change `room`'s topic and remember it for the room's next life; under the lock."""
        room.topic, room.topic_by = text, nick
        if text:
            self.topics[name_key(room.name)] = SavedTopic(room.name, text, nick, ts)
        else:
            self.topics.pop(name_key(room.name), None)

    def room(self, name: str) -> Room:
        """The room called `name` (a checked name), or FrameError(no_such_room)."""
        room = self.rooms.get(name_key(name))
        if room is None:
            raise FrameError("no_such_room", f"no such room: {name}")
        return room

    def join(self, member: Member, name: str, *, create: bool, request: Frame | None,
             history: int | None = None, after: int | None = None) -> None:
        """Make `member` a member of room `name` (its current room), answer `joined`, then send
        the room's history. Takes the lock itself: history is read outside it."""
        with self.lock:
            self.check_current(member)
            key = name_key(name)
            room = self.rooms.get(key)
            if room is None and not create:
                raise FrameError("no_such_room", f"no such room: {name}")
            if key not in member.rooms and \
                    len(member.rooms) >= self.rules.max_rooms_per_client:
                raise FrameError("too_many_rooms", f"you are in {len(member.rooms)} rooms, "
                                 "the most allowed; /part one first")
            if key not in member.rooms:
                self.moderation.may_join(member, room.name if room else name)
            founding = self.moderation.found(name, member) if room is None else None
            if founding is not None:  # now an operator: its command list grows
                member.send_frame(account_reply(self, member, "roles"))
            if room is None:
                room = self.new_room(name)
            if key in member.rooms:
                member.rooms.pop(key)  # re-inserted below: it becomes the current room
                if after is None:
                    history = 0  # already here: everything since was seen live
            else:
                room.add(member)
                self.announce_arrival(member, room)
                log.info("%s joined %s", member.nick, room.name)
            member.rooms[key] = room
            self.bus.member_changed(member)  # its rooms: known on every node of a cluster
            nicks, partial = self.member_list(room, member)
            # `members`, `id` and `ts` are added per page (JoinedFrame in protocol/events.py)
            empty: Frame = {"type": "joined", "room": room.name, "topic": room.topic,
                            "count": room.count}
            if partial:
                empty["partial"] = True
            # A long member list comes in pages (hub/pages.py); they go out first when the
            # output is released, before the history and anything held.
            ref = request.get("ref") if request is not None else None
            joined = b"".join(member.format.encode_for(page, member.nick) for page in
                              paged(nicks, "members", empty, self.stamp, ref))
            # From here on every batch the bus publishes reaches the member live; everything
            # published before is in the log up to `up_to`. Its live output is held until the
            # history, read outside the lock, is out: nothing twice, nothing missing, in order.
            up_to = self.bus.published_id
            member.hold_output()
        if founding is not None:
            self.moderation.save(founding)
        if history is None:
            history = self.rules.history_on_join
        data = joined
        try:
            # Always ends with history_end (maybe count 0): the client knows the join is done.
            data += self.history_bytes(member, room.name,
                                       history if after is None else MAX_HISTORY, after,
                                       up_to, ref)
        finally:
            member.release_output(data)

    def history_bytes(self, member: Member, room: str, limit: int, after: int | None,
                      up_to: int, ref: object) -> bytes:
        """Stored events of `room` up to `up_to`, then `history_end`, encoded for `member`."""
        rows = self.bus.room_history(room, limit=min(limit, MAX_HISTORY), after=after,
                                     up_to=up_to) if limit > 0 else []
        encode = member.format.encode_for
        data = b"".join(encode(history_frame(row), member.nick) for row in rows)
        id_, ts = self.stamp()
        end: HistoryEnd = {"type": "history_end", "room": room, "count": len(rows),
                           "more": after is not None and len(rows) >= MAX_HISTORY,
                           "id": id_, "ts": ts}
        if isinstance(ref, (str, int)):
            end["ref"] = ref
        return data + encode(end, member.nick)

    def leave(self, member: Member, room: Room) -> None:
        """Take `member` out of `room`; an emptied room other than the lobby goes away."""
        member.rooms.pop(name_key(room.name), None)
        room.remove(member)
        if not member.retired:  # a retiring member is announced gone once, by retire
            self.bus.member_changed(member)
        if not room.members and name_key(room.name) != DEFAULT_ROOM:
            self.rooms.pop(name_key(room.name), None)
            self.crowds.forget(room.name)

    # ------------------------------------------------------------------ crowds

    def member_list(self, room: Room, member: Member) -> tuple[list[str], bool]:
        """The nicks a joiner of `room` is told (itself included), and whether that is only
        part of them: in a crowd, the first `crowd_size` (hub/crowds.py). Under the lock."""
        nick = member.nick or ""
        if self.crowds.is_crowd(len(room.members)):
            first = room.first_names(self.crowds.crowd_size)
            return (list(first) if nick in first else [*first[:-1], nick]), True
        return [other.nick or "" for other in room.members.values()  # in joining order
                if other is member or not other.quiet], False

    def announce_arrival(self, member: Member, room: Room) -> None:
        """Tell `room` that `member` (just added) joined: a join event, or in a crowd a word
        in its next presence summary. Under the lock."""
        if member.quiet:
            return
        if self.crowds.is_crowd(len(room.members)):
            self.crowds.note(room.name, member.nick or "", True)
            return
        self.crowds.settle(room.name, member.nick or "")
        id_, ts = self.stamp()
        join_event: JoinEvent = {"type": "join", "room": room.name,
                                 "nick": member.nick or "", "id": id_, "ts": ts}
        self.publish(join_event, room=room, exclude=member)

    def announce_departure(self, member: Member, room: Room) -> bool:
        """In a crowd, note that `member` (still in it) is leaving `room` and return True:
        its next presence summary says so, nobody hears it now. Under the lock."""
        if member.quiet or not self.crowds.is_crowd(len(room.members)):
            self.crowds.settle(room.name, member.nick or "")
            return False
        self.crowds.note(room.name, member.nick or "", False)
        return True

    def announce_presence(self) -> None:
        """Send each crowd whose summary is due its `presence` event (PresenceClock)."""
        with self.lock:
            for key, changes in self.crowds.due():
                room = self.rooms.get(key)
                if room is None or self.stopping:
                    continue
                joined, left, joined_count, left_count = changes.summary()
                id_, ts = self.stamp()
                event: PresenceEvent = {"type": "presence", "room": room.name,
                                        "count": room.count, "joined": joined, "left": left,
                                        "joined_count": joined_count,
                                        "left_count": left_count, "id": id_, "ts": ts}
                self.publish(event, room=room)
