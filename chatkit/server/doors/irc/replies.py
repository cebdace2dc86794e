"""The hub's replies to one IRC member, as the numerics IRC clients expect.

The hub answers every door with typed frames (protocol/events.py): `welcome`, `joined`, `who`,
`rooms`, a topic query's `topic`, `history_end`, `notice`, `error`, `bye`... The IRC door sends
its requests with a `ref` that says which IRC command asked ("NAMES #lobby", "JOIN #dev",
"PRIVMSG bob"), and the hub copies it into the reply: that is how one `who` reply becomes
NAMES (353/366) or WHO (352/315) lines, and how an error code becomes the numeric for the
command that caused it (433 for a NICK, 404 for a PRIVMSG to a channel one is not in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chatkit import __version__
from chatkit.protocol import irc
from chatkit.protocol.irc import LINE_LIMIT, channel, line
from chatkit.server.doors.irc.formats import USER_HOST, batch_ref, prefix

if TYPE_CHECKING:
    from chatkit.server.doors.irc.formats import IrcFormat

#: the capabilities the door offers (CAP LS): only what it implements is advertised. `sasl` is
#: not among them: accounts (issue 16) would add it at the door's registration seam.
CAPABILITIES = ("away-notify", "batch", "draft/chathistory", "echo-message", "message-tags",
                "sasl", "server-time")
#: values CAP LS 302 gives with a capability's name
CAPABILITY_VALUES = {"sasl": "PLAIN"}
#: messages one CHATHISTORY request may ask for (the hub's MAX_HISTORY)
CHATHISTORY_MAX = 1000


def render_reply(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str] | None:
    """The lines for a reply to `me`; None when `frame` is an event (rendered as one)."""
    kind = frame.get("type")
    if kind == "topic" and frame.get("nick") is None and not frame.get("history"):
        return _topic_reply(fmt, frame, me)
    render = _REPLIES.get(kind or "")
    return render(fmt, frame, me) if render is not None else None


def isupport(limits: Mapping[str, Any], network: str) -> list[str]:
    """The RPL_ISUPPORT (005) tokens: chatkit's rules as IRC clients read them."""
    max_nick = limits.get("max_nick", 24)
    max_room = limits.get("max_room", 32)
    return [
        "CHANTYPES=#", f"NICKLEN={max_nick}", f"CHANNELLEN={max_room + 1}",
        # chatkit compares names after NFKC with Unicode case folding: RFC 8265's
        # case-mapped profile is the standard name of the closest rule
        "CASEMAPPING=rfc8265", "UTF8ONLY", f"LINELEN={LINE_LIMIT}", f"NETWORK={network}",
        "CHANMODES=,,,n", "TOPICLEN=400", "AWAYLEN=200",
        f"CHATHISTORY={CHATHISTORY_MAX}", "MSGREFTYPES=msgid",
        "TARGMAX=PRIVMSG:1,NOTICE:1,NAMES:1,WHOIS:1,JOIN:,PART:",
    ]


def welcome_lines(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    server = fmt.server
    tokens = isupport(frame.get("limits") or {}, server)
    lines = [
        fmt.numeric(irc.RPL_WELCOME, me, f"Welcome to the chatkit server {frame['server']}, "
                                         f"{prefix(me)}"),
        fmt.numeric(irc.RPL_YOURHOST, me, f"Your host is {server}, running chatkit "
                                          f"{__version__}"),
        fmt.numeric(irc.RPL_CREATED, me, "This server speaks chatkit protocol "
                                         f"{frame.get('version', 1)} and IRC"),
        fmt.numeric(irc.RPL_MYINFO, me, server, f"chatkit-{__version__}", "i", "n",
                    trailing=False),
    ]
    for start in range(0, len(tokens), 12):
        lines.append(fmt.numeric(irc.RPL_ISUPPORT, me, *tokens[start:start + 12],
                                 "are supported by this server"))
    return lines + motd_lines(fmt, me, str(frame["server"]))


def motd_lines(fmt: IrcFormat, me: str, name: str) -> list[str]:
    text = [
        f"chatkit server {name}: rooms are channels (lobby is #lobby) and chatkit users",
        "see what you say as you see what they say. /list shows the rooms;",
        "history arrives when you join (with its times, if your client has server-time).",
    ]
    return [fmt.numeric(irc.RPL_MOTDSTART, me, f"- {fmt.server} Message of the day -"),
            *(fmt.numeric(irc.RPL_MOTD, me, f"- {item}") for item in text),
            fmt.numeric(irc.RPL_ENDOFMOTD, me, "End of /MOTD command.")]


def names_lines(fmt: IrcFormat, me: str, target: str, nicks: list[str]) -> list[str]:
    """353 lines holding `nicks`, each within 512 bytes."""
    return list_lines(fmt, irc.RPL_NAMREPLY, me, ["=", target], nicks)


def list_lines(fmt: IrcFormat, number: str, me: str, params: list[str], words: list[str]
               ) -> list[str]:
    """Numeric `number` with `params` and then `words` in its last parameter, in as many
    lines as it takes to keep each within 512 bytes (names are UTF-8: bytes, not
    characters, are counted)."""
    head = f":{fmt.server} {number} {me} {' '.join(params)} :"
    budget = LINE_LIMIT - 2 - len(head.encode())
    lines: list[str] = []
    current: list[str] = []
    size = 0
    for word in words:
        cost = len(word.encode()) + (1 if current else 0)
        if current and size + cost > budget:
            lines.append(fmt.numeric(number, me, *params, " ".join(current)))
            current, size = [], 0
            cost = len(word.encode())
        current.append(word)
        size += cost
    if current:
        lines.append(fmt.numeric(number, me, *params, " ".join(current)))
    return lines


def _ref(frame: Mapping[str, Any]) -> tuple[str, str]:
    """(IRC command, its argument) the door put in the request's `ref`."""
    ref = frame.get("ref")
    command, _, argument = (ref if isinstance(ref, str) else "").partition(" ")
    return command, argument


def _joined(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    target = channel(frame["room"])
    lines: list[str] = []
    if not frame.get("page"):
        lines.append(line("JOIN", target, source=prefix(me)))
        if frame.get("topic"):
            lines += _topic_reply(fmt, frame, me)
    lines += names_lines(fmt, me, target, list(frame.get("members") or []))
    if frame.get("more"):
        return lines
    lines.append(fmt.numeric(irc.RPL_ENDOFNAMES, me, target, "End of /NAMES list."))
    if frame.get("partial"):  # a crowd (issue 14): the names are not all of them
        count = frame.get("count")
        lines += fmt.notice(target, f"{count} people are in {target}; the names above are some "
                                    f"of them: /who {target} lists them all")
    if fmt.batch:  # the history that follows is one batch, closed by history_end
        lines.append(line("BATCH", f"+{batch_ref(frame['room'])}", "chathistory", target,
                          source=fmt.server))
    return lines


def _who(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    command, target = _ref(frame)
    users = frame.get("users") or []
    last = not frame.get("more")
    if command == "NAMES":
        lines = names_lines(fmt, me, target, [user["nick"] for user in users])
        if last:
            lines.append(fmt.numeric(irc.RPL_ENDOFNAMES, me, target, "End of /NAMES list."))
        return lines
    room = frame.get("room")
    lines = [who_line(fmt, me, channel(room) if room else "*", user["nick"]) for user in users]
    if last:
        lines.append(fmt.numeric(irc.RPL_ENDOFWHO, me, target or "*", "End of /WHO list."))
    return lines


def who_line(fmt: IrcFormat, me: str, target: str, nick: str, away: bool = False) -> str:
    return fmt.numeric(irc.RPL_WHOREPLY, me, target, nick, USER_HOST, fmt.server, nick,
                       "G" if away else "H", f"0 {nick}")


def _rooms(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    lines: list[str] = []
    if not frame.get("page"):
        lines.append(fmt.numeric(irc.RPL_LISTSTART, me, "Channel", "Users  Name"))
    for room in frame.get("rooms") or []:
        target = channel(room["name"])
        head = f":{fmt.server} {irc.RPL_LIST} {me} {target} {room['members']} :"
        topic = irc.fit_bytes(room.get("topic") or "", LINE_LIMIT - 2 - len(head.encode()))
        lines.append(fmt.numeric(irc.RPL_LIST, me, target, str(room["members"]), topic))
    if not frame.get("more"):
        lines.append(fmt.numeric(irc.RPL_LISTEND, me, "End of /LIST"))
    return lines


def _topic_reply(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    target = channel(frame["room"])
    text = frame.get("topic") if frame.get("type") == "joined" else frame.get("text")
    if not text:
        return [fmt.numeric(irc.RPL_NOTOPIC, me, target, "No topic is set")]
    head = f":{fmt.server} {irc.RPL_TOPIC} {me} {target} :"
    return [fmt.numeric(irc.RPL_TOPIC, me, target,
                        irc.fit_bytes(text, LINE_LIMIT - 2 - len(head.encode())))]


def _history_end(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    if fmt.batch:
        return [line("BATCH", f"-{batch_ref(frame['room'])}", source=fmt.server)]
    return []


def _notice(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    room = frame.get("room")
    if isinstance(room, str) and room:  # a room's (moderation) notice, maybe from history
        return fmt.notice(channel(room), fmt.stamp_old(frame, frame["text"]), fmt.tags(frame))
    return fmt.notice(me, frame["text"])


def _help(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    text = ["This is a chatkit server; your IRC client's own commands work (/join, /msg, "
            "/topic, /names, /who, /whois, /list, /nick, /away, /quit)."]
    return [piece for item in text for piece in fmt.notice(me, item)]


def _pong(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    token = frame.get("ref")
    return [line("PONG", fmt.server, str(token) if token is not None else fmt.server,
                 source=fmt.server, trailing=True)]


def _ping(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    return [line("PING", str(frame.get("id") or fmt.server), trailing=True)]


def _bye(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    return [line("ERROR", f"Closing link: {frame.get('reason') or 'goodbye'}", trailing=True)]


#: error codes that end the connection: IRC says so with ERROR
_FATAL = frozenset({"flooding", "timeout", "unsupported_version", "replaced"})


def _error(fmt: IrcFormat, frame: Mapping[str, Any], me: str) -> list[str]:
    code, message = frame.get("code", ""), str(frame.get("message", ""))
    command, argument = _ref(frame)
    if command == "NOTICE":
        return []  # RFC 2812: nothing is ever sent back for a NOTICE, errors included
    text = irc.fit_bytes(message, 300)
    if command == "NAMES" and code in ("no_such_room", "bad_room"):
        return [fmt.numeric(irc.RPL_ENDOFNAMES, me, argument or "*", "End of /NAMES list.")]
    numeric = {
        "nick_taken": (irc.ERR_NICKNAMEINUSE, [argument, "Nickname is already in use"]),
        # accounts (docs/accounts.md): logging in is SASL's, before registration
        "nick_registered": (irc.ERR_NICKNAMEINUSE, [argument, "Nickname is registered to an "
                                                    "account: log in with SASL, or choose "
                                                    "another"]),
        "banned": ((irc.ERR_CANNOTSENDTOCHAN, [argument, text]) if command == "PRIVMSG" else
                   ("474", [argument, text]) if command == "JOIN" else  # ERR_BANNEDFROMCHAN
                   ("465", [text])),  # ERR_YOUREBANNEDCREEP: banned from the server
        "muted": (irc.ERR_CANNOTSENDTOCHAN, [argument, text]),
        "moderated": (irc.ERR_CANNOTSENDTOCHAN, [argument, text]),
        "invite_only": ("473", [argument, text]),
        "not_operator": (irc.ERR_CHANOPRIVSNEEDED, [argument, text]),
        "bad_nick": (irc.ERR_ERRONEUSNICKNAME, [argument, f"Erroneous nickname: {text}"]),
        "no_such_nick": (irc.ERR_NOSUCHNICK, [argument, "No such nick/channel"]),
        "no_such_room": (irc.ERR_NOSUCHCHANNEL, [argument, "No such channel"]),
        "bad_room": (irc.ERR_NOSUCHCHANNEL, [argument, f"No such channel: {text}"]),
        "not_in_room": ((irc.ERR_CANNOTSENDTOCHAN, [argument, "Cannot send to channel: "
                                                    "you are not on it"])
                        if command == "PRIVMSG" else
                        (irc.ERR_NOTONCHANNEL, [argument, "You're not on that channel"])),
        "bad_password": (irc.ERR_PASSWDMISMATCH, [f"Password incorrect: {text}"]),
        "too_many_rooms": (irc.ERR_TOOMANYCHANNELS, [argument, text]),
        "not_registered": (irc.ERR_NOTREGISTERED, ["You have not registered"]),
        "unknown_command": (irc.ERR_UNKNOWNCOMMAND, [command or "?", "Unknown command"]),
        "unknown_type": (irc.ERR_UNKNOWNCOMMAND, [command or "?", "Unknown command"]),
        "empty_text": (irc.ERR_NOTEXTTOSEND, ["No text to send"]),
        "frame_too_long": (irc.ERR_INPUTTOOLONG, ["Input line was too long"]),
    }.get(code)
    if numeric is not None:
        number, params = numeric
        return [fmt.numeric(number, me, *[p or "*" for p in params[:-1]], params[-1])]
    if code in _FATAL:
        return [line("ERROR", f"Closing link: {text}", trailing=True)]
    return fmt.notice(me, message)


_REPLIES = {
    "welcome": welcome_lines, "joined": _joined, "who": _who, "rooms": _rooms,
    "history_end": _history_end, "notice": _notice, "help": _help, "pong": _pong,
    "ping": _ping, "bye": _bye, "error": _error,
}
