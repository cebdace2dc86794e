"""The local bus: one process, the SQLite message log. One publisher thread takes accepted
events in id order, stores each batch in one transaction, then delivers it, one send per
member. So an event is on disk before anyone sees it (the sender's echo means "accepted"),
every member receives events in id order, and a burst costs one syscall per member rather than
one per message. Also applies retention, between batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from chatkit.protocol import name_key
from chatkit.server.bus.fanout import Output, fan_out, fan_out_run
from chatkit.server.hub.pending import Pending
from chatkit.server.repeated_log import RepeatedLog
from chatkit.store import MessageStore, SavedTopic, StoredMessage, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member
    from chatkit.server.hub.rooms import Room

log = logging.getLogger("chatkit.server")

_STOP = object()
MAX_BATCH = 512


class LocalBus:
    """The publisher thread over a `MessageStore` (see the module docstring)."""

    def __init__(self, store: MessageStore, *, retain_days: float | None = None,
                 max_messages: int | None = None, prune_every: float = 60.0) -> None:
        self.store = store
        self.hub: Hub | None = None  # set by Hub(bus=...): the bus reads membership under its lock
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.published_id = store.last_id()  # everything stored before a restart is history
        self.retain_days, self.max_messages = retain_days, max_messages
        self.prune_every = prune_every
        self._next_prune = time.monotonic() + prune_every
        self._thread = threading.Thread(target=self._run, name="chatkit-publisher", daemon=True)
        self._log = RepeatedLog(log)  # a full disk fails every batch: say so once per 10 s

    def last_id(self) -> int:
        return self.store.last_id()

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

    # ------------------------------------------------------------------ the publisher thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self.queue.get(timeout=self.prune_every)
            except queue.Empty:
                first = None
            batch: list[Pending] = []
            item = first
            while item is not None:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, Pending)
                    batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                try:
                    self._publish(batch)
                except Exception:  # never lose the thread: later messages still need it
                    log.exception("internal error publishing %d events", len(batch))
            self._maybe_prune()

    def _publish(self, batch: list[Pending]) -> None:
        stored = True
        rows = [p.row for p in batch if p.row is not None]
        try:
            self.store.append(rows)
        except StoreError as exc:
            self._log.log(logging.ERROR, f"store:{exc}", "%s", exc)
            stored = False
        hub = self.hub
        assert hub is not None, "a bus publishes for a hub"
        out: Output = {}
        with hub.lock:
            run: list[Pending] = []
            run_room: Room | None = None

            def flush_run() -> None:
                if run and run_room is not None:
                    fan_out_run(run, run_room.members.values(), out)
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
            # max: a repeated line's answer is its original event, with an older id
            self.published_id = max(self.published_id, batch[-1].event["id"])
        # Outside the lock, so readers queueing new messages do not wait for the sends. Order
        # holds: only this thread delivers events, batch after batch; and a joiner that takes
        # the lock from here on is not among these recipients but gets the batch as history.
        for member, chunks in out.items():
            member.deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _maybe_prune(self) -> None:
        if (self.retain_days is None and self.max_messages is None) \
                or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.prune_every
        try:
            deleted = self.store.prune(retain_days=self.retain_days,
                                       max_messages=self.max_messages)
        except StoreError as exc:
            log.error("retention: %s", exc)
            return
        if deleted:
            log.info("retention: deleted %d old messages", deleted)
            self._next_prune = time.monotonic() + 1.0  # more to do: continue soon


def _targets(pending: Pending, room: Room | None, sender_in_room: bool) -> Iterable[Member]:
    """Who gets an event that is not part of a room run."""
    if pending.room is None:
        return pending.recipients or []
    targets: Iterable[Member] = room.members.values() if room is not None else []
    if pending.exclude is not None:
        targets = [m for m in targets if m is not pending.exclude]
    if not sender_in_room and pending.sender is not None:
        targets = [*targets, pending.sender]  # left meanwhile: still gets its echo
    return targets
