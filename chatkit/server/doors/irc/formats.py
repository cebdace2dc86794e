"""How the IRC door writes events: `IrcFormat`, the `WireFormat` of IRC members.

An event (a message, a join, a nick change) is rendered once per format with the sender's
prefix (`alice!alice@chatkit`) and shared by every IRC member of that format (the bus caches
bytes per format object). What a client negotiated (server-time, message-tags, batch,
echo-message) changes the bytes, so there is one format object per combination (`irc_format`),
made once and shared: at most 16, and in practice one or two. Numerics addressed to one member
(replies, errors) are rendered in chatkit/server/doors/irc/replies.py.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from chatkit.protocol import irc
from chatkit.protocol.irc import LINE_LIMIT, channel, line, split_text, wire

#: the host part of every user's prefix: chatkit never shows anyone's address
USER_HOST = "chatkit"
#: the capabilities that change what a member's bytes look like
RENDERING_CAPS = ("server-time", "message-tags", "batch", "echo-message")
#: the chatkit events an IRC member's own copy of is dropped unless it asked for echo-message
_ECHOED = frozenset({"message", "private"})


def prefix(nick: str) -> str:
    """The IRC source of a chatkit user: `nick!nick@chatkit`."""
    return f"{nick}!{nick}@{USER_HOST}"


def batch_ref(room: str) -> str:
    """The batch reference of a room's history replay: derived from the room, so the door that
    opens a batch and the format that closes it agree without sharing state."""
    return "h" + hashlib.sha1(room.casefold().encode()).hexdigest()[:12]


class IrcFormat:
    """One combination of rendering capabilities (see the module docstring). Stateless."""

    name = "irc"
    description = "IRC client"

    def __init__(self, server: str, caps: frozenset[str]) -> None:
        self.server = server  # the IRC server name: the source of numerics and notices
        self.caps = caps
        self.time = "server-time" in caps
        self.msgid = "message-tags" in caps
        self.batch = "batch" in caps
        self.echo = "echo-message" in caps

    # ------------------------------------------------------------------ WireFormat

    def encode(self, frame: Mapping[str, Any]) -> bytes:
        render = _EVENTS.get(frame.get("type", ""))
        return wire(*render(self, frame)) if render is not None else b""

    def encode_own(self, encoded: bytes, frame: Mapping[str, Any], ref: object, nick: str | None
                   ) -> bytes | None:
        kind = frame["type"]
        if kind in _ECHOED and not self.echo:
            # An IRC client shows what it sent itself, unless it asked for the echo; a private
            # message to oneself still arrives once, as the recipient's copy.
            if kind == "private" and frame["to"].casefold() == frame["from"].casefold():
                return encoded
            return None
        return encoded

    def encode_for(self, frame: Mapping[str, Any], nick: str | None) -> bytes:
        from chatkit.server.doors.irc.replies import render_reply

        lines = render_reply(self, frame, nick or "*")
        if lines is None:
            return self.encode(frame)
        return wire(*lines)

    # ------------------------------------------------------------------ pieces

    def tags(self, frame: Mapping[str, Any], piece: int = 0) -> dict[str, str | None]:
        """The tags an event carries for this format: `time` (server-time), `msgid`
        (message-tags; the chatkit id, `ID.N` for the Nth continuation of a long text) and
        `batch` for a history replay."""
        tags: dict[str, str | None] = {}
        if frame.get("history") and self.batch and frame.get("room"):
            tags["batch"] = batch_ref(frame["room"])
        if self.time and isinstance(frame.get("ts"), (int, float)):
            tags["time"] = irc.server_time(frame["ts"])
        if self.msgid and isinstance(frame.get("id"), int):
            tags["msgid"] = str(frame["id"]) if piece == 0 else f"{frame['id']}.{piece}"
        return tags

    def numeric(self, number: str, me: str, *params: str, trailing: bool = True) -> str:
        return line(number, me, *params, source=self.server, trailing=trailing)

    def notice(self, target: str, text: str, tags: dict[str, str | None] | None = None
               ) -> list[str]:
        """A server notice to `target`, in as many lines as it takes."""
        head = f":{self.server} NOTICE {target} :"
        return [line("NOTICE", target, piece, source=self.server, tags=tags, trailing=True)
                for piece in split_text(text, LINE_LIMIT - 2 - len(head.encode()))]

    def stamp_old(self, frame: Mapping[str, Any], text: str) -> str:
        """A replayed text for a client without server-time: its time goes in front."""
        if self.time or not frame.get("history"):
            return text
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(frame.get("ts") or 0)))
        return f"[{when}] {text}"


def _message(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    return _privmsg(fmt, frame, frame["nick"], channel(frame["room"]), frame["text"],
                    bool(frame.get("action")))


def _private(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    return _privmsg(fmt, frame, frame["from"], frame["to"], frame["text"], False)


def _privmsg(fmt: IrcFormat, frame: Mapping[str, Any], nick: str, target: str, text: str,
             is_action: bool) -> list[str]:
    """PRIVMSG lines of one text: as many as it takes to keep each within 512 bytes."""
    source = prefix(nick)
    text = fmt.stamp_old(frame, text)
    head = f":{source} PRIVMSG {target} :"
    if not is_action:  # the fan-out's hot path: one line, built directly
        whole = f"{head}{text}\r\n".encode()
        if len(whole) <= LINE_LIMIT:  # texts are sanitised: no CR, LF or NUL inside
            tags = fmt.tags(frame)
            return [irc.format_tags(tags) + whole[:-2].decode() if tags else
                    whole[:-2].decode()]
    budget = LINE_LIMIT - 2 - len(head.encode()) - (len(irc.ACTION_START) + 1 if is_action
                                                    else 0)
    return [line("PRIVMSG", target, irc.action(piece) if is_action else piece,
                 source=source, tags=fmt.tags(frame, number), trailing=True)
            for number, piece in enumerate(split_text(text, budget))]


def _join(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    return [line("JOIN", channel(frame["room"]), source=prefix(frame["nick"]),
                 tags=fmt.tags(frame))]


def _part(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    reason = frame.get("reason")
    params = [channel(frame["room"])]
    if reason:
        params.append(_fit_reason(f":{prefix(frame['nick'])} PART {params[0]} :", reason))
    return [line("PART", *params, source=prefix(frame["nick"]), tags=fmt.tags(frame),
                 trailing=bool(reason))]


def _quit(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    head = f":{prefix(frame['nick'])} QUIT :"
    reason = _fit_reason(head, frame.get("reason") or "Quit")
    return [line("QUIT", reason, source=prefix(frame["nick"]), tags=fmt.tags(frame),
                 trailing=True)]


def _nick(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    return [line("NICK", frame["new"], source=prefix(frame["old"]), tags=fmt.tags(frame))]


def _topic(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    target = channel(frame["room"])
    text = frame.get("text") or ""
    if frame.get("history"):  # not a change now: a notice saying what it was, and when
        said = f"{frame.get('nick') or 'someone'} set the topic: {text}" if text else \
            f"{frame.get('nick') or 'someone'} cleared the topic"
        return fmt.notice(target, fmt.stamp_old(frame, said), fmt.tags(frame))
    source = prefix(frame["nick"]) if frame.get("nick") else fmt.server
    head = f":{source} TOPIC {target} :"
    return [line("TOPIC", target, _fit_reason(head, text), source=source, tags=fmt.tags(frame),
                 trailing=True)]


def _presence(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    """The crowd rule's summary of arrivals and departures in a big room: JOIN and PART lines
    for the nicknames it names, a notice for the ones it does not."""
    target = channel(frame["room"])
    tags = fmt.tags(frame)
    lines = [line("JOIN", target, source=prefix(nick), tags=tags)
             for nick in frame.get("joined") or []]
    lines += [line("PART", target, source=prefix(nick), tags=tags)
              for nick in frame.get("left") or []]
    more_joined = int(frame.get("joined_count") or 0) - len(frame.get("joined") or [])
    more_left = int(frame.get("left_count") or 0) - len(frame.get("left") or [])
    if more_joined > 0 or more_left > 0:
        said = []
        if more_joined > 0:
            said.append(f"{more_joined} more joined")
        if more_left > 0:
            said.append(f"{more_left} more left")
        count = frame.get("count")
        now = f"; {count} people are in {target}" if isinstance(count, int) else ""
        lines += fmt.notice(target, " and ".join(said) + now)
    return lines


def _notice_event(fmt: IrcFormat, frame: Mapping[str, Any]) -> list[str]:
    """A notice to many (a moderation action: who did what to whom): a server NOTICE to the
    room's channel, or to everyone (`*`) for a server-wide one."""
    room = frame.get("room")
    target = channel(room) if isinstance(room, str) and room else "*"
    return fmt.notice(target, fmt.stamp_old(frame, str(frame.get("text") or "")),
                      fmt.tags(frame))


def _fit_reason(head: str, text: str) -> str:
    """A one-line text (a reason, a topic) cut to what fits after `head` in one IRC line."""
    return irc.fit_bytes(text, LINE_LIMIT - 2 - len(head.encode()))


_EVENTS = {
    "message": _message, "private": _private, "join": _join, "part": _part, "quit": _quit,
    "nick": _nick, "topic": _topic, "presence": _presence, "notice": _notice_event,
}

_formats: dict[tuple[str, frozenset[str]], IrcFormat] = {}
_formats_lock = threading.Lock()


def irc_format(server: str, caps: frozenset[str] | set[str]) -> IrcFormat:
    """The shared format for `server` and the rendering capabilities among `caps`."""
    key = (server, frozenset(cap for cap in caps if cap in RENDERING_CAPS))
    with _formats_lock:
        fmt = _formats.get(key)
        if fmt is None:
            fmt = _formats[key] = IrcFormat(*key)
        return fmt
