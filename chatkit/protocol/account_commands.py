"""The account and moderation commands (docs/accounts.md): their table entries and how their
lines parse into `register`/`identify`/`passwd`/`unregister`, `moderate`, `kill`, `wall` and
`motd` requests. Part of the command table of chatkit/protocol/commands.py, which also owns
`CommandSpec`'s use.

A password is never part of a command line: `/register` and the others parse to a request
without `password`, and the client (or the text door) asks for it, hidden where it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatkit.protocol.constants import Frame
from chatkit.protocol.events import CommandInfo
from chatkit.protocol.framing import FrameError


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    help: str
    #: who may use it: "" everyone, "op" room operators (and admins), "admin" server admins
    role: str = ""

    def as_frame(self) -> CommandInfo:
        info: CommandInfo = {"name": self.name, "usage": self.usage, "help": self.help}
        if self.role:
            info["role"] = self.role
        return info


ACCOUNT_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("register", "/register", "Make your nickname an account (asks for a password)"),
    CommandSpec("identify", "/identify [ACCOUNT]", "Log in to your account (asks for its "
                "password)"),
    CommandSpec("passwd", "/passwd", "Change your account's password"),
    CommandSpec("unregister", "/unregister", "Give up your account (asks for its password)"),
    CommandSpec("motd", "/motd", "Show the server's message of the day"),
    CommandSpec("op", "/op NICK", "Make NICK an operator of this room", "op"),
    CommandSpec("deop", "/deop NICK", "Take NICK's operator role in this room", "op"),
    CommandSpec("voice", "/voice NICK", "Let NICK speak when the room is moderated", "op"),
    CommandSpec("devoice", "/devoice NICK", "Take NICK's voice in this room", "op"),
    CommandSpec("kick", "/kick NICK [REASON]", "Put NICK out of this room", "op"),
    CommandSpec("ban", "/ban NICK|ACCOUNT|ADDRESS [DURATION] [REASON]",
                "Ban from this room (DURATION: 30m, 2h, 7d; none: until lifted)", "op"),
    CommandSpec("unban", "/unban NICK|ADDRESS|#ID", "Lift a ban in this room", "op"),
    CommandSpec("bans", "/bans", "List the bans and mutes of this room", "op"),
    CommandSpec("mute", "/mute NICK [DURATION] [REASON]", "Keep NICK from speaking here",
                "op"),
    CommandSpec("unmute", "/unmute NICK|ADDRESS|#ID", "Let NICK speak here again", "op"),
    CommandSpec("invite", "/invite NICK", "Let NICK join this room when it is invite-only",
                "op"),
    CommandSpec("moderated", "/moderated on|off", "Only operators and voiced people speak",
                "op"),
    CommandSpec("invite-only", "/invite-only on|off", "Only invited people join", "op"),
    CommandSpec("topic-lock", "/topic-lock on|off", "Only operators set the topic", "op"),
    CommandSpec("kill", "/kill NICK [REASON]", "Disconnect NICK from the server", "admin"),
    CommandSpec("serverban", "/serverban NICK|ACCOUNT|ADDRESS [DURATION] [REASON]",
                "Ban from the whole server", "admin"),
    CommandSpec("serverunban", "/serverunban NICK|ADDRESS|#ID", "Lift a server ban", "admin"),
    CommandSpec("serverbans", "/serverbans", "List the server bans", "admin"),
    CommandSpec("wall", "/wall TEXT", "A notice to everyone connected", "admin"),
)
ACCOUNT_COMMAND_NAMES = frozenset(spec.name for spec in ACCOUNT_COMMANDS)
#: the requests that carry a password the user is asked for
PASSWORD_REQUESTS = frozenset({"register", "identify", "passwd", "unregister"})

_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SWITCHES = {"on": True, "off": False}
_MODES = {"moderated": "moderated", "invite-only": "invite_only", "topic-lock": "topic_lock"}


def parse_account_command(name: str, rest: str, usage: str, current_room: str | None
                          ) -> Frame:
    """One of ACCOUNT_COMMANDS as its request (see the module docstring)."""
    def usage_error() -> FrameError:
        return FrameError("bad_frame", f"usage: {usage}")

    def room() -> str:
        if current_room is None:
            raise FrameError("not_in_room", "you are in no room; /join ROOM first")
        return current_room

    words = rest.split()
    if name in PASSWORD_REQUESTS:
        if name == "identify" and len(words) == 1:
            return {"type": "identify", "account": words[0]}
        if words:
            raise usage_error()
        return {"type": name}
    if name == "motd":
        return {"type": "motd"}
    if name == "wall":
        if not rest:
            raise usage_error()
        return {"type": "wall", "text": rest}
    if name in _MODES:
        if len(words) != 1 or words[0].lower() not in _SWITCHES:
            raise usage_error()
        return {"type": "moderate", "action": _MODES[name], "room": room(),
                "on": _SWITCHES[words[0].lower()]}
    if name in ("bans", "serverbans"):
        return {"type": "moderate", "action": "bans",
                "room": None if name == "serverbans" else room()}
    if not words:
        raise usage_error()
    target, tail = words[0], rest[len(words[0]):].strip()
    if name == "kill":
        return {"type": "kill", "nick": target, "reason": tail or None}
    server = name.startswith("server")
    action = name.removeprefix("server")
    frame: Frame = {"type": "moderate", "action": action,
                    "room": None if server else room(), "target": target}
    if action in ("ban", "mute"):
        first, _, after = tail.partition(" ")
        seconds = parse_duration(first)
        if seconds is not None:
            frame["duration"] = seconds
            tail = after.strip()
        frame["reason"] = tail or None
    elif action == "kick":
        frame["reason"] = tail or None
    elif tail:
        raise usage_error()
    return frame


def parse_duration(text: str) -> int | None:
    """`30s`, `10m`, `2h`, `7d`, `1w` as seconds; None when `text` is not a duration."""
    match = _DURATION.match(text.strip().lower())
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None
