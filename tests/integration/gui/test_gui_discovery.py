"""The start window: servers found by discovery on loopback only (127.255.255.255 and a
private port), going straight in to the only one with a remembered nickname, --server NAME,
and remembering the last server and nickname."""

from __future__ import annotations

import json

from chatkit.gui.dialogs import FirstTrustBox
from chatkit.gui.settings import GuiSettings
from chatkit.paths import known_servers_file
from chatkit.tls import KnownNames, KnownServers

from gui_helpers import GUI_TIMEOUT_MS, connected_window, dialog_of, wait_shown
from helpers import free_udp_port

LOOPBACK = ("127.255.255.255",)


def rows(controller) -> list[list[str]]:
    tree = controller.start_window.list
    return [[tree.topLevelItem(i).text(c) for c in range(5)]
            for i in range(tree.topLevelItemCount())]


def test_lists_servers_live_and_goes_straight_in_with_a_remembered_nick(
        server_factory, gui, qtbot):
    port = free_udp_port()
    server = server_factory(discovery=True, discovery_port=port)
    settings = GuiSettings.load()
    settings.nick = "alice"
    settings.save()
    controller = gui(broadcast=LOOPBACK, discovery_port=port)
    controller.start()
    qtbot.waitUntil(lambda: controller.start_window is not None and bool(rows(controller)),
                    timeout=GUI_TIMEOUT_MS)
    assert rows(controller)[0] == ["test", f"127.0.0.1:{server.port}", "0", "TLS, new", ""]
    assert controller.start_window.nick.text() == "alice"
    box = dialog_of(qtbot, controller, FirstTrustBox)  # went in by itself: a new server
    assert "(test)" in box.text() and server.fingerprint in box.text()
    box.trust_button.click()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
    assert not controller.start_window.isVisible()
    known = KnownServers(known_servers_file())
    assert known.get(f"127.0.0.1:{server.port}") == server.fingerprint
    names = json.loads(KnownNames(known).path.read_text())  # found under this name
    assert [(s["name"], s["fingerprint"]) for s in names] == [("test", server.fingerprint)]
    remembered = GuiSettings.load()
    assert (remembered.last_address, remembered.nick) == (f"127.0.0.1:{server.port}", "alice")


def test_server_name_picks_one_of_several(server_factory, gui, qtbot):
    port = free_udp_port()
    server_factory(discovery=True, discovery_port=port, name="office")
    wanted = server_factory(discovery=True, discovery_port=port, name="lab")
    controller = gui(broadcast=LOOPBACK, discovery_port=port, server_name="lab", nick="bob",
                     insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    assert window.session.port == wanted.port


def test_connect_to_address_typed_in_the_start_window(server, gui, qtbot):
    controller = gui(broadcast=LOOPBACK, discovery_port=free_udp_port(), insecure=True)
    controller.start()
    start = controller.start_window
    start.address.setText(f"127.0.0.1:{server.port}")
    start.button.click()
    assert "nickname" in start.error.text()  # none remembered yet
    start.nick.setText("dana")
    start.button.click()
    window = connected_window(qtbot, controller)
    wait_shown(qtbot, window, "you joined lobby")
