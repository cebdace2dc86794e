"""The command table and parsing of `/command args` lines into client frames."""

from __future__ import annotations

import functools

from chatkit.protocol.account_commands import (
    ACCOUNT_COMMAND_NAMES,
    ACCOUNT_COMMANDS,
    CommandSpec,
    parse_account_command,
)
from chatkit.protocol.constants import Frame
from chatkit.protocol.events import CommandInfo
from chatkit.protocol.framing import FrameError
from chatkit.protocol.names import normalize_nick, normalize_room

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
    *(spec for spec in ACCOUNT_COMMANDS if not spec.role),
)
#: every command, those of operators and admins included (`command_list` picks by role)
ALL_COMMANDS: tuple[CommandSpec, ...] = (
    *COMMANDS, *(spec for spec in ACCOUNT_COMMANDS if spec.role))
COMMAND_NAMES = frozenset(spec.name for spec in ALL_COMMANDS)


@functools.lru_cache(maxsize=8)  # a few role sets; built for every welcome otherwise
def command_list(roles: frozenset[str] = frozenset()) -> list[CommandInfo]:
    """The command table as sent in `welcome` and `help` frames: everyone's commands, and
    those of `roles` ("op", "admin"). One shared list per role set: not to be changed."""
    return [spec.as_frame() for spec in ALL_COMMANDS if not spec.role or spec.role in roles]


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
    usage = next(spec.usage for spec in ALL_COMMANDS if spec.name == name)

    def need_room() -> str:
        if current_room is None:
            raise FrameError("not_in_room", "you are in no room; /join ROOM first")
        return current_room

    def usage_error() -> FrameError:
        return FrameError("bad_frame", f"usage: {usage}")

    if name == "join":
        if not rest:
            raise usage_error()
        normalize_room(rest)  # a wrong name is refused with what is wrong with it
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
        if not rest:
            raise usage_error()
        normalize_nick(rest)
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
    if name in ACCOUNT_COMMAND_NAMES:
        return parse_account_command(name, rest, usage, current_room)
    return {"type": name}  # rooms, help


