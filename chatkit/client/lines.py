"""What a line typed (or piped) into `chatkit join` is: the one place both front ends ask.

Owns: the client's own commands (`CLIENT_COMMANDS`, handled without the server) and
`classify`, which tells a message from a server `/command` from a client command, with `//text`
for a message starting with `/`. The interactive app and the piped client decide what to do with
each kind; neither parses lines itself, so both always agree on what a line means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chatkit.errors import ConfigError
from chatkit.protocol import CommandSpec, Frame, FrameError, parse_command

CLIENT_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("help", "/help", "List the commands (the server's and the client's)"),
    CommandSpec("clear", "/clear", "Clear the screen"),
    CommandSpec("bell", "/bell [off|mention|pm|all]",
                "Which events ring the bell (remembered); no argument shows it"),
    CommandSpec("ignore", "/ignore [NICK]", "Hide NICK's messages here (no NICK: list them)"),
    CommandSpec("unignore", "/unignore NICK", "Show NICK's messages again"),
    CommandSpec("remember", "/remember",
                "Log in to your account by yourself on this server from now on"),
    CommandSpec("forget", "/forget", "Stop logging in by yourself (forget the password)"),
    CommandSpec("reconnect", "/reconnect",
                "Connect again now (after fixing trust, or to skip the wait)"),
    CommandSpec("quit", "/quit [REASON]", "Leave (also Ctrl-D, or Ctrl-C twice)"),
    CommandSpec("exit", "/exit", "Leave (same as /quit)"),
)
CLIENT_COMMAND_NAMES = frozenset(spec.name for spec in CLIENT_COMMANDS)
LEAVE_COMMANDS = frozenset({"quit", "exit"})

LineKind = Literal["blank", "message", "command", "client"]


@dataclass(frozen=True)
class InputLine:
    """One classified input line.

    kind: `blank` (nothing to do), `message` (text for the current room), `command` (a
    `/command` for the server, which may know commands this client does not), `client` (one of
    CLIENT_COMMANDS). text: the message for `message`, the whole line for the commands.
    name: the command name in lower case; arg: the rest of the line, trimmed.
    """

    kind: LineKind
    text: str = ""
    name: str = ""
    arg: str = ""


def classify(line: str) -> InputLine:
    """What `line` (a trailing newline is ignored) asks for; see InputLine."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return InputLine("blank")
    if text.startswith("//"):
        return InputLine("message", text[1:])
    if not text.startswith("/"):
        return InputLine("message", text)
    name, _, rest = text[1:].partition(" ")
    name = name.lower()
    kind: LineKind = "client" if name in CLIENT_COMMAND_NAMES else "command"
    return InputLine(kind, text, name, rest.strip())


def history_marker(parsed: InputLine, current_room: str | None) -> str | None:
    """The line to show before the answer to a `/history` line, None for any other line (and
    for a wrong `/history`, which the server's error or the usage explains).

    The server ends its answer with `*** end of history of ROOM (N messages)`; this starts it,
    so replayed lines never run into the live ones unannounced.
    """
    if parsed.kind != "command" or parsed.name != "history":
        return None
    try:
        frame = parse_command(parsed.text, current_room)
    except FrameError:
        return None
    return f"*** history of {frame['room']} (up to {frame['limit']} messages):"


#: What `chatkit send` posts besides messages: one room, no session to change.
SEND_COMMANDS = frozenset({"me"})


def send_frame(line: str, room: str) -> Frame | None:
    """The request `chatkit send` makes of one line, read as piped `chatkit join` reads it:
    a message, `/me ACTION` (an action), `//text` (a message starting with `/`); None for a
    blank line. Any other `/command` is a ConfigError: a script's line is never posted as
    text it did not mean, nor turned into a command `send` cannot carry out."""
    parsed = classify(line)
    if parsed.kind == "blank":
        return None
    if parsed.kind == "message":
        return {"type": "msg", "room": room, "text": parsed.text}
    if parsed.name in SEND_COMMANDS:
        try:
            return parse_command(parsed.text, room)
        except FrameError as exc:
            raise ConfigError(exc.message) from None
    raise ConfigError(f"/{parsed.name} is not something `chatkit send` does (it posts messages "
                      "and /me actions); start the line with // to post it as text")


def quote_line(text: str, width: int = 40) -> str:
    """A refused line as the user recognises it: quoted, and shortened if long."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")
