"""Getting a person's attention: desktop notifications, the taskbar, an optional sound.

Owns: `Notifier`, which decides (with the terminal client's own rule, `should_ring`, under the
shared `/bell` setting, and the per-room mute) whether a line rings, and then raises a desktop
notification through `QSystemTrayIcon` where the platform has a tray (silently nothing where
not), asks the window manager to flash the window (`QApplication.alert`) and beeps when the
user turned the sound on. Notification text is escaped: some notification servers read
markup in the body, and a peer's `<b>` must stay four characters.
"""

from __future__ import annotations

import html

from prompt_toolkit.formatted_text import FormattedText
from PySide6.QtCore import QObject
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle, QSystemTrayIcon, QWidget

from chatkit.client.render import Rendered, should_ring
from chatkit.client.settings import Settings
from chatkit.gui.conversations import Conversation
from chatkit.gui.lines import ChatLine
from chatkit.gui.settings import GuiSettings


def rings(bell: str, line: ChatLine) -> bool:
    """Whether `line` rings under bell mode `bell`, by the terminal client's rule."""
    rendered = Rendered(FormattedText([]), mention=line.mention, private=line.private,
                        own=line.own, kinds=set(line.kinds))
    return should_ring(bell, rendered)


class Notifier(QObject):
    """Raises attention for lines that ring; `notified` lists what was raised (title, body),
    the last few, for the status bar and tests."""

    def __init__(self, window: QWidget, settings: Settings, gui_settings: GuiSettings) -> None:
        super().__init__(window)
        self.window = window
        self.settings = settings
        self.gui_settings = gui_settings
        self.notified: list[tuple[str, str]] = []
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            icon = window.windowIcon()
            if icon.isNull():
                icon = QIcon(window.style().standardIcon(
                    QStyle.StandardPixmap.SP_MessageBoxInformation))
            self.tray = QSystemTrayIcon(icon, self)
            self.tray.setToolTip("chatkit")
            self.tray.show()

    def consider(self, conversation: Conversation, line: ChatLine) -> bool:
        """Raise attention for `line` in `conversation` if it rings; True when it did."""
        if line.history or line.own:
            return False
        if not conversation.dest.private and self.gui_settings.is_muted(conversation.dest.name):
            return False
        if not rings(self.settings.bell, line):
            return False
        where = (f"private message from {conversation.dest.name}" if conversation.dest.private
                 else f"#{conversation.dest.name}")
        title = f"chatkit: {where}"
        body = line.plain
        self.notified = [*self.notified[-19:], (title, body)]
        if not self.window.isActiveWindow():
            QApplication.alert(self.window)
            if self.tray is not None and QSystemTrayIcon.supportsMessages():
                self.tray.showMessage(title, html.escape(body[:300]),
                                      QSystemTrayIcon.MessageIcon.Information, 5000)
        if self.gui_settings.sound:
            QApplication.beep()
        return True
