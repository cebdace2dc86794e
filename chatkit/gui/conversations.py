"""The desktop client's conversations: one per joined room and one per private correspondent.

Owns: which conversations there are, which one is in view, each one's lines (a
`MessageModel`), unread counts and mention marks, and putting each batch of events where it
belongs (`chatkit.gui.lines.destinations`), one model insert per conversation per batch. It
says when a line deserves attention (`attention`); the window decides how to raise it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from chatkit.gui.lines import ChatLine, Destination, destinations, line_for, local_line
from chatkit.gui.messages import MessageModel
from chatkit.protocol import Frame, name_key


@dataclass
class Conversation:
    dest: Destination
    model: MessageModel
    unread: int = 0
    mention: bool = False

    @property
    def label(self) -> str:
        """The room list's text for it: its name, then unread count and mention mark."""
        name = f"✉ {self.dest.name}" if self.dest.private else f"#{self.dest.name}"
        if self.unread:
            name += f"  ({self.unread})"
        if self.mention:
            name += "  ●"
        return name


class Conversations(QObject):
    """Every conversation and the one in view. `changed` when the list, a count or the view
    changes; `attention(conversation, line)` for a mention or private message from someone
    else, live (never replayed history)."""

    changed = Signal()
    attention = Signal(object, object)

    def __init__(self, me: Callable[[], str], ignored: Callable[[], frozenset[str]],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._me = me
        self._ignored = ignored
        self.items: dict[str, Conversation] = {}
        self.current: str | None = None
        self.active = True  # the window is the active one (unread counts only when not seen)
        self._early: list[ChatLine] = []

    # ------------------------------------------------------------------ the list

    def ensure(self, dest: Destination) -> Conversation:
        conversation = self.items.get(dest.key)
        if conversation is None:
            conversation = Conversation(dest, MessageModel())
            self.items[dest.key] = conversation
            if self._early:
                conversation.model.append(self._early)
                self._early = []
            if self.current is None:
                self.current = dest.key
            self.changed.emit()
        return conversation

    def remove(self, key: str) -> None:
        if self.items.pop(key, None) is not None:
            if self.current == key:
                self.current = next(iter(self.items), None)
            self.changed.emit()

    def select(self, key: str) -> Conversation | None:
        conversation = self.items.get(key)
        if conversation is not None:
            self.current = key
            conversation.unread, conversation.mention = 0, False
            self.changed.emit()
        return conversation

    def in_view(self) -> Conversation | None:
        return self.items.get(self.current) if self.current is not None else None

    def ordered(self) -> list[Conversation]:
        """Rooms first, then private conversations, each alphabetically."""
        return sorted(self.items.values(), key=lambda c: (c.dest.private, c.dest.key))

    def room_key(self, room: str) -> str:
        return Destination(room).key

    # ------------------------------------------------------------------ showing events

    def show(self, frames: Iterable[Frame], rooms_of: Mapping[str, list[str]]) -> None:
        """Put a batch of (sanitised, checked) frames into their conversations."""
        me, ignored = self._me(), self._ignored()
        batches: dict[str, list[ChatLine]] = {}
        for frame in frames:
            targets = destinations(frame, me, rooms_of)
            if targets is None:
                current = self.in_view()
                targets = [current.dest] if current is not None else []
            if not targets:  # before any conversation: shown in the first one
                if (early := line_for(frame, me, None, ignored)) is not None:
                    self._early.append(early)
                continue
            for dest in targets:
                room = None if dest.private else dest.name
                line = line_for(frame, me, room, ignored)
                if line is None:
                    continue
                conversation = self.ensure(dest)
                batches.setdefault(dest.key, []).append(line)
                self._count(conversation, line)
        for key, lines in batches.items():
            if (target := self.items.get(key)) is not None:
                target.model.append(lines)
        if batches:
            self.changed.emit()

    def say(self, text: str, style: str = "class:status") -> None:
        """A line of the client's own in the conversation in view."""
        conversation = self.in_view()
        if conversation is not None:
            conversation.model.append([local_line(text, style)])

    def _count(self, conversation: Conversation, line: ChatLine) -> None:
        if line.own or line.history:
            return
        seen = conversation.dest.key == self.current and self.active
        talk = bool(line.kinds & {"message", "private"})
        if talk and not seen:
            conversation.unread += 1
        if (line.mention or line.private) and not seen:
            conversation.mention = True
        if line.mention or line.private or talk:
            self.attention.emit(conversation, line)


def rooms_by_person(rooms: Mapping[str, list[str]], me: str) -> dict[str, list[str]]:
    """name_key(nick) -> the rooms they share with us, from room -> members (and "" -> every
    room, for our own rename)."""
    out: dict[str, list[str]] = {"": list(rooms)}
    for room, members in rooms.items():
        for nick in members:
            if name_key(nick) != name_key(me):
                out.setdefault(name_key(nick), []).append(room)
    return out
