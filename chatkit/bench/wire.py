"""The bytes the load generator writes and looks for: chatkit's JSON lines, Redis RESP and IRC
(the server's IRC door: PRIVMSG lines, echo-message for the sender's acks).

Nothing else in chatkit/bench spells out a frame. Sending: `MessageEncoder` builds batches of
messages, `hello` and `subscribe` the handshakes. Receiving is the generator's hot loop, so it
never decodes JSON: the connection checks a chunk of complete lines for the tags below with
`in` (`ERROR_TAG in data`), and one compiled regex (`marker`) pulls every message's
`@@run:sender:seq:ns@@` marker out of it. The rare frames (errors, quits) are parsed here.

Every message text starts with the marker: the run's id, the sender's number, its sequence
number (from 1) and its send time (`time.monotonic_ns`), then 'x' up to the asked size. Letters,
digits and punctuation only, so it survives the server's sanitising.
"""

from __future__ import annotations

import json
import re
import time

from chatkit.protocol import PROTOCOL_VERSION, sanitize_text

#: Both wires end every frame with it: a chunk is cut after its last one.
LINE_END = b"\n"
#: chatkit: a line holding one of these is an error / the joined reply / a quit event
ERROR_TAG = b'"type":"error"'
JOINED_TAG = b'"type":"joined"'
QUIT_TAG = b'"type":"quit"'
WELCOME_TAG = b'"type":"welcome"'
RATE_LIMITED_TAG = b'"rate_limited"'
#: Redis: the SUBSCRIBE reply holds it
SUBSCRIBED_TAG = b"subscribe"
#: IRC: an ERROR line (refused, cut off), the end of the NAMES that answer JOIN, a QUIT
IRC_ERROR_TAG = b"ERROR :"
IRC_JOINED_TAG = b" 366 "
IRC_QUIT_TAG = b" QUIT :"


def tags(target: str) -> tuple[bytes, bytes, bytes]:
    """(error, joined, quit) tags of a line-based target: chatkit's JSON or IRC."""
    if target == "irc":
        return IRC_ERROR_TAG, IRC_JOINED_TAG, IRC_QUIT_TAG
    return ERROR_TAG, JOINED_TAG, QUIT_TAG


def marker(run_id: str) -> re.Pattern[bytes]:
    """The regex of a run's marker; `findall` gives (sender, seq, send ns) as digit strings."""
    return re.compile(b"@@" + run_id.encode() + rb":(\d+):(\d+):(\d+)@@")


class MessageEncoder:
    """One sender's messages as ready-to-write bytes, for the chatkit or the Redis wire."""

    def __init__(self, target: str, run_id: str, room: str, size: int) -> None:
        self.size = size
        self.chatkit = target == "chatkit"
        self.irc = target == "irc"
        self._mark = b"@@" + run_id.encode() + b":%d:%d:%d@@"
        if self.chatkit:
            self._head = b'{"type":"msg","room":' + json.dumps(room).encode() + b',"ref":'
        elif self.irc:
            self._head = b"PRIVMSG #%s :" % room.encode()
        else:
            raw = room.encode()
            self._head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(raw), raw)

    def batch(self, sid: int, first: int, count: int) -> bytes:
        """Messages `first` .. `first + count - 1` of sender `sid`, stamped now."""
        size = self.size
        mark = self._mark
        head = self._head
        chatkit = self.chatkit
        irc = self.irc
        out = []
        for seq in range(first, first + count):
            text = mark % (sid, seq, time.monotonic_ns())
            if len(text) < size:
                text += b"x" * (size - len(text))
            if chatkit:
                out.append(b'%s%d,"text":"%s"}\n' % (head, seq, text))
            elif irc:
                out.append(b"%s%s\r\n" % (head, text))
            else:
                out.append(b"%s$%d\r\n%s\r\n" % (head, len(text), text))
        return b"".join(out)


def hello(room: str, nick: str) -> bytes:
    """chatkit: the hello that registers `nick` and joins `room`."""
    frame = {"type": "hello", "version": PROTOCOL_VERSION, "room": room, "nick": nick,
             "client": "chatkit bench"}
    return json.dumps(frame).encode() + b"\n"


def irc_hello(room: str, nick: str) -> bytes:
    """IRC: register `nick` (asking for echo-message: a sender's own copy is its ack, as on
    chatkit's wire) and join `#room`."""
    return (b"CAP REQ :echo-message\r\nNICK %s\r\nUSER bench 0 * :chatkit bench\r\n"
            b"CAP END\r\nJOIN #%s\r\n" % (nick.encode(), room.encode()))


def subscribe(room: str) -> bytes:
    """Redis: SUBSCRIBE to the room's channel."""
    raw = room.encode()
    return b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(raw), raw)


def describe_error(line: bytes) -> str:
    """A server's error frame as `code: message`, safe to print (the server may be hostile)."""
    try:
        frame = json.loads(line)
        text = f"{frame['code']}: {frame['message']}"
    except (ValueError, TypeError, KeyError):
        text = line.decode(errors="replace")
    return sanitize_text(text)[:200]


def error_lines(data: bytes, tag: bytes = ERROR_TAG) -> list[bytes]:
    """The error frames (chatkit) or ERROR lines (IRC, with its `tag`) among complete
    lines."""
    return [line for line in data.splitlines() if tag in line]


def redis_error(data: bytes) -> str | None:
    """Redis: the first error reply in complete lines, else None."""
    if b"\n-" in data or data.startswith(b"-"):
        return data[data.find(b"-"):].split(b"\r\n", 1)[0].decode(errors="replace")
    return None


def quit_nicks(data: bytes, target: str = "chatkit") -> list[str]:
    """The nicknames of the quit events (chatkit) or QUIT lines (IRC) among complete lines."""
    nicks = []
    if target == "irc":
        return [line[1:line.index(b"!")].decode(errors="replace")
                for line in data.splitlines()
                if IRC_QUIT_TAG in line and line.startswith(b":") and b"!" in line]
    for line in data.splitlines():
        if QUIT_TAG in line:
            try:
                nick = json.loads(line).get("nick")
            except ValueError:
                continue
            if isinstance(nick, str):
                nicks.append(nick)
    return nicks


def announced_limits(data: bytes) -> dict[str, float]:
    """chatkit: the per-client limits a `welcome` among complete lines announces (its
    optional `limits`: `rate` lines per second, `burst`); {} when it announces none."""
    for line in data.splitlines():
        if WELCOME_TAG not in line:
            continue
        try:
            limits = json.loads(line).get("limits")
        except (ValueError, AttributeError):
            return {}
        if not isinstance(limits, dict):
            return {}
        return {key: float(value) for key, value in limits.items()
                if key in ("rate", "burst") and isinstance(value, (int, float))
                and not isinstance(value, bool)}
    return {}


def refusal_reason(data: bytes) -> str:
    """chatkit: the reason of the server's plain `!!! reason` refusal line."""
    line = data.split(b"\n", 1)[0][4:]
    return sanitize_text(line.decode(errors="replace")).strip()[:200] or "no reason given"
