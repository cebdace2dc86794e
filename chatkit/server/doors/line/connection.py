"""`LineConnection`: one client of the line door, as the hub sees it (a `Member`) and as the
door writes to it (a `SocketOutput`). Reading is chatkit/server/doors/line/reader.py."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

from chatkit.server.doors.line.formats import JSON, TEXT
from chatkit.server.doors.output import SocketOutput
from chatkit.server.hub.member import Member

if TYPE_CHECKING:
    from chatkit.server.doors.flusher import Flusher

#: how long a client that said /quit has to read its `bye` before the door closes the socket
QUIT_DRAIN_SECONDS = 2.0


class LineConnection(Member):
    """A connection to the line door: JSON mode or text mode (see `mode`)."""

    def __init__(self, sock: socket.socket, peer: str, flusher: Flusher,
                 max_backlog: int) -> None:
        super().__init__(peer)
        self.sock = sock
        self.format = TEXT  # until the first byte says otherwise (reader.py)
        self.output = SocketOutput(sock, flusher, max_backlog, peer)
        # The bus calls deliver once per member per batch: straight to the output, one call
        # frame less on the fan-out's hot path (the method below documents the seam).
        self.deliver = self.output.deliver  # type: ignore[method-assign]
        #: set once its reader thread is done with it (the door waits for it when stopping)
        self.finished = threading.Event()
        #: counted by the door among the connections still registering (door.unregistered)
        self.registering = False

    @property
    def mode(self) -> str:
        """"json" or "text"."""
        return "json" if self.format is JSON else "text"

    @property
    def dead(self) -> bool:
        return self.output.dead

    def use_json(self) -> None:
        self.format = JSON

    # ------------------------------------------------------------------ Member

    def deliver(self, data: bytes) -> None:
        self.output.deliver(data)

    def deliver_reply(self, data: bytes) -> None:
        self.output.send_paced(data)

    def hold_output(self) -> None:
        self.output.hold()

    def release_output(self, first: bytes) -> None:
        self.output.release(first)

    def end(self, reason: str | None) -> None:
        self.quit_reason = self.quit_reason or reason
        self.output.kill(reason)

    def finish(self) -> None:
        # Close our side only after the bye is out, so the client sees it. Bounded: this is
        # the client's own reader thread, nobody else waits.
        deadline = time.monotonic() + QUIT_DRAIN_SECONDS
        while self.output.backlog and time.monotonic() < deadline:
            time.sleep(0.01)
        self.output.close_write()

    def send_text(self, *lines: str, prompt: str = "") -> None:
        """Lines for a text-mode user, then maybe a prompt (no line end)."""
        self.deliver(("".join(line + "\r\n" for line in lines) + prompt).encode())

    def note_end(self, default: str) -> None:
        """Record why the connection ends, unless a reason is known already (the door or the
        output cut it off first)."""
        self.quit_reason = self.quit_reason or self.output.reason or default
