"""What the client knows about the conversation, built from server frames alone.

Owns: our nick as the server spelled it, the server's name and advertised commands, the rooms
we are in (topic, members), the current room, every room and user we have heard of, and the
id of the last stored message seen in each room (so rejoining asks only for what was missed).
Pure: no sockets, no threads, no locks (the session serialises access). Every frame handed to
`apply` has passed `chatkit.protocol.check_server_frame` on arrival, so the fields each
update reads are there with their documented types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from chatkit.protocol import COMMANDS, CommandSpec, Frame, name_key
from chatkit.protocol.events import (
    JoinedFrame,
    JoinEvent,
    JoinRequest,
    MessageEvent,
    NickEvent,
    PartEvent,
    PresenceEvent,
    QuitEvent,
    RoomsReply,
    TopicEvent,
    WelcomeFrame,
    WhoReply,
)


@dataclass
class Room:
    name: str
    topic: str | None = None
    members: dict[str, str] = field(default_factory=dict)  # name_key -> nick as spelled
    #: people in the room as the server last counted them (None: a server that does not say)
    count: int | None = None
    #: False in a crowd (docs/protocol.md, "Crowds"): `members` names only some of them,
    #: until a `who` for the room lists them all
    complete: bool = True

    def add(self, nick: str) -> None:
        self.members[name_key(nick)] = nick

    def remove(self, nick: str) -> None:
        if self.members.pop(name_key(nick), None) is not None and self.count:
            self.count -= 1

    def arrive(self, nick: str) -> None:
        """`nick` joined (a `join` event): one more, unless already known."""
        if self.count is not None and name_key(nick) not in self.members:
            self.count += 1
        self.add(nick)


class ChatModel:
    """The rooms, members and ids the client has seen; `apply` folds in one server frame."""

    def __init__(self, nick: str, room: str | None = None) -> None:
        self.nick = nick
        self.server_name = ""
        self.commands: list[CommandSpec] = list(COMMANDS)
        self.rooms: dict[str, Room] = {}  # name_key -> Room, the rooms we are in
        self.current_room: str | None = room
        self.known_rooms: dict[str, str] = {}  # name_key -> name, from /rooms and joins
        self.users: dict[str, str] = {}  # name_key -> nick, everyone we have heard of
        self.last_message_ids: dict[str, int] = {}  # name_key(room) -> id of its last message
        self._updates: dict[str, Callable[[Any, bool], None]] = {
            "message": self._message, "joined": self._joined, "join": self._join,
            "part": self._part, "quit": self._quit, "nick": self._nick, "topic": self._topic,
            "who": self._who, "rooms": self._rooms, "presence": self._presence,
        }

    # ------------------------------------------------------------------ updates

    def welcomed(self, welcome: WelcomeFrame) -> None:
        """A new connection's `welcome`: our nick as registered, the server and its commands."""
        self.nick = welcome["nick"] or self.nick
        self.server_name = welcome["server"]
        specs = [CommandSpec(c["name"], c["usage"], c["help"])
                 for c in welcome.get("commands") or [] if c["name"]]
        if specs:
            self.commands = specs

    def apply(self, frame: Frame, quiet: bool = False) -> None:
        """Fold one (checked) server frame into the model. `quiet` marks the answer to the
        client's own book-keeping (a rejoin), which does not move the current room."""
        update = self._updates.get(frame["type"])
        if update is not None:
            update(frame, quiet)

    def _message(self, frame: MessageEvent, quiet: bool) -> None:
        if "id" in frame:
            self.last_message_ids[name_key(frame["room"])] = frame["id"]
        if not frame.get("history"):  # a replayed line's author may have left or renamed
            self.users[name_key(frame["nick"])] = frame["nick"]

    def _joined(self, frame: JoinedFrame, quiet: bool) -> None:
        existing = self.rooms.get(name_key(frame["room"]))
        if frame.get("page") and existing is not None:  # a later page: more members
            for nick in frame["members"]:
                existing.add(nick)
                self.users[name_key(nick)] = nick
            return
        room = Room(frame["room"], frame.get("topic"), count=frame.get("count"),
                    complete=not frame.get("partial"))
        for nick in frame["members"]:
            room.add(nick)
            self.users[name_key(nick)] = nick
        self.rooms[name_key(room.name)] = room
        self.known_rooms[name_key(room.name)] = room.name
        if not quiet or self.current_room is None:
            self.current_room = room.name

    def _join(self, frame: JoinEvent, quiet: bool) -> None:
        room = self.rooms.get(name_key(frame["room"]))
        if room is not None:
            room.arrive(frame["nick"])
        self.users[name_key(frame["nick"])] = frame["nick"]

    def _presence(self, frame: PresenceEvent, quiet: bool) -> None:
        room = self.rooms.get(name_key(frame["room"]))
        if room is None:
            return
        for nick in frame["joined"]:
            room.add(nick)
            self.users[name_key(nick)] = nick
        for nick in frame["left"]:
            room.remove(nick)
        room.count = frame["count"]  # after the removals: the server's word is final
        if frame["joined_count"] > len(frame["joined"]):
            room.complete = False  # some arrivals were not named

    def _part(self, frame: PartEvent, quiet: bool) -> None:
        key = name_key(frame["room"])
        if name_key(frame["nick"]) == name_key(self.nick):
            self.rooms.pop(key, None)
            if self.current_room is not None and name_key(self.current_room) == key:
                remaining = [room.name for room in self.rooms.values()]
                self.current_room = remaining[-1] if remaining else None
        elif key in self.rooms:
            self.rooms[key].remove(frame["nick"])

    def _quit(self, frame: QuitEvent, quiet: bool) -> None:
        for room in self.rooms.values():
            room.remove(frame["nick"])
        self.users.pop(name_key(frame["nick"]), None)

    def _nick(self, frame: NickEvent, quiet: bool) -> None:
        old, new = frame["old"], frame["new"]
        for room in self.rooms.values():
            if name_key(old) in room.members:
                room.members.pop(name_key(old))
                room.add(new)
        self.users.pop(name_key(old), None)
        self.users[name_key(new)] = new
        if name_key(old) == name_key(self.nick):
            self.nick = new

    def _topic(self, frame: TopicEvent, quiet: bool) -> None:
        if frame.get("nick") is None:  # the answer to a query: not a stored event
            return
        # A topic change is stored like a message: a rejoin must not replay one already seen.
        if "id" in frame:
            self.last_message_ids[name_key(frame["room"])] = frame["id"]
        room = self.rooms.get(name_key(frame["room"]))
        if room is not None and not frame.get("history"):
            room.topic = frame.get("text")

    def _who(self, frame: WhoReply, quiet: bool) -> None:
        # A long list comes in pages (`page` > 0 adds to the one before; docs/protocol.md)
        users = {name_key(u["nick"]): u["nick"] for u in frame["users"]}
        more = bool(frame.get("page"))
        if frame.get("room") is None:
            self.users = {**self.users, **users} if more else users
            return
        room = self.rooms.get(name_key(cast(str, frame["room"])))
        if room is not None:
            room.members = {**room.members, **users} if more else users
            room.complete = True
            if not frame.get("more"):  # the last (or only) page: the whole list is in
                room.count = len(room.members)

    def _rooms(self, frame: RoomsReply, quiet: bool) -> None:
        rooms = {name_key(r["name"]): r["name"] for r in frame["rooms"]}
        self.known_rooms = {**self.known_rooms, **rooms} if frame.get("page") else rooms

    # ------------------------------------------------------------------ queries

    def rejoin_frame(self, room: str) -> JoinRequest:
        """Rejoin `room` asking only for what was missed since the last message seen there.

        `after` makes a server with history replay the gap (as `message` frames marked
        `history`); without a known id, `history: 0` avoids replaying what is on screen.
        Servers without history ignore both fields.
        """
        last = self.last_message_ids.get(name_key(room))
        if last is None:
            return {"type": "join", "room": room, "history": 0}
        return {"type": "join", "room": room, "after": last}

    def members(self, room: str | None = None) -> list[str]:
        room = room if room is not None else self.current_room
        state = self.rooms.get(name_key(room)) if room else None
        return sorted(state.members.values(), key=name_key) if state else []

    def member_count(self, room: str | None = None) -> int:
        """People in `room` (default: the current one): the server's count, which in a crowd
        is more than the names `members` knows."""
        room = room if room is not None else self.current_room
        state = self.rooms.get(name_key(room)) if room else None
        if state is None:
            return 0
        return state.count if state.count is not None else len(state.members)

    def members_complete(self, room: str | None = None) -> bool:
        """Whether `members(room)` names everyone (False in a crowd until a `who`)."""
        room = room if room is not None else self.current_room
        state = self.rooms.get(name_key(room)) if room else None
        return state is None or state.complete

    def room_names(self) -> list[str]:
        """Rooms worth completing after /join: every room we know of."""
        names = dict(self.known_rooms)
        names.update({key: room.name for key, room in self.rooms.items()})
        return sorted(names.values(), key=name_key)

    def joined_rooms(self) -> list[str]:
        return [room.name for room in self.rooms.values()]

    def nicks(self) -> list[str]:
        """Everyone we know of except ourselves, for completion."""
        names = dict(self.users)
        for room in self.rooms.values():
            names.update(room.members)
        names.pop(name_key(self.nick), None)
        return sorted(names.values(), key=name_key)
