"""The user's frames on their way to the server, and why one cannot be sent.

Owns: the bounded queue of frames submitted while disconnected, the frames sent but not yet
answered (matched by `ref`), and the errors a UI shows for a line that cannot be sent
(`Refused`, and `SessionEnded` once the session is over for good).
"""

from __future__ import annotations

import threading
from collections import deque

from chatkit.errors import ChatkitError
from chatkit.protocol import Frame


class Refused(ChatkitError):
    """A line that cannot be sent now (queue full, no room, bad command); the message says why."""


class SessionEnded(Refused):
    """A line refused because the session is over for good (quit, or reconnecting given up)."""


class Outbox:
    """The user's frames on their way: queued while disconnected (bounded), then pending until
    the server answers one (its echo or reply, matched by `ref`). Not locked itself: the link
    calls it with its lock held, and `settled` (on that lock) is notified when it empties."""

    def __init__(self, limit: int, settled: threading.Condition) -> None:
        self.limit = limit
        self.settled = settled
        self.queue: deque[Frame] = deque()
        self.pending: dict[str, Frame] = {}  # ref -> frame sent but not yet answered
        self.answers = 0  # answers received so far: progress, for a patient wait

    def empty(self) -> bool:
        return not (self.pending or self.queue)

    def sent(self, frame: Frame) -> None:
        self.pending[frame["ref"]] = frame

    def hold(self, frame: Frame) -> None:
        """Queue `frame` for the next connection; Refused when the queue is full."""
        if len(self.queue) >= self.limit:
            raise Refused(f"not sent: {len(self.queue)} lines are already waiting "
                          "for the connection to come back")
        self.queue.append(frame)

    def answered(self, ref: str) -> Frame | None:
        """The frame `ref` answers (now settled), None if it was not ours or is long gone."""
        frame = self.pending.pop(ref, None)
        if frame is not None:
            self.answers += 1
            self.settled.notify_all()
        return frame

    def full(self) -> bool:
        return len(self.queue) >= self.limit

    def requeue_unanswered(self) -> int:
        """After a loss: frames sent but never answered may not have reached anyone; they go
        first in the queue, to be sent again rather than lost silently."""
        unanswered = list(self.pending.values())
        self.pending.clear()
        self.queue.extendleft(reversed(unanswered))
        return len(unanswered)

    def drop(self) -> int:
        """Give up on the queue (the link has failed); returns how many frames were dropped."""
        dropped = len(self.queue)
        self.queue.clear()
        self.settled.notify_all()
        return dropped
