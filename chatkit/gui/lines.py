"""What the desktop client shows for an event, and where: pure, no Qt.

Owns: `ChatLine` (one shown line: styled runs of plain text plus what the attention rules
need), `line_for` (a frame as a line, drawn by the terminal client's own renderer,
`chatkit.client.render.render_event`, so both views word and colour everything alike: same
nick colours, `/me` actions, dimmed notices, replayed history with its date) and
`destinations` (which conversations a frame belongs to: a room, a private conversation, or
the one in view).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chatkit.client.render import View, render_event
from chatkit.protocol import Frame, name_key

#: Frames that are part of one room's conversation.
ROOM_FRAMES = frozenset({"message", "join", "part", "joined", "history_end", "presence"})
#: Frames about a person, shown in every room they were in.
PERSON_FRAMES = frozenset({"quit", "nick"})


@dataclass(frozen=True)
class ChatLine:
    """One line as shown: (style, text) runs in the terminal renderer's style classes (the
    delegate maps them to Qt formats), and the facts attention needs. Always plain text."""

    runs: tuple[tuple[str, str], ...]
    mention: bool = False
    private: bool = False
    own: bool = False
    history: bool = False
    kinds: frozenset[str] = frozenset()

    @property
    def plain(self) -> str:
        return "".join(text for _style, text in self.runs)


def line_for(frame: Frame, me: str, room: str | None,
             ignored: frozenset[str] = frozenset()) -> ChatLine | None:
    """`frame` as shown in the conversation of `room` (None: a private one), or None when it
    is not shown (an ignored nick, a `pong`). Peer text is sanitised by the renderer."""
    rendered = render_event(frame, View(me=me, current_room=room, ignored=ignored))
    if rendered is None:
        return None
    runs = tuple((str(style), str(text)) for style, text, *_ in rendered.fragments)
    return ChatLine(runs, mention=rendered.mention, private=rendered.private,
                    own=rendered.own, history="history" in rendered.kinds,
                    kinds=frozenset(rendered.kinds))


def local_line(text: str, style: str = "class:status") -> ChatLine:
    """A line the client itself says (help, command results)."""
    rendered = render_event({"type": "status", "level": "info", "text": text}, View())
    assert rendered is not None
    runs = tuple((style if s == "class:status" else str(s), str(t))
                 for s, t, *_ in rendered.fragments)
    return ChatLine(runs, kinds=frozenset({"status"}))


@dataclass(frozen=True)
class Destination:
    """A conversation: a room (`private` False) or a private one with `name`."""

    name: str
    private: bool = False

    @property
    def key(self) -> str:
        return ("@" if self.private else "#") + name_key(self.name)


def destinations(frame: Frame, me: str, rooms_of: Mapping[str, list[str]]
                 ) -> list[Destination] | None:
    """Where `frame` is shown: its room, its private conversation, every room a person who
    quit or was renamed was in (`rooms_of`: name_key(nick) -> rooms, as seen before the
    frame), or None for the conversation in view (replies, notices, errors, status)."""
    kind = frame.get("type")
    if kind in ROOM_FRAMES or (kind == "topic" and frame.get("nick") is not None):
        room = frame.get("room")
        return [Destination(room)] if isinstance(room, str) else None
    if kind == "private":
        sender, to = str(frame.get("from", "")), str(frame.get("to", ""))
        other = to if name_key(sender) == name_key(me) else sender
        return [Destination(other, private=True)] if other else None
    if kind in PERSON_FRAMES:
        who = frame.get("nick") if kind == "quit" else frame.get("old")
        if not isinstance(who, str):
            return None
        rooms = rooms_of.get(name_key(who), [])
        if kind == "nick" and name_key(who) == name_key(me):
            rooms = rooms_of.get("", [])  # our own rename: every room we are in
        return [Destination(room) for room in rooms] or None
    return None
