"""The member list beside the conversation, following the crowd rule.

Owns: `MemberPanel`: the people of the room in view as the session's model knows them, and a
header with the count. In a crowd (a room whose member list the server sent only in part,
docs/protocol.md) the header says "N people, M shown" and "load all" asks the server for the
whole list (`who ROOM`). A private conversation shows its correspondent.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chatkit.client.render import nick_colour
from chatkit.client.session import ChatSession
from chatkit.gui.style import colour, is_dark
from chatkit.protocol import name_key


def member_facts(session: ChatSession, room: str) -> tuple[list[str], int, bool]:
    """(the names we know, how many people are in the room, whether the names are all)."""
    names = session.members(room)
    return names, max(session.member_count(room), len(names)), session.members_complete(room)


class MemberPanel(QWidget):
    """`load_all(room)` when the user asks for a crowd's whole list; `chosen(nick)` on a
    double-click (the window opens a private conversation)."""

    load_all = Signal(str)
    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel(self)
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.list = QListWidget(self)
        self.load_button = QPushButton("load all", self)
        self.load_button.hide()
        self._room = ""
        self._shown: tuple[str, ...] = ()
        self.load_button.clicked.connect(lambda: self.load_all.emit(self._room))
        self.list.itemActivated.connect(lambda item: self.chosen.emit(item.text()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.load_button)
        layout.addWidget(self.list)

    def show_room(self, session: ChatSession, room: str) -> None:
        names, count, complete = member_facts(session, room)
        self._room = room
        people = f"{count} {'person' if count == 1 else 'people'}"
        if complete:
            self.header.setText(people)
            self.load_button.hide()
        else:
            self.header.setText(f"{people}, {len(names)} shown")
            self.load_button.show()
        self._fill(names, session.nick)

    def show_person(self, nick: str, me: str) -> None:
        self._room = ""
        self.header.setText("private conversation")
        self.load_button.hide()
        self._fill([me, nick], me)

    def _fill(self, names: list[str], me: str) -> None:
        if tuple(names) == self._shown:
            return
        self._shown = tuple(names)
        dark = is_dark(self.palette())
        self.list.clear()
        for nick in names:
            item = QListWidgetItem(nick)
            if name_key(nick) != name_key(me):  # ours: the palette's text colour, bold
                item.setForeground(colour(nick_colour(nick), dark))
            else:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.list.addItem(item)

    def names(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def refresh_colours(self) -> None:
        self._shown = ()
