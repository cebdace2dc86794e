"""Accounts in the desktop client against a real server: /register asks for the password in
a dialog that never echoes it, the window says so, and a reconnect logs in by itself."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from chatkit.gui.dialogs import account_password_dialog

from gui_helpers import GUI_TIMEOUT_MS, connected_window, wait_shown

PASSWORD = "correct horse"


def test_register_from_the_window_and_log_in_again_after_a_drop(server, gui, qtbot):
    controller = gui(host="127.0.0.1", port=server.port, nick="erin", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
    asked: list[str] = []
    window.handler.ask_password = lambda label: asked.append(label) or PASSWORD
    window.input.setFocus()
    qtbot.keyClicks(window.input, "/register")
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    wait_shown(qtbot, window, "you registered the account erin")
    assert asked == ["New password for erin:", "The same password again:"]
    assert server.hub.accounts.is_registered("erin")
    with server.hub.lock:
        member = server.hub.nicks["erin"]
    member.end("test: cut")
    qtbot.waitUntil(lambda: (m := server.hub.nicks.get("erin")) is not None
                    and m is not member and m.account == "erin", timeout=GUI_TIMEOUT_MS)


def test_the_password_dialog_never_echoes(qtbot):
    dialog = account_password_dialog(None, "Password for erin:")
    qtbot.addWidget(dialog)
    assert dialog.textEchoMode() == QLineEdit.EchoMode.Password
