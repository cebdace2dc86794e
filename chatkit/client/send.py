"""`chatkit send`'s core: post lines to an existing room and wait until the server took each.

Owns: one short-lived connection (`chatkit.client.connection.Connection`), joining the room
without creating it or replaying its history, one `msg` (or `me`, for a `/me` line: lines are
read as piped `chatkit join` reads them) per non-empty line answered by its echo (the server's
acceptance), and leaving politely. No reconnecting: a script wants to know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chatkit.client.connection import CONNECT_TIMEOUT, Connection, pinned_note
from chatkit.client.lines import send_frame
from chatkit.errors import UnreachableError
from chatkit.protocol.events import JoinRequest


def send_messages(host: str, port: int, nick: str, room: str, lines: Iterable[str],
                  timeout: float = CONNECT_TIMEOUT, *, tls: bool = True,
                  insecure: bool = False, password: str | None = None,
                  expected_fingerprint: str | None = None,
                  notify: Callable[[str], None] | None = None) -> int:
    """Connect as `nick`, join an existing `room`, send each non-empty line, wait until the
    server has accepted every one (its echo), then quit. Returns the number sent.
    `notify` receives one-line notes for the user (a newly pinned certificate)."""
    conn = Connection.open(host, port, nick, room=None, timeout=timeout, tls=tls,
                           insecure=insecure, password=password,
                           expected_fingerprint=expected_fingerprint,
                           on_pin=(lambda c: notify(pinned_note(c))) if notify else None)
    sent = 0
    try:
        join: JoinRequest = {"type": "join", "room": room, "create": False, "history": 0}
        conn.request(dict(join), timeout)
        for line in lines:
            frame = send_frame(line, room)  # as piped `chatkit join` reads it: /me, //text
            if frame is None:
                continue
            conn.request(frame, timeout)
            sent += 1
    except TimeoutError as exc:
        raise UnreachableError(str(exc)) from None
    finally:
        conn.quit()
    return sent
