"""The moderation requests: `moderate` (a room operator's, or an admin's, action on a room or
the whole server), `kill` and `wall` (admins). Every action is checked here, at the hub, is
announced as a notice (who did what to whom, and why) to the room or the people concerned,
and is stored in the log as kind "moderation"; what it changes is written to the database
once the hub's lock is released (chatkit/server/hub/moderation.py)."""

from __future__ import annotations

import ipaddress
import logging
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatkit.net.addresses import address_group
from chatkit.protocol import Frame, FrameError, clean_text, field, name_key, normalize_room
from chatkit.protocol.events import BanInfo, BansReply, ModerationNotice, PartEvent
from chatkit.server.hub.account_requests import account_reply
from chatkit.server.hub.history import stored_row
from chatkit.server.hub.member import Member
from chatkit.server.hub.moderation import account_key, address_of
from chatkit.server.hub.rooms import Room

if TYPE_CHECKING:
    from chatkit.server.hub.hub import Hub

log = logging.getLogger("chatkit.server")

Write = Callable[[], None]
_ROLE_ACTIONS = {"op": ("op", True), "deop": ("op", False), "voice": ("voice", True),
                 "devoice": ("voice", False)}
_MODES = {"moderated": "moderated", "invite_only": "invite-only", "topic_lock": "topic lock"}
MAX_DURATION = 366 * 86400


class ModerationRequests:
    """The handlers (see the module docstring); registered in Requests' table."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.handlers = {"moderate": self.on_moderate, "kill": self.on_kill,
                         "wall": self.on_wall}

    # ------------------------------------------------------------------ helpers

    def announce(self, by: Member, action: str, text: str, *, room: Room | None,
                 target: str | None, recipients: list[Member], frame: Frame) -> None:
        """The notice of an action, to `recipients`, stored; the caller holds the lock."""
        hub = self.hub
        id_, ts = hub.stamp()
        event: ModerationNotice = {"type": "notice", "text": text,
                                   "room": room.name if room else None, "action": action,
                                   "by": by.nick or "", "target": target, "id": id_, "ts": ts}
        if by not in recipients:
            recipients = [*recipients, by]
        hub.publish(event, recipients=recipients, sender=by, ref=frame.get("ref"),
                    row=stored_row(event, "moderation"))
        log.info("moderation: %s", text)

    def connected(self, nick: str) -> Member | None:
        return self.hub.nicks.get(name_key(unicodedata.normalize("NFKC", nick.strip())))

    def protect(self, actor: Member, target: Member, room: Room | None) -> None:
        """Operators cannot act on admins or on the room's founder; nobody on themselves;
        nobody on a member of another node of a cluster (moderation is each node's own)."""
        if target is actor:
            raise FrameError("bad_target", "not on yourself")
        if actor.admin:
            return
        founder = self.hub.moderation.founder(room.name) if room else None
        if target.admin or (founder is not None and account_key(target) == founder
                            and account_key(actor) != founder):
            what = "an admin" if target.admin else \
                f"the founder of {room.name if room else ''}"
            raise FrameError("not_operator", f"{target.nick} is {what}: ask an admin")

    def targets(self, spec: str) -> tuple[list[tuple[str, str]], Member | None, str]:
        """What a ban or mute given to `spec` covers: a connected nickname (and its account,
        or its address when it is a guest), an address, or a name (nickname and account)."""
        member = self.connected(spec)
        if member is not None:
            key = name_key(member.nick or "")
            extra = ("account", name_key(member.account)) if member.account else \
                ("address", address_of(member))
            return [("nick", key), extra], member, member.nick or spec
        try:
            return [("address", address_group(str(ipaddress.ip_address(spec))))], None, spec
        except ValueError:
            pass
        try:
            key = name_key(unicodedata.normalize("NFKC", spec.strip()))
        except Exception:  # noqa: BLE001 - anything a name cannot be
            raise FrameError("bad_target", "not a nickname, account or address") from None
        if not key or len(key) > 64:
            raise FrameError("bad_target", "not a nickname, account or address")
        return [("nick", key), ("account", key)], None, spec.strip()

    # ------------------------------------------------------------------ moderate

    def on_moderate(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        action = field(frame, "action", str)
        room_name = field(frame, "room", str, required=False)
        writes: list[Write] = []
        with hub.lock:
            hub.check_current(member)
            room: Room | None = None
            if room_name is None:
                if not member.admin:
                    raise FrameError("not_operator", "only server admins do that")
                if action not in ("ban", "unban", "bans"):
                    raise FrameError("bad_frame", f"'{action}' needs a room")
            else:
                room = hub.room(normalize_room(room_name))
                if not hub.moderation.is_op(member, room.name):
                    raise FrameError("not_operator", f"you are not an operator of {room.name}")
            if action == "bans":
                self.list_bans(member, room, frame)
            elif action in _ROLE_ACTIONS and room is not None:
                writes += self.role(member, room, action, frame)
            elif action == "kick" and room is not None:
                self.kick(member, room, frame)
            elif action in ("ban", "mute"):
                writes += self.sanction(member, room, action, frame)
            elif action in ("unban", "unmute"):
                writes += self.lift(member, room, action, frame)
            elif action == "invite" and room is not None:
                self.invite(member, room, frame)
            elif action in _MODES and room is not None:
                writes += self.mode(member, room, action, frame)
            else:
                raise FrameError("bad_frame", f"unknown moderation action {action!r}")
        hub.moderation.save(*writes)

    def role(self, member: Member, room: Room, action: str, frame: Frame) -> list[Write]:
        role, given = _ROLE_ACTIONS[action]
        spec = field(frame, "target", str)
        target = self.connected(spec)
        account = target.account if target else spec.strip()
        if account is None or not self.hub.accounts.is_registered(account):
            raise FrameError("no_account", f"{spec} is not logged in to an account: roles are "
                             "given to accounts")
        if target is not None and not given:
            self.protect(member, target, room)
        if not given and self.hub.moderation.founder(room.name) == name_key(account):
            raise FrameError("not_operator", f"{account} founded {room.name} and stays its "
                             "operator")
        write = self.hub.moderation.set_role(room.name, account, role, given)
        verb = {"op": "made {} an operator of {}", "deop": "took {}'s operator role in {}",
                "voice": "gave {} a voice in {}", "devoice": "took {}'s voice in {}"}[action]
        shown = target.nick if target else account
        self.announce(member, action, f"{member.nick} {verb.format(shown, room.name)}",
                      room=room, target=shown, recipients=list(room.members.values()),
                      frame=frame)
        for other in self.hub.nicks.values():  # its command list changes
            if other.account and name_key(other.account) == name_key(account):
                other.send_frame(account_reply(self.hub, other, "roles"))
        return [write]

    def kick(self, member: Member, room: Room, frame: Frame) -> None:
        spec = field(frame, "target", str)
        target = self.connected(spec)
        if target is None or name_key(room.name) not in target.rooms:
            raise FrameError("no_such_nick", f"{spec} is not in {room.name}")
        self.protect(member, target, room)
        reason = _reason(frame)
        self.announce(member, "kick", f"{member.nick} kicked {target.nick} from {room.name}"
                      f"{_why(reason)}", room=room, target=target.nick,
                      recipients=list(room.members.values()), frame=frame)
        self.remove(target, room, f"kicked by {member.nick}{_why(reason)}")

    def remove(self, target: Member, room: Room, reason: str) -> None:
        remove_from_room(self.hub, target, room, reason)

    def sanction(self, member: Member, room: Room | None, what: str, frame: Frame
                 ) -> list[Write]:
        hub = self.hub
        spec = field(frame, "target", str)
        duration = field(frame, "duration", int, required=False)
        if duration is not None and not 0 < duration <= MAX_DURATION:
            raise FrameError("bad_frame", "a duration must be from 1 second to a year")
        reason = _reason(frame)
        if what == "mute" and room is None:
            raise FrameError("bad_frame", "mutes are per room")
        covered, target, shown = self.targets(spec)
        if target is not None:
            self.protect(member, target, room)
        write = hub.moderation.add(what, room.name if room else None, covered,
                                   name_key(shown), member.nick or "", reason, duration)
        span = f" for {_span(duration)}" if duration else ""
        where = f" from {room.name}" if what == "ban" and room else \
            f" in {room.name}" if room else " from the server"
        verb = "banned" if what == "ban" else "muted"
        text = f"{member.nick} {verb} {shown}{where}{span}{_why(reason)}"
        audience = list(room.members.values()) if room else list(hub.nicks.values())
        self.announce(member, what, text, room=room, target=shown, recipients=audience,
                      frame=frame)
        if what == "ban":  # everyone the ban covers goes, whatever nickname they use
            for other in list(hub.nicks.values()):
                scope = room.name if room else None
                # people of other nodes: their node applies the ban (enforce_bans)
                if other.remote or other.admin or (
                        room is not None and hub.moderation.is_op(other, room.name)) \
                        or hub.moderation.matching("ban", other, scope) is None:
                    continue
                if room is None:
                    hub.retire(other, f"banned from the server by {member.nick}")
                    other.end("banned from the server")
                elif name_key(room.name) in other.rooms:
                    self.remove(other, room, f"banned by {member.nick}{_why(reason)}")
        return [write]

    def lift(self, member: Member, room: Room | None, action: str, frame: Frame
             ) -> list[Write]:
        spec = field(frame, "target", str)
        what = "ban" if action == "unban" else "mute"
        lifted, write = self.hub.moderation.lift(what, room.name if room else None, spec)
        if not lifted:
            raise FrameError("no_such_ban", f"no {what} of {spec} "
                             f"{'in ' + room.name if room else 'on the server'}")
        verb = "lifted the ban of" if what == "ban" else "unmuted"
        where = f" in {room.name}" if room else " on the server"
        audience = list(room.members.values()) if room else [member]
        self.announce(member, action, f"{member.nick} {verb} {spec}{where}", room=room,
                      target=spec, recipients=audience, frame=frame)
        return [write]

    def list_bans(self, member: Member, room: Room | None, frame: Frame) -> None:
        hub = self.hub
        scope = room.name if room else None
        found = hub.moderation.listing("ban", scope) + hub.moderation.listing("mute", scope)
        bans: list[BanInfo] = [
            {"id": s.id, "what": s.what, "kind": s.kind, "value": s.value, "by": s.by,
             "reason": s.reason, "expires": s.expires} for s in found[:200]]
        id_, ts = hub.stamp()
        reply: BansReply = {"type": "bans", "room": scope, "bans": bans, "id": id_, "ts": ts}
        hub.reply(member, reply, frame)

    def invite(self, member: Member, room: Room, frame: Frame) -> None:
        spec = field(frame, "target", str)
        target = self.connected(spec)
        if target is None:
            raise FrameError("no_such_nick", f"no such nick: {spec}")
        invited = self.hub.moderation.invites.setdefault(name_key(room.name), set())
        if len(invited) >= 1000:
            invited.clear()  # bounded: invitations are for people about to join
        invited.add(name_key(target.nick or ""))
        self.announce(member, "invite", f"{member.nick} invited {target.nick} to {room.name}",
                      room=room, target=target.nick,
                      recipients=[*room.members.values(), target], frame=frame)

    def mode(self, member: Member, room: Room, action: str, frame: Frame) -> list[Write]:
        on = field(frame, "on", bool)
        write = self.hub.moderation.set_mode(room.name, action, on)
        self.announce(member, action, f"{member.nick} turned {_MODES[action]} "
                      f"{'on' if on else 'off'} in {room.name}", room=room, target=None,
                      recipients=list(room.members.values()), frame=frame)
        return [write]

    # ------------------------------------------------------------------ admins

    def on_kill(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        spec = field(frame, "nick", str)
        reason = _reason(frame)
        with hub.lock:
            hub.check_current(member)
            if not member.admin:
                raise FrameError("not_operator", "only server admins do that")
            target = self.connected(spec)
            if target is None:
                raise FrameError("no_such_nick", f"no such nick: {spec}")
            if target is member:
                raise FrameError("bad_target", "not on yourself")
            self.announce(member, "kill", f"{member.nick} disconnected {target.nick}"
                          f"{_why(reason)}", room=None, target=target.nick,
                          recipients=[target, *hub.co_members(target)], frame=frame)
            if target.remote:  # its own node disconnects it, after the notice
                hub.bus.act_remote(target, "kill", None, f"killed by {member.nick}"
                                   f"{_why(reason)}")
                return
            hub.retire(target, f"killed by {member.nick}{_why(reason)}")
            target.end(f"killed by {member.nick}")

    def on_wall(self, member: Member, frame: Frame) -> None:
        hub = self.hub
        text = clean_text(field(frame, "text", str), "message")
        with hub.lock:
            hub.check_current(member)
            if not member.admin:
                raise FrameError("not_operator", "only server admins do that")
            self.announce(member, "wall", f"[{member.nick} to everyone] {text}", room=None,
                          target=None, recipients=list(hub.nicks.values()), frame=frame)


def remove_from_room(hub: Hub, target: Member, room: Room, reason: str) -> None:
    """Take `target` out of `room`, as a `part` everyone there sees (in a crowd: the target
    now, the others in the next presence summary, as for any part). Someone on another node
    of a cluster is taken out by its own node. Under the hub's lock."""
    if target.remote:
        hub.bus.act_remote(target, "kick", room.name, reason)
        return
    id_, ts = hub.stamp()
    event: PartEvent = {"type": "part", "room": room.name, "nick": target.nick or "",
                        "reason": reason, "id": id_, "ts": ts}
    crowd = hub.announce_departure(target, room)
    hub.publish(event, recipients=[target] if crowd else list(room.members.values()))
    hub.leave(target, room)


def enforce_bans(hub: Hub) -> None:
    """Apply the bans in force to this node's own people (another node of a cluster banned
    someone; the bans were just read again). Under the hub's lock."""
    for member in [m for m in hub.nicks.values() if not m.remote and not m.admin]:
        if hub.moderation.matching("ban", member, None) is not None:
            hub.retire(member, "banned from the server")
            member.end("banned from the server")
            continue
        for room in list(member.rooms.values()):
            if not hub.moderation.is_op(member, room.name) and \
                    hub.moderation.matching("ban", member, room.name) is not None:
                remove_from_room(hub, member, room, "banned")


def _reason(frame: Frame) -> str | None:
    value = field(frame, "reason", str, required=False)
    return clean_text(value, "reason", allow_empty=True)[:300] or None if value else None


def _why(reason: str | None) -> str:
    return f" ({reason})" if reason else ""


def _span(seconds: int) -> str:
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
