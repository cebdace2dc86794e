"""How the interactive client shows things: server frames and local status as styled lines.

Owns: the colour palette and style sheet, the stable colour of each nick, mention detection,
turning one event into prompt_toolkit `FormattedText` (plus the facts the bell needs), and the
bottom toolbar's text.
Every string that came from a peer goes through `chatkit.protocol.sanitize_text` first and is
emitted as text, so nothing a peer sends can reach the terminal as an escape sequence.
Pure functions: no I/O, no prompt_toolkit application.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.styles import Style
from prompt_toolkit.utils import get_cwidth

from chatkit.client.lines import quote_line
from chatkit.protocol import Frame, name_key, render_text, sanitize_frame
from chatkit.protocol.sanitize import sane_ts

#: Nick colours: readable on dark and light backgrounds; red is kept for errors.
NICK_COLOURS: tuple[str, ...] = (
    "ansigreen", "ansiblue", "ansimagenta", "ansicyan", "ansiyellow",
    "ansibrightgreen", "ansibrightblue", "ansibrightmagenta", "ansibrightcyan", "#d78700",
    "#5f87d7", "#af5fd7",
)

STYLE = Style.from_dict({
    "timestamp": "#888888",
    "room": "#888888",
    "nick": "bold",
    "own": "bold",
    "text": "",
    "history": "#a8a8a8",
    "action": "italic",
    "pm": "ansimagenta",
    "pm.tag": "ansimagenta bold",
    "notice": "ansicyan",
    "error": "ansired bold",
    "status": "ansiyellow",
    "mention": "bg:ansiyellow fg:ansiblack",
    "help.usage": "bold",
    "bottom-toolbar": "noreverse bg:#303030 fg:#d0d0d0",
    "bottom-toolbar.server": "bold",
    "bottom-toolbar.room": "fg:ansibrightcyan bold",
    "bottom-toolbar.ok": "fg:ansibrightgreen",
    "bottom-toolbar.bad": "fg:ansibrightred bold",
})


def nick_colour(nick: str) -> str:
    """A colour for `nick` that is the same in every session and for every spelling case."""
    return NICK_COLOURS[zlib.crc32(name_key(nick).encode()) % len(NICK_COLOURS)]


def mentions(text: str, nick: str) -> bool:
    """Whether `text` names `nick` as a word (case-insensitive), as in `bob: hi` or `hi bob!`."""
    if not nick:
        return False
    pattern = rf"(?<![\w.\-]){re.escape(nick)}(?![\w\-])"
    return re.search(pattern, text, re.IGNORECASE) is not None


@dataclass
class View:
    """What the renderer needs to know about the client: who we are and what we hide."""

    me: str = ""
    current_room: str | None = None
    ignored: frozenset[str] = frozenset()  # name_key of each ignored nick

    def is_ignored(self, nick: object) -> bool:
        return isinstance(nick, str) and name_key(nick) in self.ignored


@dataclass
class Rendered:
    """One event ready to print, and what kind of event it was (for the bell)."""

    fragments: FormattedText
    mention: bool = False
    private: bool = False
    own: bool = False
    kinds: set[str] = field(default_factory=set)

    @property
    def plain(self) -> str:
        return "".join(text for _style, text, *_ in self.fragments)


def timestamp(ts: object = None, form: str = "%H:%M") -> str:
    """Local wall-clock time of a server timestamp (or now, when it is not a number)."""
    seconds = sane_ts(ts)  # a number localtime cannot take (-1e20): now, not a traceback
    return time.strftime(form, time.localtime(seconds if seconds is not None else time.time()))


def collapse_whitespace(value: object) -> object:
    """A frame's strings with every run of whitespace (spaces, U+2028, ideographic spaces...)
    made one space: padding cannot push text onto a line of its own (see `wrap_fragments`)."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return {key: collapse_whitespace(item) for key, item in value.items()}
    if isinstance(value, list):
        return [collapse_whitespace(item) for item in value]
    return value


def wrap_fragments(fragments: FormattedText, width: int | None) -> FormattedText:
    """Styled lines broken to `width` columns by us, not by the terminal, with every
    continuation line indented under the first line's timestamp: a long message can never
    wrap into something that starts at column 0 like `01:27 <alice> ...`. Breaks at the last
    space that fits, else inside the word; lines the fragments already break keep their own
    padding. `width` None (no terminal size): returned as they are."""
    if not width or width < 2:
        return fragments
    first = fragments[0][1] if fragments else ""
    indent = max(1, min(len(first) if first.endswith(" ") else 1, width // 3))
    out: list[tuple[str, str]] = []
    line: list[tuple[str, str]] = []  # (style, char) of the line being filled
    column = 0
    for style, text, *_ in fragments:
        for char in text:
            if char == "\n":
                out.extend(line)
                out.append(("", "\n"))
                line, column = [], 0
                continue
            cells = get_cwidth(char)
            if column + cells > width and column > indent:
                # break after the last space of this line past the indent, if there is one
                cut = next((i for i in range(len(line) - 1, indent, -1) if line[i][1] == " "),
                           None)
                rest = line[cut + 1:] if cut is not None else []
                out.extend(line[:cut] if cut is not None else line)
                out.append(("", "\n" + " " * indent))
                line = rest
                column = indent + sum(get_cwidth(c) for _s, c in rest)
            line.append((style, char))
            column += cells
    out.extend(line)
    merged: list[tuple[str, str]] = []
    for style, text in out:  # one fragment per run of one style
        if merged and merged[-1][0] == style:
            merged[-1] = (style, merged[-1][1] + text)
        else:
            merged.append((style, text))
    return FormattedText(merged)


def _nick(nick: str, own: bool) -> tuple[str, str]:
    return ("class:own" if own else f"class:nick fg:{nick_colour(nick)}", nick)


def render_event(frame: Frame, view: View) -> Rendered | None:
    """Styled line(s) for one event, or None when it is not shown (ignored nick, pong...)."""
    # Frames from a server were sanitised on arrival (Connection.recv); the renderer is the
    # last step before the terminal and draws local frames too, so it guarantees it itself.
    frame = collapse_whitespace(sanitize_frame(frame))  # type: ignore[assignment]
    kind = frame.get("type")
    me = view.me
    # Replayed from the server's log: rendered like the live line, dimmed, with its date.
    history = bool(frame.get("history"))
    stamp = timestamp(frame.get("ts"), "%m-%d %H:%M" if history else "%H:%M")
    out: list[tuple[str, str]] = [("class:timestamp", stamp + " ")]

    if kind == "message":
        nick = str(frame.get("nick", "?"))
        if view.is_ignored(nick):
            return None
        room = str(frame.get("room", ""))
        own = bool(me) and name_key(nick) == name_key(me)
        text = str(frame.get("text", ""))
        mention = not own and mentions(text, me)
        if room and (view.current_room is None or name_key(room) != name_key(view.current_room)):
            out.append(("class:room", f"[{room}] "))
        text_style = "class:mention" if mention else "class:text"
        if history:  # dimmed, never a mention
            mention = False
            text_style = "class:history"
        if frame.get("action"):
            out += [("class:action", "* "), _nick(nick, own),
                    (f"class:action {text_style}", f" {text}")]
        else:
            out += [("", "<"), _nick(nick, own), ("", "> "), (text_style, text)]
        kinds = {"history"} if frame.get("history") else {"message"}
        return Rendered(FormattedText(out), mention=mention, own=own, kinds=kinds)

    if kind == "private":
        sender = str(frame.get("from", "?"))
        own = bool(me) and name_key(sender) == name_key(me)
        if not own and view.is_ignored(sender):
            return None
        text = str(frame.get("text", ""))
        if own:
            out += [("class:pm.tag", "[pm -> "), _nick(str(frame.get("to", "?")), False),
                    ("class:pm.tag", "] "), ("class:pm", text)]
        else:
            out += [("class:pm.tag", "[pm] <"), _nick(sender, False), ("class:pm.tag", "> "),
                    ("class:pm", text)]
        return Rendered(FormattedText(out), private=not own and not history, own=own,
                        kinds={"history"} if history else {"private"})

    if kind in ("join", "part", "quit") and view.is_ignored(frame.get("nick")):
        return None
    if kind == "nick" and view.is_ignored(frame.get("old")):
        return None

    if kind == "error":
        message = frame.get("message", frame.get("code", "error"))
        line = frame.get("line")  # the user's line the server refused (the link adds it)
        if isinstance(line, str):
            message = f"not sent: {quote_line(line)}: {message}"
        out.append(("class:error", f"!!! {message}"))
        return Rendered(FormattedText(out), kinds={"error"})

    if kind == "status":  # the client's own news: connection lost, reconnecting, ...
        style = "class:error" if frame.get("level") == "error" else "class:status"
        out.append((style, f"-!- {frame.get('text', '')}"))
        return Rendered(FormattedText(out), kinds={"status"})

    # A server frame was checked on arrival (Connection.recv): every field is there.
    # (The text-mode form of a history frame carries its own room and time: not wanted here.)
    live = {key: value for key, value in frame.items() if key != "history"}
    lines = render_text(live, me or None)
    if not lines:
        return None
    pad = " " * len(out[0][1])
    style = "class:notice class:history" if history else "class:notice"
    for index, line in enumerate(lines):
        if index:
            out.append(("", "\n" + pad))
        out.append((style, line))
    return Rendered(FormattedText(out), kinds={"history"} if history else {"notice"})


def render_lines(lines: Iterable[str], style: str = "class:notice") -> FormattedText:
    """Local text (help, settings) as styled lines with a timestamp on the first."""
    out: list[tuple[str, str]] = [("class:timestamp", timestamp() + " ")]
    pad = " " * len(out[0][1])
    for index, line in enumerate(lines):
        if index:
            out.append(("", "\n" + pad))
        out.append((style, line))
    return FormattedText(out)


@dataclass
class ToolbarFacts:
    """What the bottom toolbar shows, read from the session at each redraw."""

    server: str
    address: str
    tls: str | None
    room: str | None
    members: list[str]
    state: str
    retry_at: float | None  # time.monotonic() of the next reconnecting attempt
    queued: int
    topic: str | None = None
    width: int | None = None  # the terminal's columns; None: no limit
    #: people in the room as the server counts them (a crowd has more than `members` names)
    count: int | None = None


Segment = list[tuple[str, str]]


def _state_segment(facts: ToolbarFacts) -> Segment:
    state = facts.state
    if state == "connected":
        segment = [("class:bottom-toolbar.ok", "connected")]
    elif state == "reconnecting" and facts.retry_at is not None:
        seconds = max(0, round(facts.retry_at - time.monotonic()))
        segment = [("class:bottom-toolbar.bad", f"reconnecting in {seconds} s")]
    elif state == "connecting":
        segment = [("class:bottom-toolbar.bad", "connecting…")]
    elif state == "failed":
        segment = [("class:bottom-toolbar.bad", "disconnected: gave up reconnecting")]
    else:
        segment = [("class:bottom-toolbar.bad", state)]
    if facts.queued and state == "connected":
        # paced to the server's announced rate: going out, just not all at once
        segment.append(("class:bottom-toolbar", f" sending {facts.queued} queued…"))
    elif facts.queued:
        segment.append(("class:bottom-toolbar.bad", f" ({facts.queued} queued)"))
    return segment


def _fit(segments: list[Segment], width: int | None) -> FormattedText:
    """Segments joined by " | ", most important first; what does not fit in `width` columns
    is cut from the end (with "…"), so the first segments always show."""
    parts: list[tuple[str, str]] = [("", " ")]
    room = None if width is None else width - 2  # the leading and trailing space
    for index, segment in enumerate(segments):
        if index:
            segment = [("", " | "), *segment]
        for style, text in segment:
            if room is not None and len(text) > room:
                if room > 1:
                    parts.append((style, text[:room - 1] + "…"))
                parts.append(("", " "))
                return FormattedText(parts)
            parts.append((style, text))
            if room is not None:
                room -= len(text)
    parts.append(("", " "))
    return FormattedText(parts)


def render_toolbar(facts: ToolbarFacts) -> FormattedText:
    """The connection state first (it must survive a narrow terminal), then the current room
    with its topic and its people, then the server; cut to `facts.width` from the end. While
    not connected the member list is not shown: it would be the one from before the loss."""
    segments: list[Segment] = [_state_segment(facts)]
    connected = facts.state == "connected"
    if facts.room:
        room: Segment = [("class:bottom-toolbar.room", facts.room)]
        if connected:
            count = facts.count if facts.count is not None else len(facts.members)
            room.append(("", f" ({count:,})"))
        segments.append(room)
        if facts.topic:
            segments.append([("", f"topic: {facts.topic}")])
        if connected and facts.members:
            names = ", ".join(facts.members)
            if len(names) > 40:
                names = names[:39] + "…"
            segments.append([("", f"here: {names}")])
    else:
        segments.append([("", "no room")])
    server: Segment = [("class:bottom-toolbar.server", facts.server or "?"),
                       ("", f" {facts.address}")]
    if facts.tls:
        server.append(("", f" [{facts.tls}]"))
    segments.append(server)
    return _fit(segments, facts.width)


def should_ring(bell: str, rendered: Rendered) -> bool:
    """Whether an event rings the bell under bell mode `bell` (see settings.BELL_MODES)."""
    if rendered.own or bell == "off":
        return False
    if bell == "all":
        return bool(rendered.kinds & {"message", "private"})
    if bell == "pm":
        return rendered.private
    return rendered.mention or rendered.private  # "mention": being addressed, privately or not
