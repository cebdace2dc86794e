"""`chatkit send`'s core: post lines to an existing room and wait until the server took each.

Owns: one short-lived connection (`chatkit.client.connection.Connection`), joining the room
without creating it or replaying its history, as a quiet client (nobody sees it join or quit),
one `msg` (or `me`, for a `/me` line: lines are read as piped `chatkit join` reads them) per
non-empty line answered by its echo (the server's acceptance), and leaving politely. No
reconnecting: a script wants to know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chatkit.client.connection import CONNECT_TIMEOUT, Connection, pinned_note
from chatkit.client.lines import quote_line, send_frame
from chatkit.client.passwords import with_password
from chatkit.errors import RefusedError, UnreachableError
from chatkit.net.addresses import format_address
from chatkit.protocol.events import JoinRequest


def send_messages(host: str, port: int, nick: str, room: str, lines: Iterable[str],
                  timeout: float = CONNECT_TIMEOUT, *, tls: bool = True,
                  insecure: bool = False, password: str | None = None,
                  expected_fingerprint: str | None = None,
                  notify: Callable[[str], None] | None = None,
                  ask_password: Callable[[str], str | None] | None = None) -> int:
    """Connect as `nick`, join an existing `room`, send each non-empty line, wait until the
    server has accepted every one (its echo), then quit. Returns the number sent.
    `notify` receives one-line notes for the user (a newly pinned certificate);
    `ask_password` (a terminal) is asked when the server needs a password (`with_password`)."""
    conn = with_password(
        lambda given: Connection.open(
            host, port, nick, room=None, timeout=timeout, tls=tls, insecure=insecure,
            password=given, expected_fingerprint=expected_fingerprint,
            on_pin=(lambda c: notify(pinned_note(c))) if notify else None, quiet=True,
            identify=remembered_password(format_address(host, port), nick)),
        password, ask_password)
    sent = refused = 0
    try:
        join: JoinRequest = {"type": "join", "room": room, "create": False, "history": 0}
        conn.request(dict(join), timeout)
        for line in lines:
            frame = send_frame(line, room)  # as piped `chatkit join` reads it: /me, //text
            if frame is None:
                continue
            # One line at a time, each answered before the next: the pace is the server's
            # (it reads a client's lines no faster than its announced rate, never drops one).
            try:
                conn.request(frame, timeout)
            except RefusedError as exc:
                refused += 1  # refused for what it says: named, and the rest still go
                if notify is not None:
                    notify(f"not sent: {quote_line(str(frame.get('text', '')))}: {exc}")
                continue
            sent += 1
    except TimeoutError as exc:
        raise UnreachableError(str(exc)) from None
    finally:
        conn.quit()
    if refused:
        raise RefusedError(f"{refused} line(s) were refused by the server; {sent} sent")
    return sent


def remembered_password(server: str, nick: str) -> str | None:
    """The password `chatkit join` remembered (`/remember`) for account `nick` on `server`:
    a script posting as a registered nickname logs in with it."""
    from chatkit.client.accounts import Credentials

    saved = Credentials().get(server, nick)
    return saved[1] if saved is not None and saved[0].casefold() == nick.casefold() else None
