"""CHATHISTORY (IRCv3 `draft/chathistory`): a client fetches a channel's backlog itself, as a
`chathistory` batch. Turned into the hub's `history` request (with `after` or `before` a
chatkit id: msgids are chatkit ids), so history is read and sanitised in one place.

Supported: LATEST with `*`, a msgid or a timestamp; BEFORE and AFTER a msgid or a timestamp;
on a channel the client is in. A timestamp becomes the id of the first message at (BEFORE) or
after (AFTER, LATEST) it, found in the log a page at a time outside the hub's lock. Not
supported, and answered with FAIL: AROUND, BETWEEN, TARGETS; private-message targets get an
empty batch (chatkit keeps no private history by default).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from chatkit.protocol import Frame, FrameError, irc, name_key, normalize_room
from chatkit.protocol.irc import Message
from chatkit.server.doors.irc.formats import batch_ref
from chatkit.server.doors.irc.replies import CHATHISTORY_MAX

if TYPE_CHECKING:
    from chatkit.server.doors.irc.connection import IrcReader


def chathistory(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    sub, target = message.params[0].upper(), message.params[1]
    selector = message.params[2]
    limit_text = message.param(3, "50")

    def fail(code: str, text: str) -> None:
        conn.send_lines(irc.line("FAIL", "CHATHISTORY", code, sub, target, text,
                                 source=conn.server, trailing=True))

    if sub not in ("LATEST", "BEFORE", "AFTER"):
        conn.send_lines(irc.line("FAIL", "CHATHISTORY", "UNKNOWN_COMMAND", sub,
                                 "Only LATEST, BEFORE and AFTER are supported",
                                 source=conn.server, trailing=True))
        return
    try:
        limit = max(1, min(CHATHISTORY_MAX, int(limit_text)))
    except ValueError:
        fail("INVALID_PARAMS", "the limit must be a number")
        return
    anchor: int | None = None
    when: float | None = None
    if selector != "*" or sub != "LATEST":
        key, _, value = selector.partition("=")
        if key == "timestamp":
            when = parse_time(value)
        else:
            try:
                anchor = int(value.split(".")[0]) if key == "msgid" else None
            except ValueError:
                anchor = None
        if anchor is None and when is None:
            fail("INVALID_PARAMS", "give msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ")
            return
    if not irc.is_channel(target):
        _empty_batch(reader, target)
        return
    try:
        room = normalize_room(target)
    except FrameError:
        fail("INVALID_TARGET", "no such channel")
        return
    if name_key(room) not in conn.rooms:
        fail("INVALID_TARGET", "you are not on that channel")
        return
    if when is not None:  # a time, as the id of the first message at or after it
        first = first_id_from(reader, room, when, strict=sub != "BEFORE")
        published = reader.hub.bus.published_id
        if sub == "BEFORE":
            anchor = first if first is not None else published + 1
        else:  # AFTER and LATEST: the messages after that time
            anchor = first - 1 if first is not None else published
    frame: Frame = {"type": "history", "room": room, "limit": limit,
                    "ref": f"CHATHISTORY {target[:40]}"}
    if anchor is not None:
        frame["before" if sub == "BEFORE" else "after"] = anchor
    if "batch" in conn.caps:  # closed by the history_end the hub sends (replies.py)
        conn.send_lines(irc.line("BATCH", f"+{batch_ref(room)}", "chathistory",
                                 irc.channel(conn.rooms[name_key(room)].name),
                                 source=conn.server))
    reader.request(frame)


def _empty_batch(reader: IrcReader, target: str) -> None:
    conn = reader.irc
    if "batch" not in conn.caps:
        return
    ref = "p" + batch_ref(target)[1:]
    conn.send_lines(irc.line("BATCH", f"+{ref}", "chathistory", target, source=conn.server),
                    irc.line("BATCH", f"-{ref}", source=conn.server))


#: pages of the log read to turn a timestamp into an id (1000 messages each): 10,000 back,
#: a few milliseconds; bounded, since every client may ask (at its rate) as often as it likes
TIME_PAGES = 10


def parse_time(value: str) -> float | None:
    """An IRCv3 timestamp (`2026-12-06T14:02:03.120Z`, the fraction optional) as Unix time."""
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


def first_id_from(reader: IrcReader, room: str, when: float, *, strict: bool) -> int | None:
    """The id of the first stored message of `room` at `when` or later (after it, if
    `strict`); None when every message is older. Reads the log backwards a page at a time
    (ids and times rise together), outside the hub's lock, like every history read."""
    bus = reader.hub.bus
    up_to = bus.published_id
    found: int | None = None
    for _ in range(TIME_PAGES):
        rows = bus.room_history(room, limit=CHATHISTORY_MAX, after=None, up_to=up_to)
        if not rows:
            return found
        later = [row.id for row in rows if (row.ts > when if strict else row.ts >= when)]
        if len(later) < len(rows):  # the boundary is on this page
            return later[0] if later else found
        found = rows[0].id
        up_to = rows[0].id - 1
    return found
