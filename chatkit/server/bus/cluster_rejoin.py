"""A node the cluster dropped while it was alive (its heartbeat expired while it stalled, or
Redis lost its data) finds out and says again who is connected to it (`ClusterBus._reassert`).
What the others hear of that, built here under the hub's lock:

- for each of its people who keeps the nickname, a `join` per room, appended before the
  member's record: another node delivers it only to those of its people who do not see that
  member in that room (they saw it quit when the node was reaped; after Redis lost its data
  nobody did, and nobody hears a join twice): `cluster_entries.back_entry`;
- for one whose nickname someone on another node took meanwhile, a quit for the people of this
  node only (everywhere else it quit at the reap, and the nick is someone else's now), then
  its connection ends, saying why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatkit.protocol.events import JoinEvent, QuitEvent

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member

LOST = "your nickname was taken while this server was cut off from its cluster"


def back_joins(hub: Hub, member: Member) -> list[JoinEvent]:
    """The joins telling the other nodes that `member` is back in its rooms."""
    if member.quiet:
        return []
    joins: list[JoinEvent] = []
    for room in member.rooms.values():
        id_, ts = hub.stamp()
        joins.append({"type": "join", "room": room.name, "nick": member.nick or "",
                      "id": id_, "ts": ts})
    return joins


def lost_nick(hub: Hub, member: Member) -> None:
    """`member`'s nickname is someone else's now: it quits here only, and is disconnected."""
    audience = [m for m in hub.co_members(member, crowds=False) if not m.remote]
    hub.retire(member, LOST, announce=False)  # nothing for the other nodes
    if audience and not member.quiet:
        id_, ts = hub.stamp()
        quit_event: QuitEvent = {"type": "quit", "nick": member.nick or "",
                                 "reason": "its server was cut off from the cluster",
                                 "id": id_, "ts": ts}
        hub.publish(quit_event, recipients=audience)
    member.end(LOST)
