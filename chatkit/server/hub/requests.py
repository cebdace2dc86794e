"""The requests a member can make of the hub, one handler each: check the request's fields (a
malformed one is refused here, once, with `bad_frame`), act on the hub under its lock, answer.

A door turns its wire (a JSON line, a typed nc line, an IRC command) into one of these request
frames (chatkit/protocol/events.py) and calls `Hub.dispatch`.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatkit import protocol
from chatkit.protocol import (
    MAX_REF,
    Frame,
    FrameError,
    clean_text,
    field,
    name_key,
    normalize_nick,
    normalize_room,
)
from chatkit.protocol.events import (
    HelpReply,
    MessageEvent,
    NickEvent,
    PartEvent,
    PongFrame,
    PrivateEvent,
    RoomInfo,
    TopicEvent,
    WhoUser,
)
from chatkit.server.hub.account_requests import (
    AccountRequests,
    commands_for,
    guest_allowed,
    mark_who,
)
from chatkit.server.hub.history import stored_row
from chatkit.server.hub.member import Member
from chatkit.server.hub.moderation_requests import ModerationRequests
from chatkit.server.hub.pages import paged
from chatkit.server.hub.registration import Registration
from chatkit.server.hub.rooms import Room

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub

log = logging.getLogger("chatkit.server")

Handler = Callable[[Member, Frame], None]


class Requests:
    """The dispatch table and its handlers (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.registration = Registration(hub)
        self.handlers: dict[str, Handler] = {
            "msg": self.on_msg, "me": self.on_me, "privmsg": self.on_privmsg,
            "join": self.on_join, "part": self.on_part, "nick": self.on_nick,
            "who": self.on_who, "rooms": self.on_rooms, "topic": self.on_topic,
            "help": self.on_help, "command": self.on_command, "ping": self.on_ping,
            "quit": self.on_quit, "history": self.on_history,
        }
        self.handlers.update(AccountRequests(hub).handlers)  # hub/account_requests.py
        self.handlers.update(ModerationRequests(hub).handlers)  # hub/moderation_requests.py

    def dispatch(self, member: Member, frame: Frame) -> None:
        kind = frame["type"]
        if kind == "hello":
            self.registration.on_hello(member, frame)  # hub/registration.py
            return
        if member.nick is None:
            if kind == "quit":
                self.on_quit(member, frame)
                return
            raise FrameError("not_registered", "send 'hello' first")
        handler = self.handlers.get(kind)
        if handler is None:
            raise FrameError("unknown_type", f"unknown frame type {kind!r}")
        guest_allowed(self.hub, member, kind)  # --require-account
        handler(member, frame)

    def on_quit(self, member: Member, frame: Frame) -> None:
        member.quitting = True
        member.quit_reason = _optional_text(frame, "reason")
        self.hub.reply(member, self.hub.bye("goodbye"), frame)
        member.finish()  # the client sees the bye, then the connection ends

    # ------------------------------------------------------------------ talking

    def on_msg(self, member: Member, frame: Frame, action: bool = False) -> None:
        hub = self.hub
        text = clean_text(field(frame, "text", str), "message")
        tag = _tag(frame)
        with hub.lock:
            room = _member_room(member, field(frame, "room", str))
            hub.moderation.may_speak(member, room.name)  # muted? moderated?
            content = (room.name, text, action)
            if tag is not None and self._repeated(member, tag, content, frame):
                return
            id_, ts = hub.stamp()
            event: MessageEvent = {"type": "message", "room": room.name, "nick": _nick(member),
                                   "text": text, "action": action, "id": id_, "ts": ts}
            line = (member.client_id, tag, content) \
                if tag is not None and member.client_id is not None else None
            hub.publish(event, room=room, sender=member, ref=frame.get("ref"),
                        row=stored_row(event, "action" if action else "message"), line=line)
            if tag is not None and member.client_id is not None:
                hub.sent_lines.remember(member.client_id, tag, content, event)

    def _repeated(self, member: Member, tag: str | int, content: tuple[object, ...],
                  frame: Frame) -> bool:
        """A line this client sent before (on an earlier connection): answer it with the event
        it became, through the bus (so the answer still means "stored"), and accept nothing.
        The caller holds the lock."""
        if member.client_id is None:
            return False
        event = self.hub.sent_lines.find(member.client_id, tag, content)
        if event is None:
            return False
        self.hub.publish(event, recipients=[member], sender=member, ref=frame.get("ref"),
                         again=True)
        return True

    def on_me(self, member: Member, frame: Frame) -> None:
        self.on_msg(member, frame, action=True)

    def on_privmsg(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        to = field(frame, "to", str)
        text = clean_text(field(frame, "text", str), "message")
        tag = _tag(frame)
        with hub.lock:
            hub.check_current(member)  # sent just as a newer connection replaced this one
            target = hub.nicks.get(name_key(unicodedata.normalize("NFKC", to.strip())))
            if target is None:
                raise FrameError("no_such_nick", f"no such nick: {protocol.sanitize_text(to)}")
            content = ("private", name_key(_nick(target)), text)
            if tag is not None and self._repeated(member, tag, content, frame):
                return
            id_, ts = hub.stamp()
            event: PrivateEvent = {"type": "private", "from": _nick(member),
                                   "to": _nick(target), "text": text, "id": id_, "ts": ts}
            recipients = [target] if target is member else [target, member]
            row = stored_row(event, "private") if hub.rules.log_private else None
            line = (member.client_id, tag, content) \
                if tag is not None and member.client_id is not None else None
            hub.publish(event, recipients=recipients, sender=member, ref=frame.get("ref"),
                        row=row, line=line)
            if tag is not None and member.client_id is not None:
                hub.sent_lines.remember(member.client_id, tag, content, event)

    def on_topic(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        text = frame.get("text")
        with hub.lock:
            room = _member_room(member, field(frame, "room", str))
            if text is None:
                id_, ts = hub.stamp()
                current: TopicEvent = {"type": "topic", "room": room.name, "text": room.topic,
                                       "nick": None, "id": id_, "ts": ts}
                hub.reply(member, current, frame)
                return
            if not isinstance(text, str):
                raise FrameError("bad_frame", "field 'text' must be str")
            hub.moderation.may_speak(member, room.name)
            hub.moderation.may_set_topic(member, room.name)
            topic = clean_text(text, "topic", allow_empty=True) or None
            id_, ts = hub.stamp()
            nick = _nick(member)
            event: TopicEvent = {"type": "topic", "room": room.name, "text": topic,
                                 "nick": member.nick, "id": id_, "ts": ts}
            # The room's topic changes once the change is stored (answered store_failed, it
            # is not made), before anyone hears of it; in the room of that name then.
            key = name_key(room.name)
            hub.publish(event, room=room, sender=member, ref=frame.get("ref"),
                        row=stored_row(event, "topic"),
                        apply=lambda: hub.set_topic(hub.rooms.get(key, room), topic, nick, ts))

    # ------------------------------------------------------------------ rooms

    def on_join(self, member: Member, frame: Frame) -> None:
        name = normalize_room(field(frame, "room", str))
        create = field(frame, "create", bool, required=False, default=True)
        history = field(frame, "history", int, required=False,
                        default=self.hub.rules.history_on_join)
        after = field(frame, "after", int, required=False)
        self.hub.join(member, name, create=create, request=frame, history=history, after=after)

    def on_history(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        limit = field(frame, "limit", int, required=False, default=50)
        after = field(frame, "after", int, required=False)
        before = field(frame, "before", int, required=False)  # older pages (IRC CHATHISTORY)
        if limit < 1:
            raise FrameError("bad_frame", "'limit' must be at least 1")
        with hub.lock:
            room = _member_room(member, field(frame, "room", str))
            up_to = hub.bus.published_id  # read outside the lock, up to here
        if before is not None:
            up_to = min(up_to, before - 1)
        # A reply, read outside the lock: replies may overtake events (docs/protocol.md).
        member.deliver_reply(hub.history_bytes(member, room.name, limit, after, up_to,
                                               frame.get("ref")))

    def on_part(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        reason = _optional_text(frame, "reason")
        with hub.lock:
            room = _member_room(member, field(frame, "room", str))
            id_, ts = hub.stamp()
            event: PartEvent = {"type": "part", "room": room.name, "nick": _nick(member),
                                "reason": reason, "id": id_, "ts": ts}
            # In a crowd only the leaver hears it now; the room, in its next presence summary
            crowd = hub.announce_departure(member, room)
            audience = [member] if member.quiet or crowd else list(room.members.values())
            hub.publish(event, recipients=audience, sender=member, ref=frame.get("ref"))
            hub.leave(member, room)
            log.info("%s left %s", member.nick, room.name)

    def on_nick(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        new = normalize_nick(field(frame, "nick", str))
        with hub.lock:
            hub.check_current(member)
            if hub.accounts.is_registered(new) and (
                    member.account is None or name_key(member.account) != name_key(new)):
                raise FrameError("nick_registered", f"{new} is a registered nickname: "
                                 f"/identify {new} first, or choose another")
            hub.moderation.server_ban(member, new)
            old = member.nick or ""
            holder = hub.nicks.get(name_key(new))
            if holder is not None and holder is not member:
                raise FrameError("nick_taken", f"nickname {new} is taken; choose another")
            if new == old:
                raise FrameError("bad_nick", f"you are already {new}")
            if holder is None:
                hub.bus.claim_nick(member, new, None)  # a node of a cluster may have it
            del hub.nicks[name_key(old)]
            hub.nicks[name_key(new)] = member
            for room in member.rooms.values():
                room.members = {
                    (name_key(new) if other is member else key): other
                    for key, other in room.members.items()
                }
                room.renamed()
            member.nick = new
            hub.crowds.renamed([room.name for room in member.rooms.values()], old, new)
            hub.bus.member_changed(member, old)
            id_, ts = hub.stamp()
            event: NickEvent = {"type": "nick", "old": old, "new": new, "id": id_, "ts": ts}
            hub.publish(event, recipients=[member, *hub.co_members(member)], sender=member,
                        ref=frame.get("ref"))
            log.info("%s is now known as %s", old, new)

    def on_who(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        room_name = field(frame, "room", str, required=False)
        with hub.lock:
            room: Room | None = None
            if room_name:
                room = hub.room(normalize_room(room_name))  # the raw name may carry controls
                members = list(room.members.values())
            else:
                members = hub.members()
            users: list[WhoUser] = [
                {"nick": _nick(m), "rooms": [r.name for r in m.rooms.values()]} for m in members
                if not m.quiet or m is member]
            mark_who(hub, users, room)  # admins, founders, operators, voiced people
            empty: Frame = {"type": "who", "room": room.name if room else None}
            pages = paged(users, "users", empty, hub.stamp, frame.get("ref"))
        # A reply, paced as the client reads it (hub/pages.py: each page fits in a frame)
        member.deliver_reply(b"".join(member.format.encode_for(p, member.nick) for p in pages))

    def on_rooms(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        with hub.lock:
            rooms: list[RoomInfo] = [
                {"name": r.name, "members": len(r.members), "topic": r.topic}
                for r in sorted(hub.rooms.values(), key=lambda r: name_key(r.name))]
            pages = paged(rooms, "rooms", {"type": "rooms"}, hub.stamp, frame.get("ref"))
        member.deliver_reply(b"".join(member.format.encode_for(p, member.nick) for p in pages))

    # ------------------------------------------------------------------ the rest

    def on_help(self, member: Member, frame: Frame) -> None:
        with self.hub.lock:
            id_, ts = self.hub.stamp()
            reply: HelpReply = {"type": "help", "commands": commands_for(self.hub, member),
                                "id": id_, "ts": ts}
        self.hub.reply(member, reply, frame)

    def on_command(self, member: Member, frame: Frame) -> None:
        line = field(frame, "line", str).strip()
        if not line.startswith("/"):
            raise FrameError("bad_frame", "'command' line must start with /")
        current = member.current_room
        parsed = protocol.parse_command(line, current.name if current else None)
        if frame.get("ref") is not None:
            parsed["ref"] = frame["ref"]
        self.dispatch(member, parsed)

    def on_ping(self, member: Member, frame: Frame) -> None:
        id_, ts = self.hub.stamp()
        pong: PongFrame = {"type": "pong", "id": id_, "ts": ts}
        self.hub.reply(member, pong, frame)


def _tag(frame: Frame) -> str | int | None:
    """A line's `tag` (hub/repeats.py): a string of at most MAX_REF characters, or an int."""
    tag = frame.get("tag")
    if tag is None:
        return None
    if isinstance(tag, str) and len(tag) <= MAX_REF:
        return tag
    if isinstance(tag, int) and not isinstance(tag, bool):
        checked: int = field(frame, "tag", int)  # in range, like every integer a client sends
        return checked
    raise FrameError("bad_frame", f"'tag' must be a string of at most {MAX_REF} characters "
                                  "or an integer")


def _nick(member: Member) -> str:
    """The nickname of a registered member (every handler but hello runs for one)."""
    assert member.nick is not None, "only registered members make this request"
    return member.nick


def _member_room(member: Member, name: str) -> Room:
    """The room `name` that `member` is in, or FrameError(not_in_room)."""
    room = member.rooms.get(name_key(name))
    if room is not None and room.name == name:
        return room  # exactly a checked name: no need to normalise it again (hot path)
    name = normalize_room(name)  # the checked form: the raw one may carry controls
    room = member.rooms.get(name_key(name))
    if room is None:
        raise FrameError("not_in_room", f"you are not in {name}; /join {name} first")
    return room


def _optional_text(frame: Frame, name: str) -> str | None:
    value = field(frame, name, str, required=False)
    return clean_text(value, name, allow_empty=True) or None if value is not None else None
