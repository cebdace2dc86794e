"""Lines a client may send twice: a line whose answer was lost with the connection is sent
again after reconnecting, and must not be stored or shown twice.

A chatkit client names itself with a random `client_id` in `hello` (the same on every
connection of one client process) and tags each line (`tag`). The hub remembers, for a while,
which event each (client, tag) became; a line that comes again is answered with that event
instead of being accepted a second time. The content must match too: a tag reused for other
text is a new line, so a client (or someone who learnt its id) can never suppress a line by
sending a tag first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from chatkit.protocol.events import Event

#: a client's line: (client id, tag, content)
SentLine = tuple[str, Hashable, Hashable]

#: (client id, tag) pairs remembered, all clients together; the least recently used go first.
#: A client re-sends at most the lines it had in flight when the connection dropped.
MAX_REMEMBERED = 20_000


class SentLines:
    """Which event each (client id, tag) became. Guarded by the hub's lock."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self.limit = limit
        self._events: OrderedDict[tuple[str, Hashable], tuple[Hashable, Event]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def find(self, client_id: str, tag: Hashable, content: Hashable) -> Event | None:
        """The event this line already became, if it was accepted before with this content."""
        known = self._events.get((client_id, tag))
        if known is None or known[0] != content:
            return None
        self._events.move_to_end((client_id, tag))
        return known[1]

    def remember(self, client_id: str, tag: Hashable, content: Hashable, event: Event) -> None:
        self._events[(client_id, tag)] = (content, event)
        self._events.move_to_end((client_id, tag))
        while len(self._events) > self.limit:
            self._events.popitem(last=False)
