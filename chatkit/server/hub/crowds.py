"""Crowds: how a big room announces arrivals and departures without a join storm.

In a room of N people every announced join is N deliveries, so N people arriving cost N²/2:
12.5 million frames for 5,000. Above `crowd_size` members a room is a *crowd*: joins, parts
and quits there are not sent one by one; the hub notes them here and, at most every
`PRESENCE_SECONDS`, sends the room one `presence` event (docs/protocol.md, "Crowds") naming up
to `MAX_PRESENCE_NAMES` of those who came and went, with the totals and the room's size. What
a storm sends is then linear in the room's size per summary, and a summary every 2 s is
nothing to a room of 10,000. Nick changes are still announced one by one: a person does that,
not a storm.

`Crowds` is the bookkeeping (no threads, guarded by the hub's lock); `PresenceClock` is the
thread that asks the hub for due summaries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chatkit.protocol import name_key
from chatkit.protocol.constants import DEFAULT_CROWD_SIZE

log = logging.getLogger("chatkit.server")

#: seconds between two `presence` events of one room
PRESENCE_SECONDS = 2.0
#: nicks a `presence` event names in each of `joined` and `left`; the counts cover the rest
MAX_PRESENCE_NAMES = 20


@dataclass
class Changes:
    """Who came and went in one room since its last summary: the last word per person wins
    (joined then left is "left"; left then back is "joined")."""

    present: dict[str, tuple[str, bool]] = field(default_factory=dict)  # key -> (nick, here)
    last_sent: float = 0.0

    def summary(self) -> tuple[list[str], list[str], int, int]:
        joined = [nick for nick, here in self.present.values() if here]
        left = [nick for nick, here in self.present.values() if not here]
        return (joined[:MAX_PRESENCE_NAMES], left[:MAX_PRESENCE_NAMES], len(joined),
                len(left))


class Crowds:
    """Pending presence changes of crowd rooms, by room key (see the module docstring)."""

    def __init__(self, crowd_size: int = DEFAULT_CROWD_SIZE,
                 interval: float = PRESENCE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.crowd_size = crowd_size
        self.interval = interval
        self.clock = clock
        self.changes: dict[str, Changes] = {}

    def is_crowd(self, members: int) -> bool:
        """Whether a room of `members` people (counting anyone arriving or leaving) is one."""
        return 0 < self.crowd_size < members

    def note(self, room: str, nick: str, here: bool) -> None:
        """`nick` arrived in (`here`) or left crowd room `room`."""
        changes = self.changes.get(name_key(room))
        if changes is None:
            changes = self.changes[name_key(room)] = Changes()
        changes.present[name_key(nick)] = (nick, here)

    def settle(self, room: str, nick: str) -> None:
        """`nick`'s arrival or departure was just announced on its own (the room is no crowd
        any more): a pending word about it would now be stale."""
        changes = self.changes.get(name_key(room))
        if changes is not None:
            changes.present.pop(name_key(nick), None)

    def renamed(self, rooms: list[str], old: str, new: str) -> None:
        """A pending arrival under `old` in `rooms` is now one under `new` (the nick event
        went out, but those rooms have not heard of `old` yet)."""
        for room in rooms:
            changes = self.changes.get(name_key(room))
            entry = changes.present.pop(name_key(old), None) if changes is not None else None
            if changes is not None and entry is not None:
                changes.present[name_key(new)] = (new, entry[1])

    def forget(self, room: str) -> None:
        """The room is gone: nobody is left to tell."""
        self.changes.pop(name_key(room), None)

    def due(self) -> list[tuple[str, Changes]]:
        """Rooms whose summary may go out now (their last one is `interval` old), taken out
        of the pending set; the caller sends them. A room quiet for an interval is forgotten,
        so its next change goes out at the next tick."""
        now = self.clock()
        ready: list[tuple[str, Changes]] = []
        for key, changes in list(self.changes.items()):
            if now - changes.last_sent < self.interval:
                continue
            if changes.present:
                ready.append((key, changes))
                # the next change in this room waits an interval from now
                self.changes[key] = Changes(last_sent=now)
            else:
                del self.changes[key]
        return ready


class PresenceClock:
    """A thread that calls `tick` (the hub's summary sender) a few times per interval."""

    def __init__(self, tick: Callable[[], None], period: float = PRESENCE_SECONDS / 4) -> None:
        self._tick = tick
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatkit-presence", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._tick()
            except Exception:  # a bug must not end the summaries of every crowd
                log.exception("internal error sending presence summaries")
