"""`Pending`: an event the hub accepted, on its way through the bus to its recipients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatkit.protocol.events import Event
from chatkit.server.hub.repeats import SentLine
from chatkit.store import StoredMessage

if TYPE_CHECKING:
    from chatkit.server.hub.member import Member
    from chatkit.server.hub.rooms import Room


@dataclass
class Pending:
    """An event accepted under the hub's lock (so its id is in order), waiting for the bus."""

    event: Event
    #: deliver to the room's members at publish time (so a joiner in between gets it live) ...
    room: Room | None = None
    #: ... or to exactly these members
    recipients: list[Member] | None = None
    sender: Member | None = None
    ref: object = None
    exclude: Member | None = None
    #: what the log keeps of it (None: not stored)
    row: StoredMessage | None = None
    #: the change of state it announces (a topic), made by the bus under the hub's lock once
    #: the row is stored and before anyone hears of it; never made if storing failed
    apply: Callable[[], None] | None = None
    #: the client's tagged line it became (hub/repeats.py): other nodes of a cluster remember
    #: it too, so the line sent again to one of them after a failover is not taken twice
    line: SentLine | None = None
    #: an event published before, answered again to its sender (a repeated line): it keeps
    #: its id and is not logged again
    again: bool = False
