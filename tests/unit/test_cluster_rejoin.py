"""A node the cluster dropped while it was alive, telling it again who it has (no sockets, no
Redis): its people's joins reach only those who saw them quit, and one whose nickname was taken
meanwhile quits for this node's people only."""

from __future__ import annotations

from chatkit.server.bus.cluster_entries import (
    back_entry,
    encode_batch,
    entry_items,
    remote_pending,
)
from chatkit.server.bus.cluster_rejoin import LOST, back_joins, lost_nick
from chatkit.server.bus.local import LocalBus
from chatkit.server.hub.hub import Hub
from chatkit.server.hub.member import Member
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.remote import RemoteMember, apply_record
from chatkit.store import MessageStore


class Recording(LocalBus):
    """A LocalBus that keeps what the hub hands it instead of publishing it."""

    def __init__(self) -> None:
        super().__init__(MessageStore(":memory:"))
        self.submitted: list[Pending] = []
        self.changed: list[Member] = []

    def submit(self, pending: Pending) -> None:
        self.submitted.append(pending)

    def member_changed(self, member: Member, old_nick: str | None = None) -> None:
        self.changed.append(member)


class Person(Member):
    """A member of this node, without a connection."""

    def __init__(self, nick: str) -> None:
        super().__init__("127.0.0.1:1")
        self.nick = nick
        self.ended: list[str | None] = []

    def deliver(self, data: bytes) -> None:
        pass

    def end(self, reason: str | None) -> None:
        self.ended.append(reason)


def _with(hub: Hub, member: Member, *rooms: str) -> Member:
    hub.nicks[member.nick or ""] = member
    for name in rooms:
        room = hub.rooms.get(name) or hub.new_room(name)
        room.add(member)
        member.rooms[name] = room
    return member


def _back(hub: Hub, nick: str, room: str, node: str = "n1") -> list[Member]:
    """Who of `hub`'s people a node's "back" join of `nick` in `room` reaches."""
    event = {"type": "join", "room": room, "nick": nick, "id": 0, "ts": 1.0}
    encoded = encode_batch([back_entry(event, nick, node, 7)])  # type: ignore[arg-type]
    [(id_, item)], _plain = entry_items(99, {b"o": node.encode(), b"s": b"7", b"n": b"1",
                                             b"b": encoded.items})
    pending, _row = remote_pending(hub, node, id_, item)
    with hub.lock:
        assert pending.apply is not None
        pending.apply()
    assert pending.event["type"] == "join" and pending.event["id"] == 99
    return list(pending.recipients or [])


def test_a_back_join_reaches_those_who_saw_the_member_quit():
    hub = Hub("test", Recording())
    ear = _with(hub, Person("ear"), "lobby")
    # the reap retired node n1's sleepy here: the join is news
    assert _back(hub, "sleepy", "lobby") == [ear]
    # a room nobody here is in: nobody to tell
    assert _back(hub, "sleepy", "attic") == []


def test_a_back_join_is_not_heard_twice_by_those_who_never_saw_a_quit():
    hub = Hub("test", Recording())
    _with(hub, Person("ear"), "lobby")
    with hub.lock:  # Redis lost its data, nobody was reaped: sleepy is still shown
        apply_record(hub, "n1", "sleepy", {"nick": "sleepy", "rooms": ["lobby"]}, claim=1)
    assert _back(hub, "sleepy", "lobby") == []


def test_back_joins_name_every_room_of_a_member_and_none_of_a_quiet_one():
    hub = Hub("test", Recording())
    sleepy = _with(hub, Person("sleepy"), "lobby", "den")
    with hub.lock:
        assert [(e["type"], e["room"], e["nick"]) for e in back_joins(hub, sleepy)] == [
            ("join", "lobby", "sleepy"), ("join", "den", "sleepy")]
        sleepy.quiet = True
        assert back_joins(hub, sleepy) == []


def test_one_whose_nick_was_taken_quits_for_this_nodes_people_only():
    bus = Recording()
    hub = Hub("test", bus)
    loser = _with(hub, Person("loser"), "lobby")
    friend = _with(hub, Person("friend"), "lobby")
    with hub.lock:
        apply_record(hub, "n2", "far", {"nick": "far", "rooms": ["lobby"]}, claim=1)
        far = hub.nicks["far"]
        assert isinstance(far, RemoteMember)
        lost_nick(hub, loser)
    assert loser.retired and "loser" not in hub.nicks
    assert loser.ended == [LOST]  # disconnected, saying why
    (quit,) = bus.submitted
    assert quit.event["type"] == "quit" and quit.event["nick"] == "loser"
    assert quit.recipients == [friend]  # not far: on n2 the nick is someone else's now
    assert bus.changed == [loser]  # its record goes: the nick was never this node's again
