"""Screenshots of the real windows, grabbed offscreen from a scripted session. They land in
$CHATKIT_SCREENSHOTS when it is set (`CHATKIT_SCREENSHOTS=docs/images pytest -k screenshots`
makes the ones in docs/gui.md), in a temporary directory otherwise: a test that every window
draws."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from chatkit.gui.dialogs import FirstTrustBox
from chatkit.gui.settings import GuiSettings

from gui_helpers import GUI_TIMEOUT_MS, connected_window, dialog_of, wait_shown
from helpers import JsonClient, free_udp_port


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#2b2b2b"),
                         (QPalette.ColorRole.WindowText, "#e0e0e0"),
                         (QPalette.ColorRole.Base, "#1e1e1e"),
                         (QPalette.ColorRole.AlternateBase, "#2b2b2b"),
                         (QPalette.ColorRole.Text, "#e0e0e0"),
                         (QPalette.ColorRole.Button, "#3a3a3a"),
                         (QPalette.ColorRole.ButtonText, "#e0e0e0"),
                         (QPalette.ColorRole.Highlight, "#3d6fb6"),
                         (QPalette.ColorRole.HighlightedText, "#ffffff")):
        palette.setColor(role, QColor(colour))
    return palette


def test_screenshots_of_the_windows(server_factory, gui, qtbot, tmp_path):
    out = Path(os.environ.get("CHATKIT_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    server = server_factory(discovery=True, discovery_port=port, name="office")
    server_factory(discovery=True, discovery_port=port, name="lab", tls=False,
                   password="secret")
    settings = GuiSettings.load()
    settings.nick = "alice"
    settings.save()
    controller = gui(broadcast=("127.255.255.255",), discovery_port=port)
    controller.start()
    start = controller.start_window
    qtbot.waitUntil(lambda: start.list.topLevelItemCount() == 2, timeout=GUI_TIMEOUT_MS)
    start.list.setCurrentItem(start.list.topLevelItem(1))
    qtbot.wait(50)
    start.grab().save(str(out / "gui-start.png"))
    start.button.click()  # the chosen server
    box = dialog_of(qtbot, controller, FirstTrustBox)
    qtbot.wait(50)
    box.grab().save(str(out / "gui-trust.png"))
    box.trust_button.click()
    window = connected_window(qtbot, controller)
    window.resize(1100, 620)
    people = [JsonClient(server.port, nick, room=None) for nick in ("bob", "carol", "dmitri")]
    try:
        bob, carol, dmitri = people
        for client in people:
            client.request({"type": "join", "room": "lobby", "history": 0})
        bob.request({"type": "join", "room": "release", "history": 0})
        carol.request({"type": "topic", "room": "lobby",
                       "text": "Friday: 0.2 release, cake at 4"})
        window.input.setText("/join release")
        window.input.returnPressed.emit()
        qtbot.waitUntil(lambda: window.conversations.current == "#release",
                        timeout=GUI_TIMEOUT_MS)
        bob.request({"type": "msg", "room": "release", "text": "tagging v0.2 now"})
        window.select("#lobby")
        for client, text in (
                (bob, "morning all"), (carol, "the <b>build</b> is green again"),
                (dmitri, "alice: can you review #42 before lunch?"),
                (carol, "on it after standup")):
            client.request({"type": "msg", "room": "lobby", "text": text})
        dmitri.request({"type": "me", "room": "lobby", "text": "brings coffee"})
        window.input.setText("sure, looking now")
        window.input.returnPressed.emit()
        bob.request({"type": "msg", "room": "release", "text": "changelog is in"})
        bob.request({"type": "privmsg", "to": "alice", "text": "lunch at 12?"})
        wait_shown(qtbot, window, "sure, looking now")
        qtbot.waitUntil(lambda: "@bob" in window.conversations.items, timeout=GUI_TIMEOUT_MS)
        window.input.setText("/jo")
        window.input.complete()
        qtbot.wait(100)
        window.grab().save(str(out / "gui-main.png"))
        app = QApplication.instance()
        original = app.palette()
        app.setPalette(dark_palette())
        try:
            qtbot.wait(100)
            window.grab().save(str(out / "gui-main-dark.png"))
        finally:
            app.setPalette(original)
    finally:
        for client in people:
            client.close()
    for name in ("gui-start", "gui-trust", "gui-main", "gui-main-dark"):
        assert (out / f"{name}.png").stat().st_size > 5000
