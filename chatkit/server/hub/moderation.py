"""Who may do what in a room, and who may not: roles (founder, operator, voice, server admin),
room settings (moderated, invite-only, topic lock), bans and mutes, invitations. The checks
(`may_join`, `may_speak`, `may_set_topic`, `is_op`, `server_ban`) are asked by the hub's
handlers, so every door obeys them.

The state lives in memory, guarded by the hub's lock, and is loaded from the database at start
(chatkit/store/records.py); a change is made here under the lock and written to the database
after the lock is released (`Moderation.save`, no SQLite under the hub's lock). Roles belong
to accounts (a nickname can be taken, an account cannot); invitations belong to the running
server only. A ban or mute given to a nickname that is not logged in also covers the address
it connects from, so that a new nickname does not lift it (docs/security.md says what an
address can and cannot stop on a LAN).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING

from chatkit.net.addresses import address_group, host_of
from chatkit.protocol import DEFAULT_ROOM, FrameError, name_key
from chatkit.store import Records, RoomSettings, Sanction, StoreError

if TYPE_CHECKING:
    from chatkit.server.hub.member import Member

log = logging.getLogger("chatkit.server")

#: bans and mutes in force at once (server-wide and in every room together): bounded memory
MAX_SANCTIONS = 10_000


def address_of(member: Member) -> str:
    """The address group a member connects from (an IPv4 address, an IPv6 /64)."""
    return address_group(host_of(member.peer))


def account_key(member: Member) -> str | None:
    return name_key(member.account) if member.account else None


class Moderation:
    """See the module docstring. Every method but `load` and `save` runs under the hub's
    lock."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.settings: dict[str, RoomSettings] = {}  # by room key
        self.roles: dict[tuple[str, str], set[str]] = {}  # (room key, account key) -> roles
        self.sanctions: dict[int, Sanction] = {}  # by id
        #: the same by (what, room key, kind, value): a check is three look-ups, however
        #: many bans there are (it runs for every message)
        self._index: dict[tuple[str, str | None, str, str], Sanction] = {}
        self.invites: dict[str, set[str]] = {}  # room key -> invited nick keys
        self._next_id = 1
        self.load()

    def load(self, lock: AbstractContextManager[object] | None = None) -> None:
        """Read settings, roles and sanctions from the database (start; SIGHUP, with the
        hub's lock: taken once they are read)."""
        settings = self.records.room_settings()
        roles: dict[tuple[str, str], set[str]] = {}
        for room, account, role in self.records.roles():
            roles.setdefault((room, account), set()).add(role)
        sanctions = {s.id: s for s in self.records.sanctions()}
        last = self.records.last_sanction_id()
        with lock or nullcontext():
            self.settings, self.roles, self.sanctions = settings, roles, sanctions
            self._index = {_key(s): s for s in sanctions.values()}
            self._next_id = max([*sanctions, last, self._next_id - 1]) + 1

    @staticmethod
    def save(*writes: Callable[[], object]) -> None:
        """Write changes made in memory to the database; outside the hub's lock. A failure
        is logged: the change holds until the server stops."""
        for write in writes:
            try:
                write()
            except StoreError as exc:
                log.error("moderation not saved: %s", exc)

    # ------------------------------------------------------------------ roles

    def founder(self, room: str) -> str | None:
        settings = self.settings.get(name_key(room))
        return settings.founder if settings else None

    def has_role(self, member: Member, room: str, role: str) -> bool:
        key = account_key(member)
        return key is not None and role in self.roles.get((name_key(room), key), set())

    def is_op(self, member: Member, room: str) -> bool:
        """Admins, the room's founder and its operators."""
        if member.admin:
            return True
        key = account_key(member)
        return key is not None and (self.founder(room) == key or self.has_role(member, room,
                                                                                "op"))

    def ops_anywhere(self, member: Member) -> bool:
        key = account_key(member)
        if member.admin:
            return True
        return key is not None and (
            any(s.founder == key for s in self.settings.values())
            or any(a == key and "op" in roles for (_, a), roles in self.roles.items()))

    def marks(self, member: Member, room: str | None) -> list[str]:
        """How `/who` marks a member: admin, founder, op, voice."""
        marks = ["admin"] if member.admin else []
        if room is not None:
            key = account_key(member)
            if key is not None and self.founder(room) == key:
                marks.append("founder")
            elif self.has_role(member, room, "op"):
                marks.append("op")
            if self.has_role(member, room, "voice"):
                marks.append("voice")
        return marks

    def found(self, room: str, member: Member) -> Callable[[], None] | None:
        """A room created by someone logged in gets them as founder, unless it has one: the
        write to make, or None."""
        key = name_key(room)
        if member.account is None or key == DEFAULT_ROOM:
            return None
        current = self.settings.get(key)
        if current is not None and current.founder is not None:
            return None
        settings = replace(current, founder=account_key(member)) if current else \
            RoomSettings(room, account_key(member))
        self.settings[key] = settings
        return lambda: self.records.save_room(settings)

    def forget_account(self, account: str) -> None:
        """An account given up: its roles and foundings go (the database did it already)."""
        key = name_key(account)
        self.roles = {k: v for k, v in self.roles.items() if k[1] != key}
        for room_key, settings in list(self.settings.items()):
            if settings.founder == key:
                self.settings[room_key] = replace(settings, founder=None)

    def set_role(self, room: str, account: str, role: str, given: bool
                 ) -> Callable[[], None]:
        roles = self.roles.setdefault((name_key(room), name_key(account)), set())
        (roles.add if given else roles.discard)(role)
        return lambda: self.records.set_role(room, account, role, given)

    def set_mode(self, room: str, mode: str, on: bool) -> Callable[[], None]:
        key = name_key(room)
        current = self.settings.get(key) or RoomSettings(room, None)
        settings = RoomSettings(current.room, current.founder,
                                on if mode == "moderated" else current.moderated,
                                on if mode == "invite_only" else current.invite_only,
                                on if mode == "topic_lock" else current.topic_lock)
        self.settings[key] = settings
        return lambda: self.records.save_room(settings)

    def mode(self, room: str, mode: str) -> bool:
        settings = self.settings.get(name_key(room))
        return bool(getattr(settings, mode)) if settings else False

    # ------------------------------------------------------------------ sanctions

    def matching(self, what: str, member: Member, room: str | None, *,
                 nick: str | None = None, now: float | None = None) -> Sanction | None:
        """The ban or mute in force on `member` in `room` (None: server-wide), if any."""
        if not self._index:
            return None
        now = time.time() if now is None else now
        room_key = name_key(room) if room is not None else None
        wanted = [("nick", name_key(nick or member.nick or "")), ("address", address_of(member))]
        if member.account:
            wanted.append(("account", name_key(member.account)))
        for kind, value in wanted:
            sanction = self._index.get((what, room_key, kind, value))
            if sanction is not None and sanction.active(now):
                return sanction
        return None

    def add(self, what: str, room: str | None, targets: list[tuple[str, str]],
            label: str | None, by: str, reason: str | None, duration: int | None
            ) -> Callable[[], None]:
        """Ban or mute each (kind, value) of `targets`; a new one replaces the old."""
        expires = time.time() + duration if duration else None
        room_key = name_key(room) if room else None
        if len(self.sanctions) + len(targets) > MAX_SANCTIONS:
            raise FrameError("too_many_bans", "too many bans and mutes on this server; lift "
                             "some first")
        added: list[Sanction] = []
        for kind, value in targets:
            old = self._index.pop((what, room_key, kind, value), None)
            if old is not None:
                self.sanctions.pop(old.id, None)
            try:  # a cluster's shared store gives the id (bus/cluster_records.py)
                id_ = self.records.reserve_sanction_id(self._next_id)
            except StoreError as exc:
                log.error("moderation: %s", exc)
                raise FrameError("store_failed", "the ban could not be saved; try again "
                                 "later") from None
            self._next_id = id_ + 1
            sanction = Sanction(id_, what, room, kind, value, label, by, reason, time.time(),
                                expires)
            self.sanctions[sanction.id] = sanction
            self._index[_key(sanction)] = sanction
            added.append(sanction)

        def write() -> None:
            for sanction in added:
                self.records.add_sanction(sanction)
        return write

    def lift(self, what: str, room: str | None, target: str) -> tuple[list[Sanction],
                                                                      Callable[[], None]]:
        """Lift the bans (mutes) in `room` given to `target`: a name (nick or account), an
        address, or `#ID`; returns what was lifted and the write to make."""
        room_key = name_key(room) if room else None
        target = target.strip()
        lifted = []
        for sanction in list(self.sanctions.values()):
            if sanction.what != what or (name_key(sanction.room) if sanction.room
                                         else None) != room_key:
                continue
            if target.startswith("#") and target[1:] == str(sanction.id) or \
                    sanction.value in (name_key(target), target) or \
                    (sanction.label is not None and sanction.label == name_key(target)):
                lifted.append(self.sanctions.pop(sanction.id))
                self._index.pop(_key(sanction), None)
        ids = [s.id for s in lifted]

        def write() -> None:
            for id_ in ids:
                self.records.remove_sanction(id_)
        return lifted, write

    def listing(self, what: str, room: str | None) -> list[Sanction]:
        now = time.time()
        room_key = name_key(room) if room else None
        return [s for s in self.sanctions.values() if s.what == what and s.active(now)
                and (name_key(s.room) if s.room else None) == room_key]

    # ------------------------------------------------------------------ the checks

    def may_join(self, member: Member, room: str) -> None:
        """Raise FrameError when `member` may not join `room` (banned, not invited). Its
        operators are never kept out (an address ban must not lock out the founder sitting
        behind the same address)."""
        if self.is_op(member, room):
            return
        ban = self.matching("ban", member, room)
        if ban is not None:
            raise FrameError("banned", f"you are banned from {room}{until(ban)}"
                             f"{': ' + ban.reason if ban.reason else ''}")
        if self.mode(room, "invite_only") and not self.is_op(member, room):
            invited = self.invites.get(name_key(room), set())
            if name_key(member.nick or "") not in invited:
                raise FrameError("invite_only", f"{room} is invite-only: ask an operator "
                                 "for an /invite")
            invited.discard(name_key(member.nick or ""))

    def may_speak(self, member: Member, room: str) -> None:
        """Raise FrameError when `member` may not talk in `room` (muted, moderated)."""
        if self.is_op(member, room):
            return
        mute = self.matching("mute", member, room)
        if mute is not None:
            raise FrameError("muted", f"you are muted in {room}{until(mute)}")
        if self.mode(room, "moderated") and not self.has_role(member, room, "voice"):
            raise FrameError("moderated", f"{room} is moderated: only operators and voiced "
                             "people speak")

    def may_set_topic(self, member: Member, room: str) -> None:
        if self.mode(room, "topic_lock") and not self.is_op(member, room):
            raise FrameError("not_operator", f"the topic of {room} is locked: only its "
                             "operators change it")

    def server_ban(self, member: Member, nick: str) -> None:
        """Raise FrameError when a server-wide ban covers `member` registering as `nick`."""
        ban = self.matching("ban", member, None, nick=nick)
        if ban is not None and not member.admin:
            raise FrameError("banned", f"you are banned from this server{until(ban)}"
                             f"{': ' + ban.reason if ban.reason else ''}")


def _key(s: Sanction) -> tuple[str, str | None, str, str]:
    return s.what, name_key(s.room) if s.room else None, s.kind, s.value


def until(sanction: Sanction) -> str:
    """ for 10 more minutes, or nothing for a sanction without an end."""
    if sanction.expires is None:
        return ""
    left = max(1, int(sanction.expires - time.time()))
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if left >= seconds:
            count = left // seconds
            return f" for {count} more {unit}{'s' if count != 1 else ''}"
    return f" for {left} more second{'s' if left != 1 else ''}"
