"""A room as the hub keeps it: its name, members in joining order, and topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatkit.server.hub.member import Member


class Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, Member] = {}  # by nick key, in joining order
        self.topic: str | None = None
        self.topic_by: str | None = None
