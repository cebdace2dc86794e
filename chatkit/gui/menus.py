"""The main window's menus and keys: Chat (join, switch, mute, reconnect, quit) and View
(clear, font size, sound). Every action has a key, so the window is usable without a mouse."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence

if TYPE_CHECKING:
    from chatkit.gui.window import MainWindow


def add_menus(window: MainWindow) -> None:
    """The Chat and View menus, each action with its key."""
    chat = window.menuBar().addMenu("&Chat")
    view = window.menuBar().addMenu("&View")
    for menu, text, keys, slot in (
        (chat, "Join room…", "Ctrl+J", window.open_join_dialog),
        (chat, "Switch to…", "Ctrl+K", window.open_switch_dialog),
        (chat, "Mute this room", "Ctrl+M", window.toggle_mute),
        (chat, "Reconnect now", "Ctrl+R", lambda: window.handler.handle("/reconnect")),
        (chat, "Quit", "Ctrl+Q", lambda: window.leave(None)),
        (view, "Clear this conversation", "Ctrl+L", lambda: window.handler.handle("/clear")),
        (view, "Bigger text", "Ctrl++", lambda: window.change_font(1)),
        (view, "Smaller text", "Ctrl+-", lambda: window.change_font(-1)),
        (view, "Sound on mentions", "", window.toggle_sound),
    ):
        action = QAction(text, window)
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        menu.addAction(action)
        if text == "Sound on mentions":
            action.setCheckable(True)
            action.setChecked(window.gui_settings.sound)
    bigger = QAction(window)  # Ctrl+= too: the + key without Shift on most keyboards
    bigger.setShortcut(QKeySequence("Ctrl+="))
    bigger.triggered.connect(lambda: window.change_font(1))
    window.addAction(bigger)
