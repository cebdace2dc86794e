"""`chatkit gui` connecting to a real server on 127.0.0.1: trust on first use with both
fingerprint forms, the changed-identity warning, the password dialog, chatting with a JSON
client."""

from __future__ import annotations

from PySide6.QtWidgets import QLineEdit

from chatkit.gui.dialogs import ChangedIdentityBox, FirstTrustBox
from chatkit.paths import known_servers_file
from chatkit.tls import KnownServers, ensure_certificate, fingerprint_hex

from gui_helpers import GUI_TIMEOUT_MS, connected_window, dialog_of, wait_shown
from helpers import JsonClient

OTHER = "SHA256:" + "A" * 43  # a pin no server presents


def test_first_connection_shows_both_forms_pins_and_chats(server, gui, qtbot):
    controller = gui(host="127.0.0.1", port=server.port, nick="alice")
    controller.start()
    box = dialog_of(qtbot, controller, FirstTrustBox)
    assert server.fingerprint in box.text()
    assert fingerprint_hex(server.fingerprint) in box.text()
    assert KnownServers(known_servers_file()).get(f"127.0.0.1:{server.port}") is None
    box.trust_button.click()
    window = connected_window(qtbot, controller)
    # pinned in the store `chatkit join` and `chatkit trust` use
    assert KnownServers(known_servers_file()).get(f"127.0.0.1:{server.port}") == \
        server.fingerprint
    wait_shown(qtbot, window, "you joined lobby")
    bob = JsonClient(server.port, "bob")
    try:
        bob.send({"type": "msg", "room": "lobby", "text": "hello from json"})
        wait_shown(qtbot, window, "<bob> hello from json")
        window.input.setText("hi bob")
        window.input.returnPressed.emit()
        message = bob.expect("message", nick="alice")
        assert message["text"] == "hi bob" and message["room"] == "lobby"
        bob.send({"type": "me", "room": "lobby", "text": "waves"})
        wait_shown(qtbot, window, "* bob waves")
        assert "bob" in window.members.names() and "alice" in window.members.names()
        assert "connected" in window.status.text() and "TLS" in window.status.text()
        # a second connection is not asked about again: the pin is there
        again = gui(host="127.0.0.1", port=server.port, nick="carol")
        again.start()
        connected_window(qtbot, again)
        assert again.dialog is None
    finally:
        bob.close()


def test_changed_identity_is_a_blocking_warning_with_forget_as_a_choice(
        server_factory, gui, qtbot, tmp_path):
    first = server_factory()
    port = first.port
    address = f"127.0.0.1:{port}"
    known = KnownServers(known_servers_file())
    known.pin(address, first.fingerprint)
    first.stop()
    cert, key = tmp_path / "new-cert.pem", tmp_path / "new-key.pem"
    ensure_certificate(cert, key, "elsewhere", ["127.0.0.1"])
    server = server_factory(port=port, tls_cert=str(cert), tls_key=str(key))
    assert server.fingerprint != first.fingerprint

    controller = gui(host="127.0.0.1", port=port, nick="alice")
    controller.start()
    box = dialog_of(qtbot, controller, ChangedIdentityBox)
    for value in (first.fingerprint, server.fingerprint):  # both, in both forms
        assert value in box.text() and fingerprint_hex(value) in box.text()
    assert box.defaultButton() is box.keep_button and box.escapeButton() is box.keep_button
    box.keep_button.click()
    qtbot.waitUntil(lambda: controller.start_window is not None
                    and "identity" in controller.start_window.error.text(),
                    timeout=GUI_TIMEOUT_MS)
    assert controller.window is None
    assert known.get(address) == first.fingerprint  # nothing changed

    controller.start_window.button.click()  # try again, and this time forget the old one
    box = dialog_of(qtbot, controller, ChangedIdentityBox)
    box.forget_button.click()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
    assert known.get(address) == server.fingerprint


def test_password_is_asked_in_a_dialog_never_echoed(server_factory, gui, qtbot):
    server = server_factory(password="sesame", tls=False)
    controller = gui(host="127.0.0.1", port=server.port, nick="alice", tls=False)
    controller.start()
    from PySide6.QtWidgets import QInputDialog

    dialog = dialog_of(qtbot, controller, QInputDialog)
    assert dialog.textEchoMode() == QLineEdit.EchoMode.Password
    assert "needs a password" in dialog.labelText()
    dialog.setTextValue("wrong")
    dialog.accept()
    qtbot.waitUntil(lambda: isinstance(controller.dialog, QInputDialog)
                    and "wrong password" in controller.dialog.labelText(),
                    timeout=GUI_TIMEOUT_MS)
    controller.dialog.setTextValue("sesame")
    controller.dialog.accept()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
    assert "plain" in window.status.text()


def test_a_taken_nickname_asks_for_another(server, gui, qtbot):
    from PySide6.QtWidgets import QInputDialog

    bob = JsonClient(server.port, "alice")
    try:
        controller = gui(host="127.0.0.1", port=server.port, nick="alice", insecure=True)
        controller.start()
        dialog = dialog_of(qtbot, controller, QInputDialog)
        assert "taken" in dialog.labelText()
        dialog.setTextValue("alice2")
        dialog.accept()
        window = connected_window(qtbot, controller)
        assert window.session.nick == "alice2"
    finally:
        bob.close()


def test_the_chatkit_gui_command_joins_and_leaves_on_sigterm(server, tmp_path):
    import signal
    import subprocess

    from helpers import chatkit_cmd, cli_env

    watcher = JsonClient(server.port, "watcher")
    env = cli_env(str(tmp_path / "gui-home"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(chatkit_cmd("gui", f"127.0.0.1:{server.port}", "--nick", "zed",
                                        "--insecure"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        watcher.expect("join", nick="zed", timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        watcher.expect("quit", nick="zed")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)
        watcher.close()
