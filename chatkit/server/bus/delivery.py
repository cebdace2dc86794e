"""Delivery: one batch of events, in id order, to the members of this process.

Shared by both buses (local.py, cluster.py). Under the hub's lock, each event's recipients are
read and its bytes queued per member (fanout.py), the changes events announce are made, and the
bus's `published_id` moves past the batch; the sends happen outside the lock. Order holds: only
the bus's one publishing thread delivers, batch after batch; and a joiner that takes the lock
from here on is not among these recipients but gets the batch as history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from chatkit.protocol import name_key
from chatkit.server.bus.fanout import Output, fan_out, fan_out_run
from chatkit.server.hub.pending import Pending

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member
    from chatkit.server.hub.rooms import Room


class Publishing(Protocol):
    published_id: int


def deliver(bus: Publishing, hub: Hub, batch: list[Pending], *, stored: bool = True) -> None:
    """Deliver `batch` (see the module docstring). Without `stored` (the log refused the
    batch), an event that was to be stored is refused to its sender and reaches nobody."""
    out: Output = {}
    with hub.lock:
        run: list[Pending] = []
        run_room: Room | None = None

        def flush_run() -> None:
            if run and run_room is not None:
                fan_out_run(run, run_room.local.values(), out)
            run.clear()

        for pending in batch:
            if pending.row is not None and not stored:
                if pending.sender is not None:
                    hub.refuse(pending.sender, "store_failed", "message not accepted: the "
                               "server could not store it; try again later", pending.ref)
                continue
            if pending.apply is not None:
                pending.apply()
            sender = pending.sender
            # The room of that name now (None if it is gone): emptied and made again since
            # the event was accepted, it is another object, and its members are the ones
            # who will find the event in the room's history, so they get it live.
            room: Room | None = None
            sender_in_room = True  # an event for a room: is its sender a member now?
            if pending.room is not None:
                key = name_key(pending.room.name)
                room = hub.rooms.get(key)
                sender_in_room = sender is None or (
                    room is not None and sender.rooms.get(key) is room)
            if room is not None and pending.exclude is None and sender_in_room:
                if run_room is not room:
                    flush_run()
                run_room = room
                run.append(pending)
                continue
            flush_run()
            fan_out(pending.event, _targets(pending, room, sender_in_room), sender,
                    pending.ref, out)
        flush_run()
        if batch:
            # max: a repeated line's answer is its original event, with an older id
            bus.published_id = max(bus.published_id, batch[-1].event["id"])
    # Outside the lock, so readers queueing new messages do not wait for the sends.
    for member, chunks in out.items():
        member.deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def _targets(pending: Pending, room: Room | None, sender_in_room: bool) -> Iterable[Member]:
    """Who gets an event that is not part of a room run."""
    if pending.room is None:
        return pending.recipients or []
    targets: Iterable[Member] = room.local.values() if room is not None else []
    if pending.exclude is not None:
        targets = [m for m in targets if m is not pending.exclude]
    if not sender_in_room and pending.sender is not None:
        targets = [*targets, pending.sender]  # left meanwhile: still gets its echo
    return targets
