"""`Bus`: what the hub needs from whatever gives accepted events their order, stores them and
brings them back to every door (chatkit/server/bus/). The hub is written against this alone,
so a second implementation (several servers sharing rooms through a broker) slots in without
touching the hub or the doors."""

from __future__ import annotations

from typing import Protocol

from chatkit.server.hub.pending import Pending
from chatkit.store import SavedTopic, StoredMessage


class Bus(Protocol):
    #: the highest id delivered so far; a history read up to here plus what arrives live
    #: afterwards is every event exactly once
    published_id: int

    def last_id(self) -> int:
        """The highest id ever accepted (ids continue from here after a restart)."""

    def topics(self) -> dict[str, SavedTopic]:
        """Each room's current topic as stored (by room key), read once at start."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Store and deliver everything already accepted, then stop publishing."""

    def close(self) -> None:
        """Release the storage; called after every door has stopped."""

    def submit(self, pending: Pending) -> None:
        """Take an accepted event. The caller holds the hub's lock, so ids stay in order."""

    def room_history(self, room: str, *, limit: int, after: int | None, up_to: int
                     ) -> list[StoredMessage]:
        """Stored events of `room` with ids up to `up_to`: the last `limit`, or with `after`
        those after it (at most `limit`), oldest first. Never called under the hub's lock."""
