"""Members of other nodes of a cluster, as this node's hub shows them.

A cluster (chatkit/server/bus/cluster.py) tells every node who is connected to the others and
which rooms they are in. The hub keeps them as `RemoteMember`s among its own: so `/who`,
member lists, crowds, nickname checks and private messages work unchanged, and the bus skips
them when it delivers (their own node does). `apply_record` folds one such report in, under
the hub's lock; it never announces anything: the events people see come from the cluster's log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chatkit.protocol import name_key, normalize_nick, normalize_room
from chatkit.protocol.framing import FrameError
from chatkit.server.hub.member import Member

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub

log = logging.getLogger("chatkit.server")

MAX_REMOTE_ROOMS = 64  # a record naming more rooms than any node allows is cut here


class RemoteFormat:
    """The `WireFormat` of remote members: nothing, their own node delivers."""

    name = "remote"
    description = "member of another node"

    def encode(self, frame: Mapping[str, Any]) -> bytes:
        return b""

    def encode_own(self, encoded: bytes, frame: Mapping[str, Any], ref: object,
                   nick: str | None) -> bytes | None:
        return None

    def encode_for(self, frame: Mapping[str, Any], nick: str | None) -> bytes:
        return b""


REMOTE = RemoteFormat()


class RemoteMember(Member):
    """Someone connected to node `node`; every door seam is a no-op here."""

    remote = True
    format = REMOTE

    def __init__(self, node: str, nick: str, quiet: bool, claim: int) -> None:
        super().__init__(f"node {node}")
        self.node = node
        self.nick = nick
        self.quiet = quiet
        self.claim = claim
        self.authenticated = True

    @property
    def label(self) -> str:
        return f"{self.nick}@node {self.node}"

    def deliver(self, data: bytes) -> None:
        pass

    def hold_output(self) -> None:
        pass

    def release_output(self, first: bytes) -> None:
        pass

    def end(self, reason: str | None) -> None:
        pass

    def finish(self) -> None:
        pass


def apply_record(hub: Hub, node: str, key: str, record: Mapping[str, Any] | None,
                 old: str | None = None, claim: int = 0) -> None:
    """Node `node` reports its member `key` (renamed from `old`): its nick, rooms and
    quietness, or None when it left. Under the hub's lock. A record that contradicts what this
    node knows (a nick another node now holds by a newer claim) is ignored; one that is newer
    than a member of this node's own (its client moved to `node`) retires that member."""
    if old is not None and old != key:
        _rename(hub, node, old, key, record)
    current = hub.nicks.get(key)
    if record is None:
        if isinstance(current, RemoteMember) and current.node == node:
            hub.retire(current, None, announce=False)
        return
    try:
        nick = normalize_nick(str(record.get("nick", "")))
    except FrameError:
        log.warning("node %s reported a member with a bad nickname: ignored", node)
        return
    if name_key(nick) != key:
        return
    if current is not None and not (isinstance(current, RemoteMember) and current.node == node):
        if claim <= current.claim:
            return  # an older claim: that member moved on since
        hub.retire(current, "reconnected on another node of the cluster", announce=False)
        current.end("reconnected on another node of the cluster")
        current = None
    if current is None:
        current = RemoteMember(node, nick, bool(record.get("quiet")), claim)
        hub.nicks[key] = current
    assert isinstance(current, RemoteMember)
    current.claim = max(current.claim, claim)
    # who it is, for moderation here: its account and admin flag, its address (bans)
    account, peer = record.get("account"), record.get("peer")
    current.account = account if isinstance(account, str) else None
    current.admin = record.get("admin") is True
    if isinstance(peer, str) and len(peer) <= 128:
        current.peer = peer
    _sync_rooms(hub, current, record.get("rooms"))


def _rename(hub: Hub, node: str, old: str, key: str, record: Mapping[str, Any] | None) -> None:
    member = hub.nicks.get(old)
    if not (isinstance(member, RemoteMember) and member.node == node) or record is None:
        return
    if key in hub.nicks:
        return  # apply_record settles who holds the new nick
    del hub.nicks[old]
    new = str(record.get("nick", ""))
    hub.nicks[key] = member
    for room in member.rooms.values():
        room.members = {(key if other is member else k): other
                        for k, other in room.members.items()}
        room.renamed()
    hub.crowds.renamed([room.name for room in member.rooms.values()], member.nick or "", new)
    member.nick = new


def _sync_rooms(hub: Hub, member: RemoteMember, rooms: object) -> None:
    wanted: dict[str, str] = {}
    for name in rooms if isinstance(rooms, list) else []:
        try:
            room_name = normalize_room(str(name))
        except FrameError:
            continue
        wanted[name_key(room_name)] = room_name
        if len(wanted) >= MAX_REMOTE_ROOMS:
            break
    for key, room in list(member.rooms.items()):
        if key not in wanted:
            hub.leave(member, room)
    for key, name in wanted.items():
        if key in member.rooms:
            continue
        room = hub.rooms.get(key) or hub.new_room(name)
        room.add(member)
        member.rooms[key] = room


def drop_node(hub: Hub, node: str) -> None:
    """Node `node` is gone from the cluster: forget its members (their quits were in the log).
    Under the hub's lock."""
    for member in list(hub.nicks.values()):
        if isinstance(member, RemoteMember) and member.node == node:
            hub.retire(member, None, announce=False)
