"""Helpers for the desktop client's tests: waiting for questions, windows and lines."""

from __future__ import annotations

from chatkit.gui.controller import Controller
from chatkit.gui.window import MainWindow

GUI_TIMEOUT_MS = 20_000  # a bound, not a wait: generous for a loaded machine


def dialog_of(qtbot, controller: Controller, kind: type) -> object:
    """Wait until `controller` asks a question of type `kind`; return the dialog."""
    qtbot.waitUntil(lambda: isinstance(controller.dialog, kind), timeout=GUI_TIMEOUT_MS)
    return controller.dialog


def connected_window(qtbot, controller: Controller) -> MainWindow:
    """Wait until the main window is up and connected."""
    qtbot.waitUntil(lambda: controller.window is not None
                    and controller.window.session.state == "connected",
                    timeout=GUI_TIMEOUT_MS)
    assert controller.window is not None
    return controller.window


def shown(window: MainWindow, key: str | None = None) -> list[str]:
    """The plain text of every line of a conversation (default: the one in view)."""
    conversation = (window.conversations.items.get(key) if key is not None
                    else window.conversations.in_view())
    return [] if conversation is None else conversation.model.texts()


def wait_shown(qtbot, window: MainWindow, text: str, key: str | None = None) -> None:
    qtbot.waitUntil(lambda: any(text in line for line in shown(window, key)),
                    timeout=GUI_TIMEOUT_MS)
