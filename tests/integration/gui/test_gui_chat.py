"""Chatting in the desktop client against a real server: rooms with unread counts and
mention marks, private conversations, Tab completion and input history, every /command, and
reconnecting after the server restarts with the missed lines shown once."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from chatkit.gui.dialogs import JoinRoomDialog, SwitchDialog
from chatkit.gui.settings import GuiSettings

from gui_helpers import GUI_TIMEOUT_MS, connected_window, shown, wait_shown
from helpers import JsonClient


@pytest.fixture
def alice(server, gui, qtbot):
    controller = gui(host="127.0.0.1", port=server.port, nick="alice", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
    return window


def type_line(qtbot, window, text: str) -> None:
    window.input.setFocus()
    qtbot.keyClicks(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)


def test_rooms_unread_counts_and_mentions(server, alice, qtbot):
    window = alice
    bob = JsonClient(server.port, "bob")
    try:
        type_line(qtbot, window, "/join dev")
        qtbot.waitUntil(lambda: window.conversations.current == "#dev", timeout=GUI_TIMEOUT_MS)
        assert window.session.current_room == "dev"
        labels = [window.room_list.item(i).text() for i in range(window.room_list.count())]
        assert labels == ["#dev", "#lobby"]
        bob.send({"type": "msg", "room": "lobby", "text": "anyone?"})
        bob.send({"type": "msg", "room": "lobby", "text": "alice: are you there"})
        qtbot.waitUntil(lambda: window.conversations.items["#lobby"].label
                        == "#lobby  (2)  ●", timeout=GUI_TIMEOUT_MS)
        assert any("anyone?" in line for line in shown(window, "#lobby"))
        assert not any("anyone?" in line for line in shown(window))  # dev is in view
        assert window.notifier.notified[-1] == ("chatkit: #lobby", window.notifier.notified[-1][1])
        assert "alice: are you there" in window.notifier.notified[-1][1]
        window.select("#lobby")  # seen: the marks go
        assert window.conversations.items["#lobby"].label == "#lobby"
        assert window.session.current_room == "lobby"
        type_line(qtbot, window, "back in the lobby")
        assert bob.expect("message", nick="alice")["room"] == "lobby"
        # topic above the conversation, people beside it
        bob.send({"type": "topic", "room": "lobby", "text": "release day"})
        qtbot.waitUntil(lambda: "release day" in window.topic.text(), timeout=GUI_TIMEOUT_MS)
        assert window.members.names() == ["alice", "bob"]
        window.toggle_mute()  # lobby muted: still marked, no notification
        assert "muted" in window.status.text()
        raised = len(window.notifier.notified)
        window.select("#dev")
        bob.send({"type": "msg", "room": "lobby", "text": "alice: muted?"})
        qtbot.waitUntil(lambda: window.conversations.items["#lobby"].mention,
                        timeout=GUI_TIMEOUT_MS)
        assert len(window.notifier.notified) == raised
        type_line(qtbot, window, "/part dev")
        qtbot.waitUntil(lambda: "#dev" not in window.conversations.items,
                        timeout=GUI_TIMEOUT_MS)
    finally:
        bob.close()


def test_join_room_dialog_lists_rooms_with_people_and_topics(server, alice, qtbot):
    window = alice
    bob = JsonClient(server.port, "bob", room="design")
    try:
        bob.send({"type": "topic", "room": "design", "text": "logos"})
        bob.expect("topic")
        window.open_join_dialog()
        dialog = window.join_dialog
        assert isinstance(dialog, JoinRoomDialog)
        qtbot.waitUntil(lambda: "design" in dialog.rooms(), timeout=GUI_TIMEOUT_MS)
        item = dialog.table.findItems("design", Qt.MatchFlag.MatchExactly, 0)[0]
        assert (item.text(1), item.text(2)) == ("1", "logos")
        dialog.name.setText("design")
        dialog.accept()
        qtbot.waitUntil(lambda: window.conversations.current == "#design",
                        timeout=GUI_TIMEOUT_MS)
        # Ctrl+K: switch back by typing part of the name
        window.open_switch_dialog()
        switch = window.switch_dialog
        assert isinstance(switch, SwitchDialog)
        switch.filter.setText("lob")
        switch.accept()
        assert window.conversations.current == "#lobby"
    finally:
        bob.close()


def test_private_messages_are_their_own_conversation(server, alice, qtbot):
    window = alice
    bob = JsonClient(server.port, "bob")
    try:
        bob.send({"type": "privmsg", "to": "alice", "text": "psst"})
        qtbot.waitUntil(lambda: "@bob" in window.conversations.items, timeout=GUI_TIMEOUT_MS)
        assert any("psst" in line for line in shown(window, "@bob"))
        assert window.conversations.items["@bob"].label.startswith("✉ bob")
        assert not any("psst" in line for line in shown(window, "#lobby"))
        window.select("@bob")
        type_line(qtbot, window, "hi privately")
        private = bob.expect("private", **{"from": "alice"})
        assert private["text"] == "hi privately"
        wait_shown(qtbot, window, "hi privately", "@bob")
        # /msg from a room opens the conversation too
        window.select("#lobby")
        type_line(qtbot, window, "/msg bob one more")
        wait_shown(qtbot, window, "one more", "@bob")
    finally:
        bob.close()


def test_tab_completion_and_input_history(server, alice, qtbot):
    window = alice
    bob = JsonClient(server.port, "bob")
    try:
        qtbot.waitUntil(lambda: "bob" in window.session.nicks(), timeout=GUI_TIMEOUT_MS)
        line = window.input
        line.setFocus()
        qtbot.keyClicks(line, "/jo")
        qtbot.keyClick(line, Qt.Key.Key_Tab)
        assert line.text() == "/join "
        assert line.hasFocus()  # Tab completed, it did not move the focus
        line.clear()
        qtbot.keyClicks(line, "bo")
        qtbot.keyClick(line, Qt.Key.Key_Tab)
        assert line.text() == "bob: "
        line.clear()
        qtbot.keyClicks(line, "/msg b")
        qtbot.keyClick(line, Qt.Key.Key_Tab)
        assert line.text() == "/msg bob "
        line.clear()
        qtbot.keyClicks(line, "/bell m")
        qtbot.keyClick(line, Qt.Key.Key_Tab)
        assert line.text() == "/bell mention "
        line.clear()
        type_line(qtbot, window, "first")
        type_line(qtbot, window, "second")
        qtbot.keyClicks(line, "draft")
        qtbot.keyClick(line, Qt.Key.Key_Up)
        assert line.text() == "second"
        qtbot.keyClick(line, Qt.Key.Key_Up)
        assert line.text() == "first"
        qtbot.keyClick(line, Qt.Key.Key_Down)
        qtbot.keyClick(line, Qt.Key.Key_Down)
        assert line.text() == "draft"
    finally:
        bob.close()


def test_every_command_the_terminal_client_knows(server, alice, qtbot):
    window = alice
    for command, answer in (("/help", "/reconnect"), ("/who", "connected:"),
                            ("/rooms", "lobby"), ("/bell", "bell: mention"),
                            ("/reconnect", "already connected"), ("/topic", "topic")):
        type_line(qtbot, window, command)
        wait_shown(qtbot, window, answer)
    type_line(qtbot, window, "/nick alicia")
    qtbot.waitUntil(lambda: window.session.nick == "alicia", timeout=GUI_TIMEOUT_MS)
    type_line(qtbot, window, "/me is done")
    wait_shown(qtbot, window, "* alicia is done")
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: shown(window) == [], timeout=GUI_TIMEOUT_MS)
    size = window.gui_settings.font_size
    window.change_font(+2)
    assert window.view.font().pointSize() == size + 2
    type_line(qtbot, window, "/quit bye")
    qtbot.waitUntil(lambda: window.session.state == "closed", timeout=GUI_TIMEOUT_MS)
    remembered = GuiSettings.load()  # font size and window geometry, for next time
    assert remembered.font_size == size + 2 and remembered.geometry


def test_reconnects_after_restart_and_shows_missed_lines_once(server_factory, gui, qtbot,
                                                              tmp_path):
    db = str(tmp_path / "log.db")
    server = server_factory(db=db)
    port = server.port
    controller = gui(host="127.0.0.1", port=port, nick="alice", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    bob = JsonClient(port, "bob")
    bob.send({"type": "msg", "room": "lobby", "text": "before the restart"})
    wait_shown(qtbot, window, "before the restart")
    bob.close()
    server.stop()
    qtbot.waitUntil(lambda: "reconnecting" in window.status.text()
                    or "connecting" in window.status.text(), timeout=GUI_TIMEOUT_MS)
    type_line(qtbot, window, "typed while away")
    wait_shown(qtbot, window, "will send after reconnecting")
    server_factory(port=port, db=db)
    carol = JsonClient(port, "carol")
    try:
        carol.send({"type": "msg", "room": "lobby", "text": "while you were away"})
        carol.expect("message", nick="carol")
        assert carol.expect("message", nick="alice", timeout=15)["text"] == "typed while away"
        wait_shown(qtbot, window, "while you were away")
        wait_shown(qtbot, window, "reconnected to test as alice")
        lines = shown(window)
        assert sum("while you were away" in line for line in lines) == 1
        assert sum("before the restart" in line for line in lines) == 1
        assert sum("<alice> typed while away" in line for line in lines) == 1
        assert "connected" in window.status.text()
    finally:
        carol.close()


def test_a_crowd_shows_the_count_and_loads_the_whole_list(server_factory, gui, qtbot):
    server = server_factory(crowd_size=3)  # a room of 4 or more is a crowd
    others = [JsonClient(server.port, nick) for nick in ("bob", "carol", "dan", "eve")]
    try:
        controller = gui(host="127.0.0.1", port=server.port, nick="alice", insecure=True)
        controller.start()
        window = connected_window(qtbot, controller)
        wait_shown(qtbot, window, "you joined lobby")
        header = window.members.header
        qtbot.waitUntil(lambda: header.text() == "5 people, 3 shown", timeout=GUI_TIMEOUT_MS)
        assert window.members.load_button.isVisible()
        assert "lobby (5)" in window.status.text()
        window.members.load_button.click()  # `who lobby`: the whole list
        qtbot.waitUntil(lambda: header.text() == "5 people", timeout=GUI_TIMEOUT_MS)
        assert window.members.names() == ["alice", "bob", "carol", "dan", "eve"]
        assert not window.members.load_button.isVisible()
        others.append(JsonClient(server.port, "frank"))  # arrivals come as a summary
        wait_shown(qtbot, window, "frank")
        qtbot.waitUntil(lambda: header.text().startswith("6 people"), timeout=GUI_TIMEOUT_MS)
    finally:
        for client in others:
            client.close()
