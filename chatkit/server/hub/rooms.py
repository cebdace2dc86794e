"""A room as the hub keeps it: its name, members in joining order, and topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatkit.protocol import name_key

if TYPE_CHECKING:
    from chatkit.server.hub.member import Member


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, Member] = {}  # by nick key, in joining order
        #: the members this process delivers to: all of them, but for a cluster's people of
        #: other nodes (hub/remote.py), whose own node delivers; in joining order too
        self.local: dict[str, Member] = {}
        self.topic: str | None = None
        self.topic_by: str | None = None
        self.quiet = 0  # members that are script senders (Member.quiet): not in `count`
        #: the first nicks in joining order, as crowd joiners are told them (`first_names`)
        self._first: list[str] | None = None
        self._first_limit = 0

    @property
    def count(self) -> int:
        """People in the room as member lists show them (script senders left out)."""
        return len(self.members) - self.quiet

    def add(self, member: Member) -> None:
        key = name_key(member.nick or "")
        self.members[key] = member
        if not member.remote:
            self.local[key] = member
        self.quiet += member.quiet
        if self._first is not None and len(self._first) < self._first_limit:
            self._first = None  # the newcomer is among the first

    def remove(self, member: Member) -> bool:
        """Take `member` out; False if it was not in."""
        if self.members.get(name_key(member.nick or "")) is not member:
            return False
        del self.members[name_key(member.nick or "")]
        self.local.pop(name_key(member.nick or ""), None)
        self.quiet -= member.quiet
        self._first = None
        return True

    def renamed(self) -> None:
        """A member changed its nick (the caller rebuilt `members`)."""
        self._first = None
        self.local = {key: m for key, m in self.members.items() if not m.remote}

    def first_names(self, limit: int) -> list[str]:
        """The first `limit` nicks in joining order (script senders left out), kept between
        calls: in a join storm every joiner of a crowd is told the same ones."""
        if self._first is None or self._first_limit != limit:
            names: list[str] = []
            for member in self.members.values():
                if not member.quiet:
                    names.append(member.nick or "")
                    if len(names) >= limit:
                        break
            self._first, self._first_limit = names, limit
        return self._first
