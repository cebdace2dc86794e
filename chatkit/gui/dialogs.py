"""The desktop client's dialogs: trust, password, nickname, joining a room, switching rooms.

Owns: how each question is put. Every dialog is shown with `open()` (window-modal, never a
nested event loop) and answers through its `finished`/`accepted` signals, so the network keeps
flowing while a question is on screen. Everything shown that a server or a peer chose (names,
addresses, topics, fingerprints) is plain text: message boxes are switched to
`Qt.PlainText`, lists and labels hold text, never markup. Esc closes each of them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from chatkit.tls import fingerprint_hex


def _box(parent: QWidget | None, icon: QMessageBox.Icon, title: str, text: str) -> QMessageBox:
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return box


def both_forms(fingerprint: str) -> str:
    """A fingerprint as chatkit prints it and as openssl prints it."""
    return f"{fingerprint}\n{fingerprint_hex(fingerprint) or ''}"


class FirstTrustBox(QMessageBox):
    """A new server: its fingerprint in both forms, to compare with what the server printed.
    Accepted: trust it (it is pinned once it answers); rejected: do not connect."""

    def __init__(self, parent: QWidget | None, address: str, name: str, fingerprint: str
                 ) -> None:
        super().__init__(QMessageBox.Icon.Question, "New server",
                         "", QMessageBox.StandardButton.NoButton, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        called = f" ({name})" if name else ""
        self.setText(
            f"First connection to {address}{called}.\n\n"
            "Compare its certificate fingerprint with the one `chatkit serve` printed "
            "(either form):\n\n" + both_forms(fingerprint) + "\n\n"
            "chatkit remembers it (shared with `chatkit join` and `chatkit trust`) and warns "
            "you if it ever changes.")
        self.trust_button = self.addButton("Trust and connect",
                                           QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.trust_button)
        self.setEscapeButton(self.cancel_button)

    def trusted(self) -> bool:
        return self.clickedButton() is self.trust_button


class ChangedIdentityBox(QMessageBox):
    """The pinned certificate is not the presented one: blocking, with forgetting the old one
    as an explicit, non-default choice."""

    def __init__(self, parent: QWidget | None, address: str, pinned: str, presented: str
                 ) -> None:
        super().__init__(QMessageBox.Icon.Critical, "Server identity changed",
                         "", QMessageBox.StandardButton.NoButton, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setText(
            f"SERVER IDENTITY CHANGED for {address}\n\n"
            f"Pinned (trusted before):\n{both_forms(pinned)}\n\n"
            f"Presented now:\n{both_forms(presented)}\n\n"
            "Someone may be intercepting the connection, or the server got a new "
            "certificate. Forget the old one only if you know it changed (compare with what "
            "`chatkit serve` prints now).")
        self.keep_button = self.addButton("Don't connect", QMessageBox.ButtonRole.RejectRole)
        self.forget_button = self.addButton("Forget the old one and trust the new",
                                            QMessageBox.ButtonRole.DestructiveRole)
        self.setDefaultButton(self.keep_button)
        self.setEscapeButton(self.keep_button)

    def forget(self) -> bool:
        return self.clickedButton() is self.forget_button


def error_box(parent: QWidget | None, title: str, text: str) -> QMessageBox:
    box = _box(parent, QMessageBox.Icon.Critical, title, text)
    box.addButton(QMessageBox.StandardButton.Close)
    return box


def password_dialog(parent: QWidget | None, address: str, reason: str) -> QInputDialog:
    """Ask for the server password (never echoed)."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Password")
    dialog.setLabelText(f"{address}: {reason}.\nPassword:")
    dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    return dialog


def account_password_dialog(parent: QWidget | None, label: str) -> QInputDialog:
    """Ask for an account password (/register, /identify...), never echoed."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Account")
    dialog.setLabelText(label)
    dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
    dialog.setInputMode(QInputDialog.InputMode.TextInput)
    return dialog


def nick_dialog(parent: QWidget | None, reason: str, current: str = "") -> QInputDialog:
    dialog = QInputDialog(parent)
    dialog.setWindowTitle("Nickname")
    dialog.setLabelText(f"{reason}\nNickname:" if reason else "Nickname:")
    dialog.setTextValue(current)
    return dialog


class JoinRoomDialog(QDialog):
    """"Join room…": a name to type, and the server's rooms with their people and topics
    (filled by `set_rooms` when the `rooms` reply arrives)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Join room")
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("room name (created if new)")
        self.table = QTreeWidget(self)
        self.table.setHeaderLabels(["Room", "People", "Topic"])
        self.table.setRootIsDecorated(False)
        self.table.itemClicked.connect(lambda item, _col: self.name.setText(item.text(0)))
        self.table.itemActivated.connect(self._activated)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        join = QPushButton("Join", self)
        join.setDefault(True)
        buttons.addButton(join, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.name)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(480, 360)

    def set_rooms(self, rooms: list[dict[str, object]]) -> None:
        self.table.clear()
        for room in rooms:
            topic = room.get("topic")
            item = QTreeWidgetItem([str(room.get("name", "")), str(room.get("members", "")),
                                    str(topic) if isinstance(topic, str) else ""])
            self.table.addTopLevelItem(item)
        self.table.resizeColumnToContents(0)

    def rooms(self) -> list[str]:
        items = (self.table.topLevelItem(i) for i in range(self.table.topLevelItemCount()))
        return [item.text(0) for item in items if item is not None]

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        self.name.setText(item.text(0))
        self.accept()

    def room(self) -> str:
        return self.name.text().strip()


class SwitchDialog(QDialog):
    """Ctrl+K: type part of a conversation's name, Enter goes there."""

    def __init__(self, entries: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Switch to")
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("room or person")
        self.list = QListWidget(self)
        for key, label in entries:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, key)
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.filter.textChanged.connect(self._filter)
        self.filter.returnPressed.connect(self.accept)
        self.list.itemActivated.connect(lambda _item: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Go to:", self))
        layout.addWidget(self.filter)
        layout.addWidget(self.list)

    def _filter(self, text: str) -> None:
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            hidden = text.casefold() not in item.text().casefold()
            item.setHidden(hidden)
            if not hidden and first is None:
                first = row
        if first is not None:
            self.list.setCurrentRow(first)

    def chosen(self) -> str | None:
        item = self.list.currentItem()
        if item is None or item.isHidden():
            return None
        return str(item.data(Qt.ItemDataRole.UserRole))
