"""The chatkit wire protocol, version 1 (docs/protocol.md): the one place that knows it.

Owns: frame encoding and decoding, line splitting with a size bound, telnet byte filtering,
text sanitising, nickname and room validation, the command table, parsing of `/command` lines,
and rendering of server frames as the readable lines of text mode.
The server, the clients and discovery import from here; nothing here does I/O.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_PORT = 12345
DEFAULT_ROOM = "lobby"

MAX_FRAME = 8192  # bytes, line ending included
MAX_TEXT = 2000  # characters of a message, action, topic or reason
MAX_NICK = 24
MAX_ROOM = 32
MAX_REF = 64

#: How long the server waits for a client's first byte before assuming a human (text mode).
SNIFF_SECONDS = 0.5

Frame = dict[str, Any]


class FrameError(ValueError):
    """A frame or line that breaks the protocol; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- encoding


# Built once: json.dumps with options builds a new encoder per call, a cost on the fan-out path.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# JSONEncoder.encode also builds the C encoder on every call (a third of its time for a chat
# message); this is that same C encoder, made once. Our frames are trees we build ourselves,
# so the cycle check it would skip (`markers=None`) cannot matter. Absent C accelerations,
# the plain encoder does the job.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = None if _c_make_encoder is None else _c_make_encoder(
    None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)


def encode(frame: Frame) -> bytes:
    """One frame as one UTF-8 JSON line. Non-ASCII stays readable (`ensure_ascii=False`)."""
    if _C_ENCODE is None:
        return (_ENCODER.encode(frame) + "\n").encode()
    return ("".join(_C_ENCODE(frame, 0)) + "\n").encode()


def encode_with_ref(encoded: bytes, ref: object) -> bytes:
    """`encode({**frame, "ref": ref})`, given `encoded = encode(frame)` of a frame without `ref`.

    A sender's echo differs from everyone else's copy only by `ref`, which comes last in the
    object; splicing it in spares serialising every message twice (the fan-out hot path).
    """
    tail = b"%d" % ref if type(ref) is int else _ENCODER.encode(ref).encode()
    return b'%s,"ref":%s}\n' % (encoded[:-2], tail)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: object) -> bool:
    pending = [value]  # a loop, not recursion: whatever depth json.loads accepted is fine
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def decode(line: bytes | str) -> Frame:
    """Parse one JSON line into a frame with a string `type`, or raise FrameError."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("bad_utf8", "frame is not valid UTF-8") from None
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):
        raise FrameError("bad_frame", "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    # A lone surrogate can only come from a `\ud800`-style escape (the line itself was strict
    # UTF-8), so only frames with escapes are searched. Such a string is not text: it cannot
    # be encoded, stored or compared, wherever it went next.
    if "\\u" in line and _has_lone_surrogate(frame):
        raise FrameError("bad_frame", "frame holds an unpaired surrogate escape (\\ud800-"
                                      "\\udfff), which is not text")
    if not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", "frame has no string field 'type'")
    ref = frame.get("ref")
    if ref is not None and not (
        (isinstance(ref, str) and len(ref) <= MAX_REF)
        or (isinstance(ref, int) and not isinstance(ref, bool))
    ):
        raise FrameError("bad_frame", f"'ref' must be a string of at most {MAX_REF} characters "
                                      "or an integer")
    return frame


def field(frame: Frame, name: str, kind: type, *, required: bool = True, default: Any = None
          ) -> Any:
    """Fetch a typed field of a client frame, or raise FrameError(bad_frame)."""
    value = frame.get(name)
    if value is None:
        if required:
            raise FrameError("bad_frame", f"'{frame.get('type')}' frame needs field '{name}'")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("bad_frame", f"field '{name}' must be {kind.__name__}")
    if kind is int and not _INT64_MIN <= value <= _INT64_MAX:  # what SQLite and ids hold
        raise FrameError("bad_frame", f"field '{name}' is out of range")
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- byte streams


class LineSplitter:
    """Split a byte stream into lines bounded by MAX_FRAME.

    LF, CR and CRLF all end a line (so an empty line may appear between CR and LF; callers skip
    empty lines). NUL bytes are dropped. A line longer than the limit is reported once as
    `FrameError("frame_too_long")` in the output and discarded up to its end.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | FrameError]:
        """Yield each complete line (without its ending) or an error for an oversized one."""
        if b"\0" in data:
            data = data.replace(b"\0", b"")
        self._buffer += data
        if b"\n" in data and b"\r" not in data and not self._discarding:
            # The common case (a JSON client sending LF-ended lines), split in one call; the
            # buffer never holds a CR here: the loop below ends a line at every CR it sees.
            *lines, rest = bytes(self._buffer).split(b"\n")
            self._buffer = bytearray(rest)
            for line in lines:
                yield _too_long(self.max_frame) if len(line) + 1 > self.max_frame else line
        while True:
            end = _find_line_end(self._buffer)
            if end < 0:
                if len(self._buffer) >= self.max_frame:
                    if not self._discarding:
                        yield _too_long(self.max_frame)
                    self._discarding = True
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if end + 1 > self.max_frame:
                yield _too_long(self.max_frame)
                continue
            yield line


def _find_line_end(buffer: bytearray) -> int:
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r", 0, lf if lf >= 0 else len(buffer))
    return cr if cr >= 0 else lf


def _too_long(limit: int) -> FrameError:
    return FrameError("frame_too_long", f"line longer than {limit} bytes was discarded")


_IAC, _SB, _SE = 255, 250, 240
_WILL_WONT_DO_DONT = range(251, 255)


class TelnetFilter:
    """Remove telnet negotiation (IAC sequences) from a byte stream, across chunk boundaries.

    Telnet clients send `IAC` (0xFF) commands, for instance when the user presses Ctrl-C; in a
    UTF-8 stream those bytes are never text, so they are dropped rather than decoded.
    """

    def __init__(self) -> None:
        self._state = "data"

    def feed(self, data: bytes) -> bytes:
        if _IAC not in data and self._state == "data":
            return data
        out = bytearray()
        for byte in data:
            state = self._state
            if state == "data":
                if byte == _IAC:
                    self._state = "iac"
                else:
                    out.append(byte)
            elif state == "iac":
                if byte in _WILL_WONT_DO_DONT:
                    self._state = "option"
                elif byte == _SB:
                    self._state = "sb"
                else:  # two-byte command, or IAC IAC (a literal 0xFF, never valid UTF-8)
                    self._state = "data"
            elif state == "option":
                self._state = "data"
            elif state == "sb":
                if byte == _IAC:
                    self._state = "sb_iac"
            elif state == "sb_iac":
                self._state = "data" if byte == _SE else "sb"
        return bytes(out)


# --------------------------------------------------------------------------- text and names

# Zero-width and bidirectional formatting characters that can hide or reorder text.
_INVISIBLE = {
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\u00ad",
}


def sanitize_text(text: str) -> str:
    """Remove what could control a terminal or disguise text; keep ordinary Unicode.

    Drops C0 controls (tab becomes a space, so ESC sequences lose their ESC and become visible
    harmless text), DEL, C1 controls, bidirectional overrides and zero-width characters, and
    every other invisible format character (category Cf: tag characters, invisible operators).
    """
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        if char == "\t":
            out.append(" ")
        elif char in _INVISIBLE:
            continue
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            continue
        else:
            out.append(char)
    return "".join(out)


def sanitize_frame(value: Any) -> Any:
    """A copy of a frame with every string sanitised, however deeply nested."""
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {key: sanitize_frame(item) for key, item in value.items()}
    if isinstance(value, list):
        return [sanitize_frame(item) for item in value]
    return value


def clean_text(text: str, what: str = "text", *, allow_empty: bool = False) -> str:
    """Sanitise and bound a message text, raising FrameError when it cannot be sent."""
    text = sanitize_text(text).strip()
    if not text and not allow_empty:
        raise FrameError("empty_text", f"{what} is empty")
    if len(text) > MAX_TEXT:
        raise FrameError("text_too_long", f"{what} longer than {MAX_TEXT} characters")
    return text


_NAME_REST = re.compile(r"^[\w.\-]*$")


#: Alphabets with letters that look like Latin ones (Cyrillic а, Greek ο, Armenian օ, Cherokee
#: Ꭺ, Coptic ⲟ, Lisu ꓮ). A name mixing them is how one poses as another (Cyrillic `аlice` for
#: `alice`), so it is refused; names in one alphabet, and mixes of other scripts (Han with
#: Hiragana or Katakana, for instance), are fine.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC",
                                "LISU"})


def _mixed_lookalike_scripts(name: str) -> str:
    """The look-alike scripts a name's letters come from ("Cyrillic and Latin"), when there is
    more than one; "" otherwise."""
    if name.isascii():
        return ""
    scripts = {script for char in name if char.isalpha()
               if (script := unicodedata.name(char, "").split(" ", 1)[0])
               in _LOOKALIKE_SCRIPTS}
    return " and ".join(script.title() for script in sorted(scripts)) if len(scripts) > 1 else ""


def normalize_nick(nick: str) -> str:
    """Validate a nickname and return its NFKC form, or raise FrameError(bad_nick)."""
    nick = unicodedata.normalize("NFKC", nick.strip())
    if not nick:
        raise FrameError("bad_nick", "nickname is empty")
    if len(nick) > MAX_NICK:
        raise FrameError("bad_nick", f"nickname longer than {MAX_NICK} characters")
    if not (nick[0].isalpha() or nick[0] == "_") or not _NAME_REST.match(nick) \
            or sanitize_text(nick) != nick:
        raise FrameError(
            "bad_nick",
            f"invalid nickname {nick!r}: start with a letter, then letters, digits, _ - .",
        )
    if mixed := _mixed_lookalike_scripts(nick):
        raise FrameError("bad_nick", f"nickname {nick!r} mixes {mixed} letters, which look "
                                     "alike: use one alphabet")
    return nick


def normalize_room(room: str) -> str:
    """Validate a room name (a leading '#' is dropped) and return its NFKC form."""
    room = unicodedata.normalize("NFKC", room.strip())
    if room.startswith("#"):
        room = room[1:]
    if not room:
        raise FrameError("bad_room", "room name is empty")
    if len(room) > MAX_ROOM:
        raise FrameError("bad_room", f"room name longer than {MAX_ROOM} characters")
    if not _NAME_REST.match(room) or sanitize_text(room) != room:
        raise FrameError("bad_room", f"invalid room name {room!r}: use letters, digits, _ - .")
    if mixed := _mixed_lookalike_scripts(room):
        raise FrameError("bad_room", f"room name {room!r} mixes {mixed} letters, which look "
                                     "alike: use one alphabet")
    return room


def name_key(name: str) -> str:
    """The key under which nicknames and rooms are unique (case-insensitive)."""
    return name.casefold()


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    help: str

    def as_frame(self) -> Frame:
        return {"name": self.name, "usage": self.usage, "help": self.help}


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("join", "/join ROOM", "Join ROOM (created if needed) and make it current"),
    CommandSpec("part", "/part [ROOM] [REASON]", "Leave ROOM (default: the current room)"),
    CommandSpec("rooms", "/rooms", "List rooms with member counts and topics"),
    CommandSpec("msg", "/msg NICK TEXT", "Send a private message to NICK"),
    CommandSpec("nick", "/nick NEW", "Change your nickname"),
    CommandSpec("who", "/who [ROOM]", "List who is in ROOM, or everyone connected"),
    CommandSpec("me", "/me ACTION", "Send an action to the current room"),
    CommandSpec("topic", "/topic [TEXT]", "Show or set the topic of the current room"),
    CommandSpec("history", "/history [N]", "Show the last N messages of the current room"),
    CommandSpec("help", "/help", "List the commands"),
    CommandSpec("quit", "/quit [REASON]", "Leave the server"),
    CommandSpec("exit", "/exit", "Leave the server (same as /quit)"),
)
COMMAND_NAMES = frozenset(spec.name for spec in COMMANDS)


def command_list() -> list[Frame]:
    """The command table as sent in `welcome` and `help` frames."""
    return [spec.as_frame() for spec in COMMANDS]


def parse_command(line: str, current_room: str | None) -> Frame:
    """Turn a `/command args` line into the equivalent JSON-mode client frame.

    `current_room` is where room-scoped commands apply when no room is named. Raises FrameError
    with code `unknown_command` or `bad_frame` (with the usage) for a wrong line.
    """
    name, _, rest = line[1:].partition(" ")
    name = name.lower()
    rest = rest.strip()
    if name not in COMMAND_NAMES:
        raise FrameError("unknown_command", f"unknown command /{name}; type /help for the list")
    usage = next(spec.usage for spec in COMMANDS if spec.name == name)

    def need_room() -> str:
        if current_room is None:
            raise FrameError("not_in_room", "you are in no room; /join ROOM first")
        return current_room

    def usage_error() -> FrameError:
        return FrameError("bad_frame", f"usage: {usage}")

    if name == "join":
        if not rest or " " in rest:
            raise usage_error()
        return {"type": "join", "room": rest}
    if name == "part":
        first, _, reason = rest.partition(" ")
        if first:
            return {"type": "part", "room": first, "reason": reason.strip() or None}
        return {"type": "part", "room": need_room(), "reason": None}
    if name == "msg":
        to, _, text = rest.partition(" ")
        if not to or not text.strip():
            raise usage_error()
        return {"type": "privmsg", "to": to, "text": text}
    if name == "nick":
        if not rest or " " in rest:
            raise usage_error()
        return {"type": "nick", "nick": rest}
    if name == "who":
        return {"type": "who", "room": rest or None}
    if name == "me":
        if not rest:
            raise usage_error()
        return {"type": "me", "room": need_room(), "text": rest}
    if name == "topic":
        return {"type": "topic", "room": need_room(), "text": rest or None}
    if name == "history":
        # isdecimal, not isdigit: "²" is a digit int() refuses; and a bounded length, since
        # int() refuses over 4300 digits
        if rest and not (rest.isdecimal() and len(rest) <= 9 and int(rest) > 0):
            raise usage_error()
        return {"type": "history", "room": need_room(), "limit": int(rest or 50)}
    if name in ("quit", "exit"):
        return {"type": "quit", "reason": rest or None}
    return {"type": name}  # rooms, help


# --------------------------------------------------------------------------- text mode


def render_text(frame: Frame, me: str | None = None) -> list[str]:
    """The readable lines a text-mode user sees for one server frame (no line endings)."""
    kind = frame.get("type")
    if frame.get("history") and kind in ("message", "topic"):
        when = time.strftime("%H:%M", time.localtime(frame["ts"]))
        if kind == "topic":
            return [f"[{frame['room']} {when}] *** {frame['nick']} set the topic: "
                    f"{frame.get('text') or ''}"]
        if frame.get("action"):
            return [f"[{frame['room']} {when}] * {frame['nick']} {frame['text']}"]
        return [f"[{frame['room']} {when}] <{frame['nick']}> {frame['text']}"]
    if kind == "history_end":
        count = frame.get("count", 0)
        return [f"*** end of history of {frame['room']} ({count} message"
                f"{'s' if count != 1 else ''})"] if count else []
    if kind == "message":
        if frame.get("action"):
            return [f"[{frame['room']}] * {frame['nick']} {frame['text']}"]
        return [f"[{frame['room']}] <{frame['nick']}> {frame['text']}"]
    if kind == "private":
        if me is not None and name_key(frame["from"]) == name_key(me):
            return [f"[pm -> {frame['to']}] {frame['text']}"]
        return [f"[pm] <{frame['from']}> {frame['text']}"]
    if kind == "join":
        return [f"*** {frame['nick']} joined {frame['room']}"]
    if kind == "part":
        reason = f" ({frame['reason']})" if frame.get("reason") else ""
        return [f"*** {frame['nick']} left {frame['room']}{reason}"]
    if kind == "quit":
        reason = f" ({frame['reason']})" if frame.get("reason") else ""
        return [f"*** {frame['nick']} quit{reason}"]
    if kind == "nick":
        if me is not None and name_key(frame["new"]) == name_key(me):
            return [f"*** you are now known as {frame['new']}"]
        return [f"*** {frame['old']} is now known as {frame['new']}"]
    if kind == "topic":
        if frame.get("nick") is None:
            text = frame.get("text")
            return [f"*** topic of {frame['room']}: {text}" if text
                    else f"*** {frame['room']} has no topic"]
        if frame.get("text"):
            return [f"*** {frame['nick']} set the topic of {frame['room']}: {frame['text']}"]
        return [f"*** {frame['nick']} cleared the topic of {frame['room']}"]
    if kind == "joined":
        members = frame.get("members", [])
        lines = [f"*** you joined {frame['room']} ({len(members)} here: {', '.join(members)})"]
        if frame.get("topic"):
            lines.append(f"*** topic: {frame['topic']}")
        return lines
    if kind == "who":
        users = frame.get("users", [])
        if frame.get("room"):
            return [f"*** {len(users)} in {frame['room']}: "
                    + ", ".join(user["nick"] for user in users)]
        return [f"*** {len(users)} connected: "
                + ", ".join(f"{u['nick']} ({', '.join(u['rooms']) or 'no room'})" for u in users)]
    if kind == "rooms":
        rooms = frame.get("rooms", [])
        lines = [f"*** {len(rooms)} room{'s' if len(rooms) != 1 else ''}:"]
        for room in rooms:
            topic = f" - {room['topic']}" if room.get("topic") else ""
            lines.append(f"***   {room['name']} ({room['members']}){topic}")
        return lines
    if kind == "help":
        commands = frame.get("commands", [])
        width = max((len(c["usage"]) for c in commands), default=0)
        return ["*** commands:"] + [f"***   {c['usage']:<{width}}  {c['help']}" for c in commands]
    if kind == "notice":
        return [f"*** {frame['text']}"]
    if kind == "error":
        return [f"!!! {frame['message']}"]
    if kind == "bye":
        return [f"*** bye: {frame.get('reason') or 'disconnected'}"]
    if kind == "welcome":
        return [f"*** welcome to {frame['server']}, {frame['nick']}! "
                "Type to talk, /help for commands."]
    return []
