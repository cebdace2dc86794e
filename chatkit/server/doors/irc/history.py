"""CHATHISTORY (IRCv3 `draft/chathistory`): a client fetches a channel's backlog itself, as a
`chathistory` batch. Turned into the hub's `history` request (with `after` or `before` a
chatkit id: msgids are chatkit ids), so history is read and sanitised in one place.

Supported: LATEST with `*` or a msgid, BEFORE and AFTER a msgid, on a channel the client is
in. Not supported, and answered with FAIL: timestamps as selectors, AROUND, BETWEEN, TARGETS,
and private-message targets (an empty batch: chatkit keeps no private history by default).
"""

from __future__ import annotations

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
    if selector != "*" or sub != "LATEST":
        key, _, value = selector.partition("=")
        try:
            anchor = int(value.split(".")[0]) if key == "msgid" else None
        except ValueError:
            anchor = None
        if anchor is None:
            fail("INVALID_PARAMS", "chatkit finds history by msgid (timestamps are not "
                                   "supported)")
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
