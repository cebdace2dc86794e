"""Text mode (nc/telnet users): telnet negotiation filtering and the readable lines a text-mode
user sees for each server frame."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from chatkit.protocol.names import name_key
from chatkit.protocol.sanitize import sane_ts

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



def render_text(frame: Mapping[str, Any], me: str | None = None) -> list[str]:
    """The readable lines a text-mode user sees for one server frame (no line endings)."""
    kind = frame.get("type")
    if frame.get("history") and kind in ("message", "topic"):
        ts = sane_ts(frame.get("ts"))
        when = time.strftime("%H:%M", time.localtime(ts)) if ts is not None else "??:??"
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
        own = me is not None and name_key(frame["nick"]) == name_key(me)
        return [f"*** {'you' if own else frame['nick']} left {frame['room']}{reason}"]
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
    if kind == "presence":
        return [f"*** {frame['room']}: {_presence(frame)} ({frame['count']:,} here)"]
    if kind == "joined":
        members = frame.get("members", [])
        partial = frame.get("partial")  # a crowd: `members` names only some
        if frame.get("page"):  # a later page of a long member list
            return [] if partial else [f"*** also in {frame['room']}: {', '.join(members)}"]
        if partial:
            lines = [f"*** you joined {frame['room']} ({frame.get('count', 0):,} here; "
                     f"/who {frame['room']} lists them all)"]
        else:
            count = f"{len(members)}{'+' if frame.get('more') else ''}"  # more pages follow
            lines = [f"*** you joined {frame['room']} ({count} here: {', '.join(members)})"]
        if frame.get("topic"):
            lines.append(f"*** topic: {frame['topic']}")
        return lines
    if kind == "who":
        users = [{**u, "nick": marked(u)} for u in frame.get("users", [])]
        if frame.get("page"):  # a later page of a long list
            return ["***   " + ", ".join(
                f"{u['nick']} ({', '.join(u['rooms']) or 'no room'})" if not frame.get("room")
                else u["nick"] for u in users)]
        count = f"{len(users)}{'+' if frame.get('more') else ''}"  # more pages follow
        if frame.get("room"):
            return [f"*** {count} in {frame['room']}: "
                    + ", ".join(user["nick"] for user in users)]
        return [f"*** {count} connected: "
                + ", ".join(f"{u['nick']} ({', '.join(u['rooms']) or 'no room'})" for u in users)]
    if kind == "rooms":
        rooms = frame.get("rooms", [])
        lines = [] if frame.get("page") else [  # a later page: more rooms, no heading
            f"*** {len(rooms)}{'+' if frame.get('more') else ''} room"
            f"{'s' if len(rooms) != 1 or frame.get('more') else ''}:"]
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
    if kind in ("account", "bans"):
        return _account_lines(frame)
    if kind == "error":
        return [f"!!! {frame['message']}"]
    if kind == "bye":
        return [f"*** bye: {frame.get('reason') or 'disconnected'}"]
    if kind == "welcome":
        return [f"*** welcome to {frame['server']}, {frame['nick']}! "
                "Type to talk, /help for commands."]
    return []


def _presence(frame: Mapping[str, Any]) -> str:
    """`3 joined: ann, bo and 1 more; 1 left: cy` for a crowd's presence summary."""
    parts = []
    for names, total, verb in ((frame["joined"], frame["joined_count"], "joined"),
                               (frame["left"], frame["left_count"], "left")):
        if total:
            named = ", ".join(names)
            more = f" and {total - len(names)} more" if total > len(names) else ""
            parts.append(f"{total} {verb}: {named}{more}" if names else f"{total} {verb}")
    return "; ".join(parts) or "no change"


_ACCOUNT_EVENTS = {
    "registered": "you registered the account {} and are logged in to it",
    "identified": "you are logged in as {}",
    "unregistered": "your account is no more: you are a guest now",
    "password_changed": "password changed",
    "roles": "your roles changed (logged in as {}): /help lists your commands",
}


def _account_lines(frame: Mapping[str, Any]) -> list[str]:
    """An `account` reply, or a `bans` list."""
    if frame.get("type") == "account":
        line = _ACCOUNT_EVENTS.get(str(frame.get("event")), "account: {}")
        admin = " (server admin)" if frame.get("admin") and frame.get("event") in (
            "registered", "identified") else ""
        return [f"*** {line.format(frame.get('account'))}{admin}"]
    where = frame.get("room") or "the server"
    bans = frame.get("bans", [])
    if not bans:
        return [f"*** no bans or mutes in {where}"]
    lines = [f"*** bans and mutes in {where}:"]
    for ban in bans:
        until = "" if ban.get("expires") is None else time.strftime(
            " until %Y-%m-%d %H:%M", time.localtime(sane_ts(ban["expires"]) or 0))
        reason = f" ({ban['reason']})" if ban.get("reason") else ""
        lines.append(f"***   #{ban['id']} {ban.get('what', 'ban')} {ban['kind']} "
                     f"{ban['value']} by {ban.get('by')}{until}{reason}")
    return lines


def marked(user: Mapping[str, Any]) -> str:
    """A `who` user's nick as listed: `@` for the room's founder and operators, `+` for
    voiced people, ` (admin)` after a server admin."""
    roles = user.get("roles")
    nick = str(user.get("nick", ""))
    if not isinstance(roles, list) or not roles:
        return nick
    prefix = "@" if "founder" in roles or "op" in roles else "+" if "voice" in roles else ""
    return prefix + nick + (" (admin)" if "admin" in roles else "")
