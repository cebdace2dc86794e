"""`Bus`: what the hub needs from whatever gives accepted events their order, stores them and
brings them back to every door (chatkit/server/bus/). The hub is written against this alone,
so a second implementation (several servers sharing rooms through a broker) slots in without
touching the hub or the doors.

Two implementations: `LocalBus` (one process, its SQLite log) and `ClusterBus` (nodes sharing
one Redis: chatkit/server/bus/cluster.py). The methods about nicknames and members are what a
cluster needs to keep one chat over several nodes; the local bus has nothing to do for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from chatkit.protocol.events import ClusterInfo
from chatkit.server.hub.pending import Pending
from chatkit.store import SavedTopic, StoredMessage

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member


class Bus(Protocol):
    #: the highest id delivered so far; a history read up to here plus what arrives live
    #: afterwards is every event exactly once
    published_id: int

    def attach(self, hub: Hub) -> None:
        """The hub this bus publishes for (it reads membership under the hub's lock)."""

    def next_id(self) -> int:
        """An id for a frame the hub builds. Locally the next of one sequence; in a cluster an
        event's final id is given when it enters the cluster's log, and this is provisional."""

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

    # ------------------------------------------------------------------ several nodes

    def claim_nick(self, member: Member, nick: str, takes_over: Member | None) -> None:
        """Make `nick` `member`'s wherever else it could be claimed, or raise FrameError
        (nick_taken, or cluster_unavailable). The hub already checked its own members;
        `takes_over` is the member of another node it shows holding the nick. Under the lock."""

    def member_changed(self, member: Member, old_nick: str | None = None) -> None:
        """`member`'s nick or rooms changed (or it retired): told to the other nodes in order
        with the events around it. Under the lock."""

    def act_remote(self, target: Member, action: str, room: str | None, reason: str) -> None:
        """Ask the node `target` (a member of another node) is on to `kick` it from `room`
        or `kill` its connection, in order after the events before. Under the lock."""

    def cluster_view(self) -> ClusterInfo | None:
        """What `welcome` says of the cluster (its name and live nodes), None alone."""
