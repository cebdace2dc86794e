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
        self.topic: str | None = None
        self.topic_by: str | None = None
        self.quiet = 0  # members that are script senders (Member.quiet): not in `count`

    @property
    def count(self) -> int:
        """People in the room as member lists show them (script senders left out)."""
        return len(self.members) - self.quiet

    def add(self, member: Member) -> None:
        self.members[name_key(member.nick or "")] = member
        self.quiet += member.quiet

    def remove(self, member: Member) -> bool:
        """Take `member` out; False if it was not in."""
        if self.members.get(name_key(member.nick or "")) is not member:
            return False
        del self.members[name_key(member.nick or "")]
        self.quiet -= member.quiet
        return True
