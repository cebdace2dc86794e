"""Fan-out: the bytes each member gets from one published batch, encoded once per wire format.

A message to a room of N members is N deliveries, and at scale that loop is the whole cost of a
chat server. So an event is encoded once per format (`WireFormat.encode`) and every member of
that format gets the same bytes; the member who caused it gets its own copy (`encode_own`).
Consecutive events of a batch for one room go to the same members (membership cannot change
while the publisher holds the hub's lock), so such a run is joined once and each member gets it
with one append: the per-member work is one append per batch, not one per message. Everything a
member gets from one batch is then sent with one `send` (chatkit/server/bus/local.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from chatkit.protocol.events import Event
from chatkit.server.hub.member import Member, WireFormat
from chatkit.server.hub.pending import Pending

Output = dict[Member, list[bytes]]


def fan_out(frame: Event, recipients: Iterable[Member], sender: Member | None, ref: object,
            out: Output) -> None:
    """Add one event to each recipient's output."""
    encoded: dict[WireFormat, bytes] = {}
    last_format: WireFormat | None = None  # members mostly share one format: skip the lookup
    last_data = b""
    for member in recipients:
        fmt = member.format
        if fmt is not last_format:
            data = encoded.get(fmt)
            if data is None:
                data = encoded[fmt] = fmt.encode(frame)
            last_format, last_data = fmt, data
        data = last_data
        if member is sender:
            own = fmt.encode_own(data, frame, ref, member.nick)
            if own is None:
                continue
            data = own
        chunks = out.get(member)
        if chunks is None:
            out[member] = [data]
        else:
            chunks.append(data)


def fan_out_run(run: list[Pending], members: Iterable[Member], out: Output) -> None:
    """Consecutive events for one room, each member getting all of them as one chunk.

    Senders get their own copy of the run, where their events are `encode_own` copies. Called
    with the members of the room every event of the run is for.
    """
    if len(run) == 1:
        fan_out(run[0].event, members, run[0].sender, run[0].ref, out)
        return
    each: dict[WireFormat, list[bytes]] = {}  # per format: every event's encoding
    shared: dict[WireFormat, bytes] = {}  # per format: the run joined once
    senders = {p.sender for p in run if p.sender is not None}
    last_format: WireFormat | None = None  # members mostly share one format: skip the lookup
    last_data = b""
    for member in members:
        fmt = member.format
        chunks = out.get(member)
        if chunks is None:
            chunks = out[member] = []
        if member in senders:
            encoded = each.get(fmt)
            if encoded is None:
                encoded = each[fmt] = [fmt.encode(p.event) for p in run]
            # Parts, not one joined copy: the bytes stay shared with everyone else's and are
            # joined at delivery, outside the lock (many senders x a long run of big messages
            # would otherwise build that many full copies under the lock).
            chunks.extend(_own_copy(member, run, encoded))
            continue
        if fmt is not last_format:
            data = shared.get(fmt)
            if data is None:
                encoded = each.get(fmt)
                if encoded is None:
                    encoded = each[fmt] = [fmt.encode(p.event) for p in run]
                data = shared[fmt] = b"".join(encoded)
            last_format, last_data = fmt, data
        chunks.append(last_data)


def _own_copy(member: Member, run: list[Pending], encoded: list[bytes]) -> list[bytes]:
    """The run as `member`, who caused some of it, receives it."""
    parts: list[bytes] = []
    fmt = member.format
    for pending, data in zip(run, encoded, strict=True):
        if pending.sender is not member:
            parts.append(data)
            continue
        own = fmt.encode_own(data, pending.event, pending.ref, member.nick)
        if own is not None:
            parts.append(own)
    return parts
