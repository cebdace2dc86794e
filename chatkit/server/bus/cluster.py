"""The cluster bus: several `chatkit serve` nodes sharing rooms through one Redis.

Every node appends what its hub accepts to one Redis stream (cluster_redis.py), which gives
each event its cluster-wide id, and reads that stream back (XREAD BLOCK): every node delivers
every event in that one order, its own included, so the sender's echo means "in the cluster's
log". Membership travels in the same stream, so each node's hub shows everyone
(hub/remote.py). Threads, each with one job:

- the appender takes accepted events in id order and appends them in batches, one script call
  each; while Redis does not answer it keeps them (bounded: `MAX_HELD` lines, then people's
  lines are refused by name) and appends them when it is back, exactly once;
- the reader reads the log, stores what is to be kept in this node's SQLite archive
  (`chatkit history` reads it) and delivers (delivery.py);
- the heartbeat (cluster_liveness.py) keeps this node alive in Redis and reaps dead ones.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatkit.protocol import FrameError, name_key
from chatkit.protocol.events import ClusterInfo
from chatkit.server.bus.batches import take_batch
from chatkit.server.bus.cluster_entries import (
    act_entry,
    encode_batch,
    entry_items,
    event_entry,
    member_entry,
    own_pending,
    remote_pending,
)
from chatkit.server.bus.cluster_liveness import MAX_HELD, Liveness
from chatkit.server.bus.cluster_records import RedisRecords
from chatkit.server.bus.cluster_redis import ClusterUnavailable, RedisLog
from chatkit.server.bus.delivery import deliver
from chatkit.server.bus.fanout import Output, fan_out
from chatkit.server.bus.retention import Retention
from chatkit.server.hub.pending import Pending
from chatkit.server.hub.remote import apply_record
from chatkit.server.repeated_log import RepeatedLog
from chatkit.store import MessageStore, SavedTopic, StoredMessage, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub
    from chatkit.server.hub.member import Member

log = logging.getLogger("chatkit.server")

MAX_BATCH = 256
READ_BATCH = 1024  # entries read and delivered at once: under load, one send per member each
_STOP = object()
_NO_CLAIMS = ("the cluster's Redis is not answering: nicknames cannot be checked; try again "
              "in a moment")
_LINES = ("message", "private", "topic")  # what a person sends: refused when too many wait


class ClusterBus:
    """See the module docstring."""

    def __init__(self, url: str, store: MessageStore, *, cluster_name: str,
                 archive: bool = True, retention: Retention | None = None) -> None:
        self.node = secrets.token_hex(6)
        self.cluster_name = cluster_name
        #: this node's archive of the cluster's stored events (`chatkit history` reads it);
        #: none with --no-history: the cluster's history is in Redis
        self.store = store
        self.archive = archive
        self.retention = retention or Retention(store)
        self.link = RedisLog(url, self.node)  # raises ChatkitError: unreachable at start
        last_id, self._topics, self._members = self.link.snapshot()
        self.published_id = last_id  # everything before is history (in Redis)
        self.hub: Hub | None = None
        #: what this node says of itself (the server fills it in once its doors are up)
        self.node_info: Callable[[], dict[str, Any]] = dict
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._seqs = itertools.count(1)  # this node's entries, in order (appends are idempotent)
        self._inflight: dict[int, Pending | None] = {}
        self._held_lines = 0  # people's lines accepted and not yet in the log
        self._stopping = threading.Event()
        self.liveness = Liveness(self, self._stopping)  # cluster_liveness.py: the heartbeat
        self._appender = threading.Thread(target=self._append_loop, name="chatkit-cluster-out",
                                          daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name="chatkit-cluster-in",
                                        daemon=True)
        self._log = RepeatedLog(log)

    def records(self) -> RedisRecords:
        """Accounts and moderation, shared by every node (bus/cluster_records.py)."""
        return RedisRecords(self.link)

    # ------------------------------------------------------------------ the Bus seam

    def attach(self, hub: Hub) -> None:
        """Show the members of the nodes already running (read with the last id at start)."""
        self.hub = hub
        with hub.lock:
            for node, members in self._members.items():
                for key, record in members.items():
                    if isinstance(record, dict):
                        claim = record.get("claim")
                        apply_record(hub, node, key, record,
                                     claim=claim if isinstance(claim, int) else 0)
        self._members = {}

    def next_id(self) -> int:
        # Events get their id when appended; a reply carries the newest id delivered before it
        return self.published_id

    def topics(self) -> dict[str, SavedTopic]:
        return dict(self._topics)

    def start(self) -> None:
        self.liveness.first_beat()  # in the set of nodes before anyone can connect through it
        self._appender.start()
        self._reader.start()
        self.liveness.start()

    def stop(self) -> None:
        """Append everything accepted, deliver it, then leave the cluster: this node's people
        quit on the other nodes at once (not after the heartbeat expires)."""
        if not self._appender.is_alive():
            return
        self.queue.put(_STOP)
        self._appender.join(10)
        deadline = time.monotonic() + 5
        while self._inflight and time.monotonic() < deadline and self._reader.is_alive():
            time.sleep(0.01)
        self._stopping.set()
        self._reader.join(3)
        self.liveness.join(3)
        try:
            self.link.reap(self.node, "their server stopped")
        except ClusterUnavailable:
            pass  # the others reap this node when its heartbeat expires

    def close(self) -> None:
        self.store.close()
        self.link.close()

    def submit(self, pending: Pending) -> None:
        if pending.again:  # an answer to a repeated line: its event is in the log already
            out: Output = {}
            fan_out(pending.event, pending.recipients or [], pending.sender, pending.ref, out)
            for member, chunks in out.items():
                member.deliver(b"".join(chunks))
            return
        line = pending.sender is not None and pending.event["type"] in _LINES
        down_since = self.liveness.down_since
        if line and down_since is not None and self._held_lines >= MAX_HELD:
            raise FrameError("cluster_unavailable", f"the cluster's Redis has not answered "
                             f"for {time.monotonic() - down_since:.0f} s and "
                             f"{MAX_HELD} lines are waiting for it: not accepted, send it "
                             "again later")
        def entry(seq: int) -> dict[str, Any]:
            built = event_entry(pending, seq)
            if line:  # marked before the appender can see it: it counts it down once in
                built["_line"] = True
            return built

        if line:
            self._held_lines += 1
        self.enqueue(entry, pending)

    def enqueue(self, build: Callable[[int], dict[str, Any]], pending: Pending | None
                ) -> dict[str, Any]:
        """Queue the entry `build` makes with the next of this node's sequence numbers (in
        order, under the hub's lock); `pending` is what it delivers here when read back."""
        seq = next(self._seqs)
        entry = build(seq)
        self._inflight[seq] = pending
        self.queue.put(entry)
        return entry

    def room_history(self, room: str, *, limit: int, after: int | None, up_to: int
                     ) -> list[StoredMessage]:
        try:
            return self.link.room_history(name_key(room), limit=limit, after=after, up_to=up_to)
        except ClusterUnavailable as exc:
            self._log.log(logging.WARNING, "history", "cluster history unavailable: %s", exc)
            return []

    def claim_nick(self, member: Member, nick: str, takes_over: Member | None) -> None:
        # Under the hub's lock: while Redis is known to be away, do not wait for it again
        if self.liveness.down_since is not None:
            raise FrameError("cluster_unavailable", _NO_CLAIMS)
        try:
            claim = self.link.claim(name_key(nick), member.resume_token, member.client_id,
                                    take_over=takes_over is not None)
        except ClusterUnavailable:
            raise FrameError("cluster_unavailable", _NO_CLAIMS) from None
        if claim == 0:
            raise FrameError("nick_taken", f"nickname {nick} is taken; choose another")
        member.claim = abs(claim)

    def member_changed(self, member: Member, old_nick: str | None = None) -> None:
        if member.remote or member.nick is None:
            return
        self.enqueue(lambda seq: member_entry(member, seq, old_nick), None)

    def act_remote(self, target: Member, action: str, room: str | None, reason: str) -> None:
        self.enqueue(lambda seq: act_entry(target, seq, action, room, reason), None)

    def cluster_view(self) -> ClusterInfo | None:
        return self.liveness.view(self.cluster_name)

    # ------------------------------------------------------------------ appending

    def _append_loop(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = take_batch(self.queue, self.queue.get(), MAX_BATCH, _STOP)
            if batch:
                self._append(batch, time.monotonic() + 8 if stopping else None)

    def _append(self, batch: list[dict[str, Any]], deadline: float | None) -> None:
        """Append `batch`, retrying until Redis takes it (a stopping node gives up at
        `deadline`, saying so). Its sequence numbers are consecutive (queued in order under
        the hub's lock), which is how the reader finds the entries' `Pending`s again."""
        lines = sum(1 for entry in batch if entry.pop("_line", False))
        try:
            encoded = encode_batch(batch)
        except Exception:  # never lose the thread: later events still need it
            log.exception("internal error encoding %d events", len(batch))
            return
        while True:
            try:
                self.link.append(encoded, self.published_id)
                break
            except ClusterUnavailable as exc:
                self.liveness.went_down(exc)
                if deadline is not None and time.monotonic() > deadline:
                    log.error("cluster: %d events not appended: Redis at %s did not answer",
                              len(batch), self.link.where)
                    return
                time.sleep(0.5)
            except Exception:  # never lose the thread: later events still need it
                log.exception("internal error appending %d events", len(batch))
                return
        with self._hub_lock():
            self._held_lines -= lines

    # ------------------------------------------------------------------ reading

    def _read_loop(self) -> None:
        after = self.published_id
        while not self._stopping.is_set():
            try:
                entries = self.link.read(after, block_ms=500, count=READ_BATCH)
            except ClusterUnavailable as exc:
                self.liveness.went_down(exc)
                self._stopping.wait(0.5)
                continue
            self.liveness.came_back()
            if not entries:
                continue
            after = entries[-1][0]
            try:
                self._deliver(entries)
            except Exception:  # never lose the thread
                log.exception("internal error delivering %d cluster events", len(entries))
            self.retention.maybe_prune()

    def _deliver(self, entries: list[tuple[int, dict[bytes, bytes]]]) -> None:
        hub = self.hub
        assert hub is not None, "a bus publishes for a hub"
        batch: list[Pending] = []
        rows: list[StoredMessage] = []
        own, archive = self.node.encode(), self.archive
        for id_, fields in entries:
            origin = fields.get(b"o", b"")
            if origin == own:
                # This node's batch: its events are here already (no need to decode them),
                # they only get their ids: the entry's is the last one's
                count = _count(fields.get(b"n")) if b"b" in fields else 0
                last_seq = _count(fields.get(b"s"))
                if count > MAX_BATCH:  # not one this node wrote (a batch has at most that)
                    log.warning("cluster: a malformed batch in the log (id %d) was skipped",
                                id_)
                    continue
                for index in range(count):
                    pending = own_pending(self._inflight.pop(last_seq - count + 1 + index, None),
                                          id_ - count + 1 + index, archive=archive)
                    if archive and pending.row is not None:
                        rows.append(pending.row)
                    batch.append(pending)
                if not count:  # a note this node wrote: its change is made here already
                    batch.append(own_pending(None, id_, archive=archive))
                continue
            node = origin.decode("utf-8", "replace")
            items, plain = entry_items(id_, fields)
            for item_id, item in items:
                pending, row = remote_pending(hub, node, item_id, item, archive=archive,
                                              plain=plain)
                if row is not None:
                    rows.append(row)
                batch.append(pending)
        if rows:
            try:
                self.store.append(rows)
            except StoreError as exc:  # the archive only: Redis holds the cluster's history
                self._log.log(logging.ERROR, f"store:{exc}", "archive: %s", exc)
        deliver(self, hub, batch)

    def _hub_lock(self) -> Any:
        assert self.hub is not None
        return self.hub.lock


def _count(data: bytes | None) -> int:
    """A count or sequence number this node wrote into the log; 0 if it is not one."""
    return int(data) if data is not None and data.isdigit() and len(data) < 19 else 0
