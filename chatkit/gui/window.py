"""The main window: rooms on the left, the conversation with its topic in the middle, the
people on the right, the input line below, the connection in the status bar.

Owns: laying those out, the keys (Ctrl+K switch, Ctrl+J join, Ctrl+L clear, Ctrl+/Ctrl-
font size, Ctrl+Q quit), turning each batch of events from the session (`EventBridge`, on the
UI thread) into what the widgets show, and remembering the geometry and font size. The
conversation state lives in `Conversations`, typed lines are carried out by `LineHandler`,
attention by `Notifier`; the session and its model are the terminal client's own.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from chatkit.client.app import merged_commands
from chatkit.client.completer import chat_completer
from chatkit.client.render import ToolbarFacts, render_toolbar
from chatkit.client.session import ChatSession, Refused
from chatkit.client.settings import BELL_MODES, Settings
from chatkit.gui.attention import Notifier
from chatkit.gui.bridge import EventBridge
from chatkit.gui.commands import LineHandler
from chatkit.gui.conversations import Conversation, Conversations, rooms_by_person
from chatkit.gui.dialogs import JoinRoomDialog, SwitchDialog, account_password_dialog
from chatkit.gui.inputline import ChatInput
from chatkit.gui.lines import Destination
from chatkit.gui.members import MemberPanel
from chatkit.gui.menus import add_menus
from chatkit.gui.messages import ConversationView
from chatkit.gui.settings import MAX_FONT_SIZE, MIN_FONT_SIZE, GuiSettings
from chatkit.gui.window_events import EventRouter
from chatkit.protocol import name_key


class MainWindow(QMainWindow):
    """One server's conversations. Build it before `session.connect()` (it sets the session's
    `on_event`), so nothing the server says first is missed."""

    def __init__(self, session: ChatSession, settings: Settings, gui_settings: GuiSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.gui_settings = gui_settings
        self.setWindowTitle(f"chatkit — {session.address}")
        self.conversations = Conversations(lambda: session.nick, settings.ignored_keys, self)
        if session.initial_room:
            self.conversations.ensure(Destination(session.initial_room))
        self.bridge = EventBridge(self)
        session.on_event = self.bridge.post
        self.handler = LineHandler(session, settings, self.conversations, self.leave,
                                   self.ask_account_password)
        self.router = EventRouter(self)
        self.bridge.batch.connect(self.router.batch)
        self.join_dialog: JoinRoomDialog | None = None
        self.switch_dialog: SwitchDialog | None = None
        self._build()
        self.router.watch_scrolling()
        self.notifier = Notifier(self, settings, gui_settings)
        self.conversations.attention.connect(self.notifier.consider)
        self.conversations.changed.connect(self.refresh)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start(1000)  # the "reconnecting in N s" countdown
        self._apply_font()
        if gui_settings.geometry:
            self.restoreGeometry(QByteArray.fromBase64(gui_settings.geometry.encode()))
        else:
            self.resize(1000, 640)
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.room_list = QListWidget(self)
        self.room_list.currentItemChanged.connect(self._room_clicked)
        join_button = QPushButton("Join room…", self)
        join_button.clicked.connect(self.open_join_dialog)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.room_list)
        left_layout.addWidget(join_button)

        self.topic = QLabel(self)
        self.topic.setTextFormat(Qt.TextFormat.PlainText)
        self.topic.setWordWrap(True)
        self.view = ConversationView(self)
        self.delegate = self.view.delegate
        session = self.session
        self.input = ChatInput(chat_completer(
            commands=lambda: merged_commands(session.commands), nicks=session.nicks,
            rooms=session.room_names, joined_rooms=session.joined_rooms,
            ignored=lambda: list(self.settings.ignored), bell_modes=BELL_MODES), self)
        self.input.submitted.connect(self.handler.handle)
        middle = QWidget(self)
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self.topic)
        middle_layout.addWidget(self.view, 1)
        middle_layout.addWidget(self.input)

        self.members = MemberPanel(self)
        self.members.load_all.connect(lambda room: self.request({"type": "who", "room": room}))
        self.members.chosen.connect(self.open_private)
        splitter = QSplitter(self)
        for widget, stretch in ((left, 0), (middle, 1), (self.members, 0)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        splitter.setSizes([180, 640, 180])
        self.setCentralWidget(splitter)
        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.statusBar().addWidget(self.status, 1)
        add_menus(self)
        self.input.setFocus()

    # ------------------------------------------------------------------ showing

    def refresh(self) -> None:
        """The room list, topic, members and status from the conversations and the model."""
        self.room_list.blockSignals(True)
        self.room_list.clear()
        for conversation in self.conversations.ordered():
            item = QListWidgetItem(conversation.label)
            item.setData(Qt.ItemDataRole.UserRole, conversation.dest.key)
            font = item.font()
            font.setBold(bool(conversation.unread or conversation.mention))
            item.setFont(font)
            self.room_list.addItem(item)
            if conversation.dest.key == self.conversations.current:
                self.room_list.setCurrentItem(item)
        self.room_list.blockSignals(False)
        current = self.conversations.in_view()
        if current is not None and self.view.model() is not current.model:
            self.view.setModel(current.model)
            self.view.scrollToBottom()
        self.refresh_room()
        self.refresh_status()

    def refresh_room(self) -> None:
        current = self.conversations.in_view()
        if current is None:
            return
        if current.dest.private:
            self.topic.setText(f"private conversation with {current.dest.name}")
            self.members.show_person(current.dest.name, self.session.nick)
            return
        room = self.session.rooms.get(name_key(current.dest.name))
        topic = room.topic if room is not None else None
        self.topic.setText(f"#{current.dest.name}" + (f" — {topic}" if topic else ""))
        self.members.show_room(self.session, current.dest.name)

    def refresh_status(self) -> None:
        session = self.session
        current = self.conversations.in_view()
        room = current.dest.name if current is not None and not current.dest.private else None
        known = session.rooms.get(name_key(room)) if room else None
        facts = ToolbarFacts(
            server=session.server_name, address=session.address, tls=session.tls, room=room,
            members=session.members(room) if room else [], state=session.state,
            retry_at=session.retry_at, queued=session.queued(),
            topic=known.topic if known else None,
            count=session.member_count(room) if room else None)
        text = "".join(text for _style, text, *_ in render_toolbar(facts)).strip()
        if room and self.gui_settings.is_muted(room):
            text += " | muted"
        self.status.setText(text)

    def _room_clicked(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is not None:
            self.select(str(item.data(Qt.ItemDataRole.UserRole)))

    def select(self, key: str) -> Conversation | None:
        conversation = self.conversations.select(key)
        if conversation is not None and not conversation.dest.private:
            self.session.set_current_room(conversation.dest.name)
        return conversation

    def open_private(self, nick: str) -> None:
        if name_key(nick) != name_key(self.session.nick):
            self.select(self.conversations.ensure(Destination(nick, private=True)).dest.key)
            self.input.setFocus()

    # ------------------------------------------------------------------ actions

    def open_join_dialog(self) -> None:
        self.join_dialog = JoinRoomDialog(self)
        self.join_dialog.accepted.connect(self._join_chosen)
        self.join_dialog.open()
        self.request({"type": "rooms"})  # the answer fills the dialog (EventRouter)

    def request(self, frame: dict[str, object]) -> None:
        """Ask the server something; said in the conversation when it cannot go now."""
        try:
            if self.session.submit(frame) == "queued":
                self.handler.say("not connected: will ask after reconnecting")
        except Refused as exc:
            self.handler.error(str(exc))

    def _join_chosen(self) -> None:
        if self.join_dialog is not None and self.join_dialog.room():
            self.handler.handle(f"/join {self.join_dialog.room()}")

    def open_switch_dialog(self) -> None:
        entries = [(c.dest.key, c.label) for c in self.conversations.ordered()]
        self.switch_dialog = SwitchDialog(entries, self)
        self.switch_dialog.accepted.connect(self._switch_chosen)
        self.switch_dialog.open()

    def _switch_chosen(self) -> None:
        if self.switch_dialog is not None and (key := self.switch_dialog.chosen()):
            self.select(key)
            self.input.setFocus()

    def toggle_mute(self) -> None:
        current = self.conversations.in_view()
        if current is not None and not current.dest.private:
            muted = self.gui_settings.toggle_mute(current.dest.name)
            self.handler.say(f"#{current.dest.name} {'muted' if muted else 'unmuted'}")
            self._save_settings()
            self.refresh_status()

    def toggle_sound(self) -> None:
        self.gui_settings.sound = not self.gui_settings.sound
        self._save_settings()

    def change_font(self, step: int) -> None:
        size = self.gui_settings.font_size + step
        self.gui_settings.font_size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, size))
        self._apply_font()
        self._save_settings()

    def _apply_font(self) -> None:
        font = self.font()
        font.setPointSize(self.gui_settings.font_size)
        for widget in (self.view, self.input, self.room_list, self.members, self.topic):
            widget.setFont(font)
        self.delegate.clear()
        model = self.view.model()
        if model is not None:
            model.layoutChanged.emit()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.delegate.clear()  # light/dark followed live
            self.members.refresh_colours()
            if hasattr(self, "router"):  # not during construction
                self.refresh_room()
        elif event.type() == QEvent.Type.ActivationChange:
            self.conversations.active = self.isActiveWindow()
        super().changeEvent(event)

    def leave(self, reason: str | None) -> None:
        self.session.quit(reason)
        self.close()

    def ask_account_password(self, label: str) -> str | None:
        """An account password for /register, /identify...: a modal dialog, never echoed."""
        dialog = account_password_dialog(self, label)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.textValue() or None

    def closeEvent(self, event: QCloseEvent) -> None:
        self.gui_settings.geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        self._save_settings()
        self._status_timer.stop()
        if self.notifier.tray is not None:
            self.notifier.tray.hide()
        self.session.quit()
        super().closeEvent(event)

    def _save_settings(self) -> None:
        try:
            self.gui_settings.save()
        except OSError as exc:
            self.handler.error(f"settings not saved: {exc}")

    def rooms_of(self) -> dict[str, list[str]]:
        """name_key(nick) -> the rooms we share with them, as the model knows now."""
        rooms = {room: self.session.members(room) for room in self.session.joined_rooms()}
        return rooms_by_person(rooms, self.session.nick)
