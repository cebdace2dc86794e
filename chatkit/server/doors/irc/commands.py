"""What the IRC door does with each command: a dispatch table from IRC commands to the hub's
request frames (protocol/events.py), plus the few answers that are IRC's alone (CAP, PING,
MODE, AWAY, WHOIS, LUSERS...).

Every request carries a `ref` naming the IRC command and its target ("JOIN #dev"): the hub
copies it into its reply or error, and chatkit/server/doors/irc/replies.py turns that into
the right numerics.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatkit.protocol import Frame, FrameError, irc, name_key, normalize_room
from chatkit.protocol.irc import Message
from chatkit.server.doors.irc.history import chathistory
from chatkit.server.doors.irc.registration import cap, registering
from chatkit.server.doors.irc.replies import isupport, list_lines, motd_lines, who_line
from chatkit.server.doors.irc.sasl import authenticate

if TYPE_CHECKING:
    from chatkit.server.doors.irc.connection import IrcReader
    from chatkit.server.hub.member import Member

__all__ = ["registered", "registering"]

Handler = Callable[["IrcReader", Message], None]


def ref(command: str, argument: str = "") -> str:
    """A request's `ref`: the IRC command and its target, at most 64 characters."""
    return f"{command} {argument[:48]}" if argument else command


def registered(reader: IrcReader, message: Message) -> None:
    """The handler of a registered client's lines."""
    handler = COMMANDS.get(message.command)
    if handler is None:
        reader.irc.numeric(irc.ERR_UNKNOWNCOMMAND, message.command[:32], "Unknown command")
        return
    if len(message.params) < MIN_PARAMS.get(message.command, 0):
        reader.irc.numeric(irc.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        return
    handler(reader, message)


# ---------------------------------------------------------------------------- rooms


def join(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    if message.params[0] == "0":  # JOIN 0: leave every channel
        for room in list(conn.rooms.values()):
            reader.request({"type": "part", "room": room.name, "ref": ref("PART", room.name)})
        return
    for target in message.params[0].split(","):
        if not target:
            continue
        try:
            if name_key(normalize_room(target)) in conn.rooms:
                continue  # already there: IRC clients expect nothing
        except FrameError:
            pass  # the hub says what is wrong with the name
        frame: Frame = {"type": "join", "room": target, "ref": ref("JOIN", target)}
        if "draft/chathistory" in conn.caps:
            frame["history"] = 0  # the client asks for what it wants with CHATHISTORY
        reader.request(frame)


def part(reader: IrcReader, message: Message) -> None:
    reason = message.param(1) or None
    for target in message.params[0].split(","):
        if target:
            reader.request({"type": "part", "room": target, "reason": reason,
                            "ref": ref("PART", target)})


def topic(reader: IrcReader, message: Message) -> None:
    target = message.params[0]
    frame: Frame = {"type": "topic", "room": target, "ref": ref("TOPIC", target)}
    if len(message.params) > 1:
        frame["text"] = irc.strip_formatting(message.params[1])
    reader.request(frame)


def names(reader: IrcReader, message: Message) -> None:
    if not message.params:
        reader.irc.numeric(irc.RPL_ENDOFNAMES, "*", "End of /NAMES list.")
        return
    target = message.params[0].split(",")[0]
    reader.request({"type": "who", "room": target, "ref": ref("NAMES", target)})


def who(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    mask = message.param(0, "*")
    if irc.is_channel(mask):
        reader.request({"type": "who", "room": mask, "ref": ref("WHO", mask)})
        return
    with reader.hub.lock:
        found = _visible(reader, mask)
        line = None if found is None or found.nick is None else who_line(
            conn.fmt, conn.me, "*", found.nick, getattr(found, "away", None) is not None)
    if line is not None:
        conn.send_lines(line)
    conn.numeric(irc.RPL_ENDOFWHO, mask, "End of /WHO list.")


def whois(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    nick = message.params[-1].split(",")[0]
    fmt, me = conn.fmt, conn.me
    with reader.hub.lock:
        found = _visible(reader, nick)
        rooms = [irc.channel(room.name) for room in found.rooms.values()] if found else []
        away = getattr(found, "away", None)
        real = found.nick if found is not None else None
    if real is None:
        conn.numeric(irc.ERR_NOSUCHNICK, nick, "No such nick/channel")
    else:
        kind = "an IRC client" if found is not None and found.format.name == "irc" else \
            f"a {found.format.description}" if found is not None else ""
        lines = [fmt.numeric(irc.RPL_WHOISUSER, me, real, real, "chatkit", "*", real)]
        lines += list_lines(fmt, irc.RPL_WHOISCHANNELS, me, [real], rooms)
        lines.append(fmt.numeric(irc.RPL_WHOISSERVER, me, real, fmt.server,
                                 f"chatkit, connected with {kind}"))
        if away is not None:
            lines.append(fmt.numeric(irc.RPL_AWAY, me, real, away))
        conn.send_lines(*lines)
    conn.numeric(irc.RPL_ENDOFWHOIS, real or nick, "End of /WHOIS list.")


def list_rooms(reader: IrcReader, message: Message) -> None:
    reader.request({"type": "rooms", "ref": "LIST"})


def mode(reader: IrcReader, message: Message) -> None:
    """Enough MODE that clients do not error out: no channel modes but +n (messages only from
    members), user modes +i and +w accepted and kept."""
    conn = reader.irc
    target, changes = message.params[0], message.params[1:]
    if irc.is_channel(target):
        with reader.hub.lock:
            exists = name_key(target[1:]) in reader.hub.rooms
        if not exists:
            conn.numeric(irc.ERR_NOSUCHCHANNEL, target, "No such channel")
        elif not changes:
            conn.send_lines(conn.fmt.numeric(irc.RPL_CHANNELMODEIS, conn.me, target, "+n",
                                                trailing=False))
        elif changes[0].lstrip("+") in ("b", "e", "I") and len(changes) == 1:
            conn.numeric(irc.RPL_ENDOFBANLIST, target, "End of channel ban list")
        else:
            conn.numeric(irc.ERR_CHANOPRIVSNEEDED, target, "chatkit rooms have no modes to set")
        return
    if name_key(target) != name_key(conn.me):
        conn.numeric(irc.ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if not changes:
        conn.send_lines(conn.fmt.numeric(irc.RPL_UMODEIS, conn.me,
                                            "+" + "".join(sorted(conn.umodes)), trailing=False))
        return
    adding, applied = True, ""
    for char in changes[0]:
        if char in "+-":
            adding = char == "+"
        elif char in "iw":
            if adding != (char in conn.umodes):
                (conn.umodes.add if adding else conn.umodes.discard)(char)
                applied += ("+" if adding else "-") + char
        else:
            conn.numeric(irc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
            return
    if applied:
        conn.send_lines(irc.line("MODE", conn.me, applied, source=_me_prefix(conn.me),
                                 trailing=True))


# ---------------------------------------------------------------------------- talking


def privmsg(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    command = message.command
    if not message.params or not message.params[0]:
        if command == "PRIVMSG":
            conn.numeric(irc.ERR_NORECIPIENT, f"No recipient given ({command})")
        return
    if len(message.params) < 2 or not message.params[1]:
        if command == "PRIVMSG":
            conn.numeric(irc.ERR_NOTEXTTOSEND, "No text to send")
        return
    target, text = message.params[0].split(",")[0], message.params[1]
    is_action = False
    parsed = irc.ctcp(text)
    if parsed is not None:
        if parsed[0] != "ACTION":
            return  # VERSION, PING, DCC...: chatkit users have nothing that answers them
        is_action, text = True, parsed[1]
    text = irc.strip_formatting(text)
    if irc.is_channel(target):
        # the room's name without `#`: exactly the hub's key when it is a checked name, so
        # the hub finds the room without normalising the name again (the hot path)
        reader.request({"type": "me" if is_action else "msg", "room": target[1:],
                        "text": text, "ref": ref(command, target)})
        return
    if is_action:  # chatkit has no private actions: the words say it
        text = f"* {conn.me} {text}"
    if reader.request({"type": "privmsg", "to": target, "text": text,
                       "ref": ref(command, target)}) and command == "PRIVMSG":
        with reader.hub.lock:
            found = reader.hub.nicks.get(_nick_key(target))
            away = getattr(found, "away", None)
        if away is not None and found is not None and found.nick is not None:
            conn.numeric(irc.RPL_AWAY, found.nick, away)


def away(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    text = message.param(0)
    if text:
        conn.away = irc.fit_bytes(irc.strip_formatting(text), 200)
        conn.numeric(irc.RPL_NOWAWAY, "You have been marked as being away")
    else:
        conn.away = None
        conn.numeric(irc.RPL_UNAWAY, "You are no longer marked as being away")
    # away-notify: the IRC clients that share a room and asked for it hear of it at once.
    # Away is the IRC door's own state (chatkit has none), so it goes straight to them, not
    # through the bus; and not to crowds, whose arrivals and departures are summaries too.
    params = [conn.away] if conn.away else []
    data = irc.wire(irc.line("AWAY", *params, source=_me_prefix(conn.me), trailing=bool(params)))
    with reader.hub.lock:
        for other in reader.hub.co_members(conn, crowds=False):
            if "away-notify" in getattr(other, "caps", ()):
                other.deliver(data)


# ---------------------------------------------------------------------------- the server


def ping(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    conn.send_lines(irc.line("PONG", conn.server, message.param(0, conn.server),
                             source=conn.server, trailing=True))


def pong(reader: IrcReader, message: Message) -> None:
    """The answer to our PING: arriving at all was its purpose."""


def nick(reader: IrcReader, message: Message) -> None:
    new = message.params[0]
    reader.request({"type": "nick", "nick": new, "ref": ref("NICK", new)})


def already(reader: IrcReader, message: Message) -> None:
    reader.irc.numeric(irc.ERR_ALREADYREGISTERED, "You may not reregister")


def quit_(reader: IrcReader, message: Message) -> None:
    reader.request({"type": "quit", "reason": irc.strip_formatting(message.param(0)) or None})


def motd(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    conn.send_lines(*motd_lines(conn.fmt, conn.me, reader.hub.name))


def lusers(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    users, rooms = reader.hub.counts()
    conn.numeric(irc.RPL_LUSERCLIENT, f"There are {users} users and 0 invisible on 1 servers")
    conn.send_lines(conn.fmt.numeric(irc.RPL_LUSERCHANNELS, conn.me, str(rooms),
                                        "channels formed"))
    conn.numeric(irc.RPL_LUSERME, f"I have {users} clients and 0 servers")


def version(reader: IrcReader, message: Message) -> None:
    from chatkit import __version__

    conn = reader.irc
    fmt = conn.fmt
    conn.send_lines(fmt.numeric(irc.RPL_VERSION, conn.me, f"chatkit-{__version__}", fmt.server,
                                "chatkit's IRC door"),
                    fmt.numeric(irc.RPL_ISUPPORT, conn.me,
                                *isupport({}, fmt.server)[:12], "are supported by this server"))


def ison(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    asked = " ".join(message.params).split()
    with reader.hub.lock:
        here = [found.nick for name in asked
                if (found := _visible(reader, name)) is not None and found.nick]
    reply: list[str] = []
    size = 0
    for nick in here:  # one line: as many as fit in it
        size += len(nick.encode()) + 1
        if size > 400:
            break
        reply.append(nick)
    conn.numeric("303", " ".join(reply))


def userhost(reader: IrcReader, message: Message) -> None:
    conn = reader.irc
    with reader.hub.lock:
        found = [member for name in message.params[:5]
                 if (member := _visible(reader, name)) is not None]
        replies = [f"{m.nick}={'-' if getattr(m, 'away', None) else '+'}{m.nick}@chatkit"
                   for m in found if m.nick]
    conn.numeric("302", " ".join(replies))


def help_(reader: IrcReader, message: Message) -> None:
    reader.request({"type": "help", "ref": "HELP"})


def _nick_key(name: str) -> str:
    return name_key(unicodedata.normalize("NFKC", name.strip()))


def _visible(reader: IrcReader, name: str) -> Member | None:
    """The member called `name`, unless it is a quiet script sender (left out of every
    member list, docs/protocol.md); the caller holds the hub's lock."""
    found = reader.hub.nicks.get(_nick_key(name))
    return None if found is None or found.quiet or found.nick is None else found


def _me_prefix(nick: str) -> str:
    from chatkit.server.doors.irc.formats import prefix

    return prefix(nick)


COMMANDS: dict[str, Handler] = {
    "JOIN": join, "PART": part, "TOPIC": topic, "NAMES": names, "WHO": who, "WHOIS": whois,
    "LIST": list_rooms, "MODE": mode, "PRIVMSG": privmsg, "NOTICE": privmsg, "AWAY": away,
    "PING": ping, "PONG": pong, "NICK": nick, "USER": already, "PASS": already,
    "QUIT": quit_, "MOTD": motd, "LUSERS": lusers, "VERSION": version, "ISON": ison,
    "USERHOST": userhost, "HELP": help_, "CAP": cap, "CHATHISTORY": chathistory,
    "AUTHENTICATE": authenticate,
}
#: parameters a command needs (461 ERR_NEEDMOREPARAMS otherwise)
MIN_PARAMS = {"JOIN": 1, "PART": 1, "TOPIC": 1, "WHOIS": 1, "MODE": 1, "NICK": 1, "CAP": 1,
              "ISON": 1, "USERHOST": 1, "CHATHISTORY": 3}
