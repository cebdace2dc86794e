"""Other people's text is plain text in every widget of the desktop client: markup a peer
sends (`<b>`, `<img src=…>`, links) is shown literally, and escape, bidi and zero-width
characters are removed as in the terminal client."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

from chatkit.gui.dialogs import FirstTrustBox, error_box
from chatkit.gui.messages import LINE_ROLE

from gui_helpers import GUI_TIMEOUT_MS, connected_window, shown, wait_shown
from helpers import JsonClient

INJECTION = '<b>bold</b> <img src="http://evil.example/x.png"> <a href="http://x">link</a>'


def test_rich_text_from_peers_is_shown_literally(server, gui, qtbot):
    controller = gui(host="127.0.0.1", port=server.port, nick="alice", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    bob = JsonClient(server.port, "bob")
    try:
        bob.send({"type": "msg", "room": "lobby", "text": INJECTION})
        bob.send({"type": "topic", "room": "lobby", "text": "<i>topic</i> &amp;"})
        bob.send({"type": "msg", "room": "lobby",
                  "text": "right\u202eto left\u200b \x1b[31mred\x1b[0m"})
        bob.send({"type": "privmsg", "to": "alice", "text": "<h1>big</h1>"})
        wait_shown(qtbot, window, "<bob> " + INJECTION)
        wait_shown(qtbot, window, "rightto left red")  # bidi, zero-width, escapes gone
        qtbot.waitUntil(lambda: "<i>topic</i> &amp;" in window.topic.text(),
                        timeout=GUI_TIMEOUT_MS)
        lines = shown(window)
        assert any(line.endswith("<bob> rightto left red") for line in lines), lines
        assert not any("\u202e" in line or "\x1b" in line for line in lines)
        qtbot.waitUntil(lambda: "@bob" in window.conversations.items, timeout=GUI_TIMEOUT_MS)
        assert any("<h1>big</h1>" in line for line in shown(window, "@bob"))
        # every label in the window is plain text (no AutoText guessing)
        for label in window.findChildren(QLabel):
            assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()
        assert window.topic.text().startswith("#lobby — <i>topic</i>")
        # a desktop notification's body is escaped (notification servers may read markup)
        from html import escape

        window.notifier.consider(window.conversations.items["@bob"],
                                 window.conversations.items["@bob"].model.lines[-1])
        assert "<h1>big</h1>" in window.notifier.notified[-1][1]
        assert escape("<h1>") == "&lt;h1&gt;"
        # what the view draws: the delegate's layout holds the characters as typed
        index = window.view.model().index(
            next(i for i, line in enumerate(shown(window)) if "<b>bold</b>" in line), 0)
        layout, _height = window.delegate.text_layout(  # the layout drawn for that row
            index.data(LINE_ROLE), window.view.font(), 600, False)
        assert "<b>bold</b>" in layout.text()
    finally:
        bob.close()


def test_dialogs_show_server_text_as_plain_text(qtbot):
    box = FirstTrustBox(None, "127.0.0.1:1", "<b>office</b>", "SHA256:" + "A" * 43)
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText and "<b>office</b>" in box.text()
    error = error_box(None, "x", "<img src=x>")
    qtbot.addWidget(error)
    assert error.textFormat() == Qt.TextFormat.PlainText
    assert isinstance(error, QMessageBox)


def test_this_pyside6_keeps_none_alive(qtbot):
    # PySide6 6.12.0 on Python < 3.12 returns None from void methods without a reference:
    # a few thousand calls (seconds of chat) free None and crash. pyproject excludes it.
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(500):
        label.setText("x")
    assert sys.getrefcount(None) >= before - 50
