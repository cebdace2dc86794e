"""The local bus: one process, the SQLite message log. One publisher thread takes accepted
events in id order, stores each batch in one transaction, then delivers it, one send per
member. So an event is on disk before anyone sees it (the sender's echo means "accepted"),
every member receives events in id order, and a burst costs one syscall per member rather than
one per message. Also applies retention, between batches."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from typing import TYPE_CHECKING

from chatkit.protocol.events import ClusterInfo
from chatkit.server.bus.batches import take_batch
from chatkit.server.bus.delivery import deliver
from chatkit.server.bus.retention import Retention
from chatkit.server.hub.pending import Pending
from chatkit.server.repeated_log import RepeatedLog
from chatkit.store import MessageStore, SavedTopic, StoredMessage, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member

log = logging.getLogger("chatkit.server")

_STOP = object()
MAX_BATCH = 512


class LocalBus:
    """The publisher thread over a `MessageStore` (see the module docstring)."""

    def __init__(self, store: MessageStore, *, retain_days: float | None = None,
                 max_messages: int | None = None, prune_every: float = 60.0) -> None:
        self.store = store
        self.hub: Hub | None = None  # attach(): the bus reads membership under its lock
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.published_id = store.last_id()  # everything stored before a restart is history
        self._ids = itertools.count(self.published_id + 1)  # one sequence for every frame
        self.retention = Retention(store, retain_days=retain_days, max_messages=max_messages,
                                   prune_every=prune_every)
        self._thread = threading.Thread(target=self._run, name="chatkit-publisher", daemon=True)
        self._log = RepeatedLog(log)  # a full disk fails every batch: say so once per 10 s

    def attach(self, hub: Hub) -> None:
        self.hub = hub

    def next_id(self) -> int:
        return next(self._ids)

    def topics(self) -> dict[str, SavedTopic]:
        return self.store.topics()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Publish everything already accepted, then end the thread."""
        if self._thread.is_alive():
            self.queue.put(_STOP)
            self._thread.join(30)

    def close(self) -> None:
        """Close the log, once no reader thread can ask for history any more."""
        self.store.close()

    def submit(self, pending: Pending) -> None:
        self.queue.put(pending)

    def room_history(self, room: str, *, limit: int, after: int | None, up_to: int
                     ) -> list[StoredMessage]:
        return self.store.room_history(room, limit=limit, after=after, up_to=up_to)

    # One process: the hub's own checks are the whole story.
    def claim_nick(self, member: Member, nick: str, takes_over: Member | None) -> None:
        pass

    def member_changed(self, member: Member, old_nick: str | None = None) -> None:
        pass

    def act_remote(self, target: Member, action: str, room: str | None, reason: str) -> None:
        raise RuntimeError("a lone server has no members of other nodes")

    def cluster_view(self) -> ClusterInfo | None:
        return None

    # ------------------------------------------------------------------ the publisher thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self.queue.get(timeout=self.retention.prune_every)
            except queue.Empty:
                first = None
            batch, stopping = take_batch(self.queue, first, MAX_BATCH, _STOP)
            if batch:
                try:
                    self._publish(batch)
                except Exception:  # never lose the thread: later messages still need it
                    log.exception("internal error publishing %d events", len(batch))
            self.retention.maybe_prune()

    def _publish(self, batch: list[Pending]) -> None:
        stored = True
        rows = [p.row for p in batch if p.row is not None]
        try:
            self.store.append(rows)
        except StoreError as exc:
            self._log.log(logging.ERROR, f"store:{exc}", "%s", exc)
            stored = False
        assert self.hub is not None, "a bus publishes for a hub"
        deliver(self, self.hub, batch, stored=stored)
