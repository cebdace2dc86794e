"""IRC's wire format (RFC 1459/2812 as modern clients speak it, plus IRCv3 message tags): one
message per line, parsed and written here for the server's IRC door and the load generator.

Owns: parsing a client line (`parse`: tags, source, command, middle and trailing parameters),
writing one (`line`: parameters quoted as they must be, tag values escaped), CTCP (`/me` is
`\\x01ACTION ...\\x01`), mIRC formatting codes (removed before text reaches chatkit), cutting a
long text into pieces that each fit IRC's 512-byte line without cutting a UTF-8 sequence
(`split_text`), the `server-time` stamp, channel names (`#room` <-> `room`) and the numerics
the door sends. No I/O, nothing of the rest of chatkit but the protocol's own bounds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

#: bytes of a line without its tags, CR LF included (RFC 1459 section 2.3)
LINE_LIMIT = 512
#: bytes of the tag part a client may send ("@" and the space included: 4094 + 2)
CLIENT_TAGS_LIMIT = 4096
#: the longest line read from a client: tags, then a 512-byte message
MAX_CLIENT_LINE = CLIENT_TAGS_LIMIT + LINE_LIMIT
#: RFC 1459: at most 15 parameters
MAX_PARAMS = 15
CHANNEL_PREFIX = "#"

# Numerics (RFC 2812, the modern IRC documentation at modern.ircdocs.horse, IRCv3).
RPL_WELCOME, RPL_YOURHOST, RPL_CREATED, RPL_MYINFO, RPL_ISUPPORT = (
    "001", "002", "003", "004", "005")
RPL_UMODEIS = "221"
RPL_LUSERCLIENT, RPL_LUSERCHANNELS, RPL_LUSERME = "251", "254", "255"
RPL_AWAY, RPL_UNAWAY, RPL_NOWAWAY = "301", "305", "306"
RPL_WHOISUSER, RPL_WHOISSERVER, RPL_ENDOFWHO = "311", "312", "315"
RPL_ENDOFWHOIS, RPL_WHOISCHANNELS = "318", "319"
RPL_LISTSTART, RPL_LIST, RPL_LISTEND = "321", "322", "323"
RPL_CHANNELMODEIS = "324"
RPL_NOTOPIC, RPL_TOPIC = "331", "332"
RPL_VERSION, RPL_WHOREPLY, RPL_NAMREPLY = "351", "352", "353"
RPL_ENDOFNAMES, RPL_ENDOFBANLIST = "366", "368"
RPL_MOTD, RPL_MOTDSTART, RPL_ENDOFMOTD = "372", "375", "376"
ERR_NOSUCHNICK, ERR_NOSUCHCHANNEL, ERR_CANNOTSENDTOCHAN = "401", "403", "404"
ERR_TOOMANYCHANNELS, ERR_NORECIPIENT, ERR_NOTEXTTOSEND = "405", "411", "412"
ERR_INPUTTOOLONG, ERR_UNKNOWNCOMMAND, ERR_NOMOTD = "417", "421", "422"
ERR_NONICKNAMEGIVEN, ERR_ERRONEUSNICKNAME, ERR_NICKNAMEINUSE = "431", "432", "433"
ERR_NOTONCHANNEL, ERR_NOTREGISTERED = "442", "451"
ERR_NEEDMOREPARAMS, ERR_ALREADYREGISTERED, ERR_PASSWDMISMATCH = "461", "462", "464"
ERR_CHANOPRIVSNEEDED, ERR_UMODEUNKNOWNFLAG, ERR_USERSDONTMATCH = "482", "501", "502"
ERR_INVALIDCAPCMD = "410"
# IRCv3 SASL (ircv3.net/specs/extensions/sasl-3.1)
RPL_LOGGEDIN, RPL_SASLSUCCESS, ERR_SASLFAIL, ERR_SASLTOOLONG = "900", "903", "904", "905"
ERR_SASLABORTED, ERR_SASLALREADY, RPL_SASLMECHS = "906", "907", "908"


class IrcError(ValueError):
    """A line that is not an IRC message; `code` is "bad_utf8", "empty" or "too_long"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Message:
    """One IRC message: tags (values unescaped; None for a tag without value), the source
    (`nick!user@host` or a server, "" when absent), the command (upper-cased) and parameters."""

    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str | None] = field(default_factory=dict)
    source: str = ""

    def param(self, index: int, default: str = "") -> str:
        return self.params[index] if index < len(self.params) else default


# --------------------------------------------------------------------------- tags

_ESCAPES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_NEEDS_ESCAPE = re.compile(r"[; \\\r\n]")


def escape_tag_value(value: str) -> str:
    """A tag value as IRCv3 message-tags writes it (`;` `\\:`, space `\\s`, ...)."""
    if not _NEEDS_ESCAPE.search(value):
        return value
    return "".join(_ESCAPES.get(char, char) for char in value)


def unescape_tag_value(value: str) -> str:
    """The inverse of `escape_tag_value`; an unknown escape is the character itself, a lone
    trailing backslash is dropped (message-tags, "Escaping values")."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, None)
        if following is not None:
            out.append(_UNESCAPES.get(following, following))
    return "".join(out)


def format_tags(tags: dict[str, str | None]) -> str:
    """`@a=1;b ` for {"a": "1", "b": None}; "" for no tags."""
    if not tags:
        return ""
    parts = [key if value is None or value == "" else f"{key}={escape_tag_value(value)}"
             for key, value in tags.items()]
    return "@" + ";".join(parts) + " "


def _parse_tags(raw: str) -> dict[str, str | None]:
    tags: dict[str, str | None] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        tags[key] = unescape_tag_value(value) if sep else None
    return tags


# --------------------------------------------------------------------------- lines


def parse(raw: bytes | str) -> Message:
    """One line (without its CR LF) from a client, or IrcError. Strict UTF-8: a client in
    another encoding is told so rather than shown mojibake."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise IrcError("bad_utf8", "that line was not UTF-8 and was ignored; set your "
                                       "client's encoding to UTF-8") from None
    else:
        text = raw
    tags: dict[str, str | None] = {}
    if text.startswith("@"):
        raw_tags, _, text = text[1:].partition(" ")
        if len(raw_tags.encode()) + 2 > CLIENT_TAGS_LIMIT:
            raise IrcError("too_long", "message tags longer than 4094 bytes")
        tags = _parse_tags(raw_tags)
    text = text.lstrip(" ")
    if len(text.encode()) + 2 > LINE_LIMIT:
        raise IrcError("too_long", "line longer than 512 bytes")
    source = ""
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
    trailing: str | None = None
    head, sep, rest = text.partition(" :")
    if sep:
        trailing = rest
    elif text.startswith(":"):
        head, trailing = "", text[1:]
    words = head.split()
    if not words:
        raise IrcError("empty", "no command")
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    if len(params) > MAX_PARAMS:  # the rest joined into the last one, as servers do
        params = params[: MAX_PARAMS - 1] + [" ".join(params[MAX_PARAMS - 1:])]
    return Message(words[0].upper(), params, tags, source)


_UNSAFE_PARAM = re.compile("[\r\n\0]")


def line(command: str, *params: str, source: str = "", tags: dict[str, str | None] | None = None,
         trailing: bool = False) -> str:
    """One message as a line without CR LF. The last parameter gets a `:` when it must (empty,
    a space in it, starting with `:`) or when `trailing` asks (texts: clients expect it);
    CR, LF and NUL inside a parameter become spaces, so a value can never end the line."""
    parts = [format_tags(tags) if tags else ""]
    if source:
        parts.append(f":{source} ")
    parts.append(command)
    last = len(params) - 1
    for index, param in enumerate(params):
        if _UNSAFE_PARAM.search(param):
            param = _UNSAFE_PARAM.sub(" ", param)
        if index == last and (trailing or not param or " " in param or param[0] == ":"):
            parts.append(f" :{param}")
        else:
            parts.append(f" {param.replace(' ', '_') or '*'}")
    return "".join(parts)


def wire(*lines: str) -> bytes:
    """Lines as bytes on the wire, each ended by CR LF."""
    return "".join(item + "\r\n" for item in lines).encode()


# --------------------------------------------------------------------------- text


def split_text(text: str, budget: int) -> list[str]:
    """`text` in pieces of at most `budget` UTF-8 bytes, never cutting a character; a cut
    falls on the last space of a piece when there is one in its second half. At least one
    piece ("" stays [""])."""
    budget = max(4, budget)  # room for one character of any size
    data = text.encode()
    if len(data) <= budget:
        return [text]
    pieces: list[str] = []
    start = 0
    while len(data) - start > budget:
        end = start + budget
        while end > start and (data[end] & 0xC0) == 0x80:  # a continuation byte: back up
            end -= 1
        space = data.rfind(b" ", start + budget // 2, end)
        if space > start:
            end = space + 1
        pieces.append(data[start:end].decode().rstrip(" ") or data[start:end].decode())
        start = end
    pieces.append(data[start:].decode())
    return pieces


def fit_bytes(text: str, budget: int) -> str:
    """`text` cut to at most `budget` UTF-8 bytes at a character boundary, with `…` when cut."""
    data = text.encode()
    if len(data) <= budget:
        return text
    end = max(0, budget - 3)
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end].decode() + "…"


# mIRC colours (\x03 fg[,bg]), hex colours (\x04 rrggbb[,rrggbb]), and the toggles: bold,
# italics, underline, strike-through, monospace, reverse, reset.
_FORMATTING = re.compile(
    "\x03(?:\\d{1,2}(?:,\\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
    "|[\x02\x1d\x1f\x1e\x11\x16\x0f]")


def strip_formatting(text: str) -> str:
    """Text without IRC formatting codes (they would show as stray digits in chatkit)."""
    if text.isprintable():  # no control characters at all: the common case, in C
        return text
    return _FORMATTING.sub("", text)


ACTION_START = "\x01ACTION "


def ctcp(text: str) -> tuple[str, str] | None:
    """(command, argument) of a CTCP message `\\x01CMD arg\\x01`, None for ordinary text."""
    if not text.startswith("\x01"):
        return None
    body = text[1:-1] if text.endswith("\x01") and len(text) > 1 else text[1:]
    command, _, argument = body.partition(" ")
    return command.upper(), argument


def action(text: str) -> str:
    """`/me text` as CTCP."""
    return f"{ACTION_START}{text}\x01"


# --------------------------------------------------------------------------- names and times


def channel(room: str) -> str:
    """A chatkit room as an IRC channel: `lobby` -> `#lobby`."""
    return CHANNEL_PREFIX + room


def is_channel(target: str) -> bool:
    return target.startswith(CHANNEL_PREFIX)


def server_time(ts: float) -> str:
    """A time as IRCv3 server-time writes it: UTC, milliseconds, `2026-12-06T14:02:03.120Z`."""
    seconds = int(ts)
    millis = min(999, int(round((ts - seconds) * 1000)))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


_SERVER_NAME = re.compile(r"[^A-Za-z0-9.\-]")


def server_name(name: str) -> str:
    """A chatkit server name as an IRC server name (one word of letters, digits, `.` `-`):
    IRC puts it where a space would end it."""
    cleaned = _SERVER_NAME.sub("-", name).strip("-.")
    return cleaned[:63] or "chatkit"
