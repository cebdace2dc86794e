"""The terminal client on a cluster (nodes in this process, the test's own Redis): when its
node stops, it says in one line where it moved, and its toolbar shows the new node."""

from __future__ import annotations

from test_client_app import AppRunner

from helpers import JsonClient, wait_for


def welcome_nodes(port: int) -> int:
    client = JsonClient(port, "probe", room=None)
    try:
        assert client.welcome is not None
        return len(client.welcome.get("cluster", {}).get("nodes", []))
    finally:
        client.close()


def test_the_terminal_says_where_it_moved(cluster) -> None:
    node1 = cluster(name="n1", cluster_name="office")
    node2 = cluster(name="n2", cluster_name="office")
    port1, port2 = node1.port, node2.port
    wait_for(lambda: welcome_nodes(port1) == 2, timeout=10, message="both nodes listed")
    ui = AppRunner(port1, "alice")
    try:
        ui.wait_seen("you joined lobby")
        node1.stop()
        ui.wait_seen(f"node 127.0.0.1:{port1} is gone; moved to 127.0.0.1:{port2} "
                     "(cluster office); rejoined lobby")
        toolbar = "".join(fragment[1] for fragment in ui.app.toolbar())
        assert f"127.0.0.1:{port2}" in toolbar and "n2" in toolbar
    finally:
        ui.close()
